"""Turn reference notebooks into student notebooks (nbgrader-style solution markers).

    python -m grit_lite.assign notebooks/ out/

In every code cell, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION``
(markers included) become one ``raise NotImplementedError(...)`` at the marker's
indentation. All outputs are cleared, so students see neither answers nor results.
Check cells are left as they are: they fail until the exercise is solved.

Also removed from the student version:

- cells tagged ``teacher`` (cell metadata ``"tags": ["teacher"]``, of any type): notes
  and cells meant for the teacher only, e.g. a worked answer to a question in the prose;
- ipywidgets state: the notebook's ``widgets`` metadata (the saved models of every
  slider and dropdown, often hundreds of kilobytes) and, with the outputs, every
  widget-view output.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: write your solution here.")'
TEACHER_TAG = "teacher"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_NOTEBOOK = re.compile(r"^\d\d_.+\.ipynb$")


class AssignError(ValueError):
    """A reference notebook has unbalanced solution markers."""


def strip_solutions(source: str) -> str:
    """Replace each marked solution block of one cell's source by a stub."""
    out: list[str] = []
    inside = False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise AssignError("nested '### BEGIN SOLUTION'")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + STUB)
        elif stripped == END:
            if not inside:
                raise AssignError("'### END SOLUTION' without a BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise AssignError("'### BEGIN SOLUTION' without an END")
    return "\n".join(out)


def is_teacher_only(cell: nbformat.NotebookNode) -> bool:
    """Whether a cell carries the :data:`TEACHER_TAG` tag."""
    return TEACHER_TAG in cell.get("metadata", {}).get("tags", [])


def strip_widgets(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove ipywidgets state in place: the notebook's ``widgets`` metadata and every
    widget-view output (an output whose only content is a widget drops out entirely)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.get("metadata", {}).pop("widgets", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            data = output.get("data")
            if data is not None and WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                if not data:
                    continue
            kept.append(output)
        cell.outputs = kept
    return nb


def student_version(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy of ``nb`` without teacher-only cells and widget state, with solutions
    stubbed and every output cleared."""
    nb = strip_widgets(nbformat.from_dict(nb))
    nb.cells = [cell for cell in nb.cells if not is_teacher_only(cell)]
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.source = strip_solutions(cell.source)
        cell.outputs = []
        cell.execution_count = None
    return nb


def assign(src: Path, dst: Path) -> list[Path]:
    """Write the student version of every ``NN_*.ipynb`` in ``src`` into ``dst``."""
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise AssignError(
            f"{dst} is inside {src}: the student versions would replace or mix with the "
            "reference notebooks. Choose an output folder outside it, e.g. student/"
        )
    notebooks = sorted(p for p in src.iterdir() if _NOTEBOOK.match(p.name))
    if not notebooks:
        raise AssignError(f"no NN_topic.ipynb notebooks found in {src}")
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        try:
            nb = student_version(nbformat.read(path, as_version=4))
        except AssignError as err:
            raise AssignError(f"{path}: {err}") from None
        target = dst / path.name
        nbformat.write(nb, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="folder of reference notebooks")
    parser.add_argument("dst", type=Path, help="folder to write student notebooks into")
    args = parser.parse_args(argv)
    if not args.src.is_dir():
        print(f"error: {args.src} is not a folder of notebooks", file=sys.stderr)
        return 2
    try:
        written = assign(args.src, args.dst)
    except (AssignError, OSError) as err:  # OSError: an output folder that cannot be written
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
