"""Every course notebook follows the conventions of CONTRIBUTING.md."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import nbformat
import pytest

from grit_lite.assign import BEGIN, END
from grit_lite.course import COLAB_BADGE, SETUP_CELL, course_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = course_notebooks(ROOT / "notebooks")
MAX_BYTES = 1_000_000  # committed outputs stay light


def exercise_pairs(nb: nbformat.NotebookNode) -> list[tuple[int, int]]:
    """(exercise cell, check cell) index pairs: a solution cell and the cell after it."""
    return [
        (i, i + 1)
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and BEGIN in cell.source and END in cell.source
    ]


def test_the_course_has_its_first_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert names[:2] == ["01_grounded_format.ipynb", "02_boxes_and_coordinates.ipynb"]
    assert len({name[:2] for name in names}) == len(names), "two notebooks share a number"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_conventions(path):
    nb = nbformat.read(path, as_version=4)
    title, setup = nb.cells[0], nb.cells[1]
    assert title.cell_type == "markdown"
    assert COLAB_BADGE.format(name=path.name) in title.source
    assert "learning goals" in title.source.lower()
    assert setup.cell_type == "code" and setup.source == SETUP_CELL
    assert nb.cells[-1].cell_type == "markdown" and "summary" in nb.cells[-1].source.lower()
    assert nb.metadata.kernelspec.name == "python3"
    assert path.stat().st_size < MAX_BYTES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_are_followed_by_checks(path):
    nb = nbformat.read(path, as_version=4)
    pairs = exercise_pairs(nb)
    assert pairs
    for exercise, check in pairs:
        assert nb.cells[exercise].source.lstrip().startswith(("def ", "#", "import", "from"))
        assert "grit_lite.checks" in nb.cells[check].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_committed(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count is not None for c in code), "run the notebook before committing"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run top to bottom"


TQDM_BAR = re.compile(r"\d+%\|[^|\n]*\|")  # "  0%|          | 0/80", "100%|█████| 80/80"
MIN_DPI = 100


def _outputs(nb: nbformat.NotebookNode):
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            yield index, output


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_stderr_or_progress_bars_in_outputs(path):
    """Committed outputs hold what a student should read: no warnings on stderr and no
    frozen progress bar (tqdm writes to stderr, or to a widget in a notebook)."""
    nb = nbformat.read(path, as_version=4)
    for index, output in _outputs(nb):
        where = f"{path.name}, cell {index}"
        assert not (output.output_type == "stream" and output.name == "stderr"), where
        texts = [output.get("text", "")]
        texts += [str(v) for v in output.get("data", {}).values() if isinstance(v, str)]
        for text in texts:
            assert not TQDM_BAR.search(text), f"{where}: a progress bar: {text[:80]!r}"


def png_dpi(encoded: str) -> float:
    """The resolution a PNG output declares (its pHYs chunk, which matplotlib writes from
    the figure's dpi), in dots per inch; 0 when it declares none."""
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    return float(image.info.get("dpi", (0, 0))[0])


@pytest.mark.parametrize(
    "path",
    NOTEBOOKS,
    ids=lambda p: p.name,
)
def test_figures_are_at_least_100_dpi(path):
    nb = nbformat.read(path, as_version=4)
    for index, output in _outputs(nb):
        encoded = output.get("data", {}).get("image/png")
        if encoded:
            dpi = png_dpi(encoded)
            assert round(dpi) >= MIN_DPI, f"{path.name}, cell {index}: a figure at {dpi:.0f} dpi"


def test_png_dpi_reads_what_matplotlib_wrote():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for dpi in (72, 100):
        fig, _ = plt.subplots(figsize=(1, 1), dpi=dpi)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        plt.close(fig)
        assert round(png_dpi(base64.b64encode(buffer.getvalue()).decode())) == dpi
