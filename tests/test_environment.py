"""The three install paths (pyproject, environment.yml, CI pins) agree on the packages."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return project["dependencies"] + extras["dev"] + extras["lab"]


def test_environment_yml_lists_the_pyproject_packages():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert conda_python == ["python=3.11"]
    assert "-e ." in pip_section
    yml = {_name(r) for r in pip_section if not r.startswith("-e")}
    assert yml == {_name(r) for r in _pyproject_requirements()}


def test_environment_yml_uses_the_same_version_ranges():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    ranges = {_name(r): r.replace(" ", "") for r in pip_section if not r.startswith("-e")}
    for requirement in _pyproject_requirements():
        assert ranges[_name(requirement)] == requirement.replace(" ", "")


def test_ci_pins_every_package_and_the_local_torch():
    pins = {}
    for line in (ROOT / ".ci/constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_name(name)] = version
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    missing = {_name(r) for r in _pyproject_requirements()} - set(pins)
    assert not missing, f"not pinned for CI: {sorted(missing)}"


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci/run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "pytest --nbval notebooks/ tests/" in makefile
