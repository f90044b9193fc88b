# grit-lite: every target sets up .venv itself on a fresh machine.
# CI path: pinned, tested versions from .ci/constraints.txt (torch 2.14.1 / torchvision 0.29.1).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.grit-lite-installed

.PHONY: setup test lint course lab train check notebooks clean

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c .ci/constraints.txt torch torchvision
	$(PY) -m pip install --quiet -c .ci/constraints.txt -e ".[dev,lab]"
	touch $@

setup: $(STAMP)  ## create .venv and install the course with its pinned dependencies

test: $(STAMP)  ## lint, then every notebook under strict nbval together with tests/
	$(PY) -m ruff check .
	$(PY) -m pytest --nbval notebooks/ tests/ $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

course: $(STAMP)  ## execute all notebooks headless, in order, rendered to build/*.html
	$(PY) -m grit_lite.course --out build

notebooks: $(STAMP)  ## maintainers: re-execute the notebooks and save their outputs
	$(PY) -m grit_lite.course --inplace --out build

lab: $(STAMP)  ## open the course in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

check: $(STAMP)  ## preflight of the run make train would make: two short steps, speed, memory
	$(PY) -m grit_lite.train --check $(ARGS)

train: $(STAMP)  ## the GRPO-GR run: the best preset this machine can run (ARGS="--max-steps 5")
	$(PY) -m grit_lite.train $(ARGS)

clean:
	rm -rf build out .pytest_cache
