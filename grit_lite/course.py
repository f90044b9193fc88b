"""Run the whole course headless, in order.

    python -m grit_lite.course              # execute every notebook, write build/NN_topic.html
    python -m grit_lite.course --inplace    # maintainers: refresh the committed outputs

Notebooks run in this interpreter's environment (like ``pytest --nbval-current-env``), so
the kernel always sees the installed ``grit_lite``, whatever kernels Jupyter has registered.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tqdm.auto import tqdm

CURRENT_ENV = "grit-lite-current-env"

# The first code cell of every notebook (tests/test_notebooks.py checks it is identical).
# In Colab it fetches and installs the course; in a local checkout it only seeds.
SETUP_CELL = """\
# Setup: in Colab, fetch and install the course; in a local checkout this does nothing.
import sys

if "google.colab" in sys.modules:
    !git clone --quiet --depth 1 https://github.com/grit-lite/grit-lite /content/grit-lite
    %pip install --quiet -e /content/grit-lite
    sys.path.insert(0, "/content/grit-lite")
    %cd /content/grit-lite/notebooks

import grit_lite

grit_lite.seed_everything(0)"""
COLAB_BADGE = (
    "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
    "(https://colab.research.google.com/github/grit-lite/grit-lite/blob/main/notebooks/{name})"
)
NOTEBOOK_NAME = re.compile(r"^\d\d_.+\.ipynb$")


class CurrentEnvKernelSpecs(KernelSpecManager):
    """Resolve one extra kernel name to ``sys.executable -m ipykernel_launcher``."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        if kernel_name == CURRENT_ENV:
            return KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name="grit-lite (current environment)",
                language="python",
            )
        return super().get_kernel_spec(kernel_name)


def course_notebooks(folder: Path) -> list[Path]:
    """The numbered notebooks ``NN_topic.ipynb`` of ``folder``, in course order."""
    return sorted(p for p in folder.iterdir() if NOTEBOOK_NAME.match(p.name))


def notebook_client(nb: nbformat.NotebookNode, cwd: Path, **kwargs: Any) -> NotebookClient:
    """An nbclient runner whose kernel is this interpreter, started in ``cwd``."""
    manager = AsyncKernelManager(
        kernel_name=CURRENT_ENV, kernel_spec_manager=CurrentEnvKernelSpecs()
    )
    return NotebookClient(nb, km=manager, resources={"metadata": {"path": str(cwd)}}, **kwargs)


def execute(path: Path, timeout: int = 1200) -> nbformat.NotebookNode:
    """Execute one notebook with its own folder as working directory; raise on a cell error."""
    nb = nbformat.read(path, as_version=4)
    notebook_client(nb, path.parent, timeout=timeout).execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute the course notebooks in order.")
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    parser.add_argument("--out", type=Path, default=Path("build"), help="folder for HTML")
    parser.add_argument("--inplace", action="store_true", help="save outputs into the notebooks")
    parser.add_argument("only", nargs="*", help="run only notebooks whose name contains this")
    args = parser.parse_args(argv)

    if not args.notebooks.is_dir():
        print(f"error: {args.notebooks} is not a folder of notebooks", file=sys.stderr)
        return 2
    paths = course_notebooks(args.notebooks)
    if args.only:
        paths = [p for p in paths if any(key in p.name for key in args.only)]
    if not paths:
        print(f"error: no NN_topic.ipynb notebooks in {args.notebooks}", file=sys.stderr)
        return 2

    from nbconvert import HTMLExporter

    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # under a file, or not writable
        print(f"error: cannot write to {args.out} ({err.strerror})", file=sys.stderr)
        return 2
    exporter = HTMLExporter()
    for path in (bar := tqdm(paths, desc="course", unit="notebook")):
        bar.set_postfix_str(path.name)
        try:
            nb = execute(path)
        except CellExecutionError as err:
            print(f"error: {path.name} failed:\n{err}", file=sys.stderr)
            return 1
        if args.inplace:
            nbformat.write(nb, path)
        html, _ = exporter.from_notebook_node(nb)
        (args.out / path.with_suffix(".html").name).write_text(html, encoding="utf-8")
    print(f"wrote {len(paths)} notebooks as HTML to {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
