"""The assignment tool: student notebooks lose their solutions and their checks fail."""

from __future__ import annotations

import nbformat
import pytest

from grit_lite import assign
from grit_lite.course import notebook_client
from tests.test_notebooks import NOTEBOOKS, ROOT, exercise_pairs

SOLVED = '''import math

def f(x):
    """Doc."""
    ### BEGIN SOLUTION
    y = math.sqrt(x)
    return y
    ### END SOLUTION

print(f(4))'''


def test_strip_solutions_keeps_indentation_and_surroundings():
    stripped = assign.strip_solutions(SOLVED)
    assert "math.sqrt" not in stripped and "SOLUTION" not in stripped
    assert f"    {assign.STUB}" in stripped.splitlines()
    assert stripped.startswith("import math") and stripped.endswith("print(f(4))")
    namespace: dict = {}
    exec(stripped.replace("print(f(4))", ""), namespace)
    with pytest.raises(NotImplementedError):
        namespace["f"](4)


@pytest.mark.parametrize(
    "source",
    [
        "### BEGIN SOLUTION\nx = 1",
        "x = 1\n### END SOLUTION",
        "### BEGIN SOLUTION\n### BEGIN SOLUTION",
    ],
)
def test_unbalanced_markers_are_an_error(source):
    with pytest.raises(assign.AssignError):
        assign.strip_solutions(source)


def test_cli_writes_every_notebook_without_solutions_or_outputs(tmp_path):
    assert assign.main(["notebooks", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == [p.name for p in NOTEBOOKS]
    for path in tmp_path.iterdir():
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert "BEGIN SOLUTION" not in cell.source
                assert cell.outputs == [] and cell.execution_count is None


def test_cli_rejects_a_missing_folder(tmp_path, capsys):
    assert assign.main([str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    assert "not a folder" in capsys.readouterr().err


def _run_cells(cells: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.source) for c in cells])
    client = notebook_client(nb, ROOT / "notebooks", timeout=300, allow_errors=True)
    client.execute()
    return nb


def _errors(cell) -> list[str]:
    return [o.ename for o in cell.outputs if o.output_type == "error"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_checks_fail_and_reference_checks_pass(path):
    reference = nbformat.read(path, as_version=4)
    student = assign.student_version(reference)
    pairs = exercise_pairs(reference)
    assert pairs, f"{path.name} has no exercise"
    setup = reference.cells[1]

    def cells_of(nb):
        return [setup] + [nb.cells[i] for pair in pairs for i in pair]

    ran_student = _run_cells(cells_of(student))
    ran_reference = _run_cells(cells_of(reference))
    for k in range(len(pairs)):
        check_student = ran_student.cells[2 + 2 * k]
        check_reference = ran_reference.cells[2 + 2 * k]
        assert _errors(check_student) == ["ExerciseFailed"], check_student.source
        assert "FAILED" in "".join(o.get("text", "") for o in check_student.outputs)
        assert _errors(check_reference) == [], check_reference.source
        assert "PASSED" in "".join(o.get("text", "") for o in check_reference.outputs)


def _notebook_with_widgets_and_teacher_cells() -> nbformat.NotebookNode:
    widget = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    shown = nbformat.v4.new_code_cell(
        "viewer()",
        outputs=[
            nbformat.v4.new_output(
                "display_data",
                data={"text/plain": "VBox(...)", assign.WIDGET_VIEW: widget},
            ),
            nbformat.v4.new_output("display_data", data={assign.WIDGET_VIEW: widget}),
        ],
    )
    note = nbformat.v4.new_markdown_cell("The answer is 42.", metadata={"tags": ["teacher"]})
    demo = nbformat.v4.new_code_cell("print(42)", metadata={"tags": ["teacher", "x"]})
    kept = nbformat.v4.new_markdown_cell("Question: what is the answer?")
    nb = nbformat.v4.new_notebook(cells=[kept, note, shown, demo])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"abc": {}}}}
    return nb


def test_strip_widgets_removes_state_and_widget_views():
    nb = assign.strip_widgets(_notebook_with_widgets_and_teacher_cells())
    assert "widgets" not in nb.metadata
    outputs = nb.cells[2].outputs
    assert len(outputs) == 1 and outputs[0]["data"] == {"text/plain": "VBox(...)"}
    assert assign.WIDGET_VIEW not in nbformat.writes(nb)


def test_student_version_drops_teacher_cells_and_widgets():
    student = assign.student_version(_notebook_with_widgets_and_teacher_cells())
    sources = [cell.source for cell in student.cells]
    assert sources == ["Question: what is the answer?", "viewer()"]
    # What the teacher wrote and the widget state must be gone. Check those texts themselves:
    # nbformat gives each cell a random hex id, so a short pattern like "42" can appear by chance.
    text = nbformat.writes(student)
    assert "The answer is 42" not in text and "print(42)" not in text
    assert assign.WIDGET_VIEW not in text and "widget-state" not in text
    assert "widgets" not in student.metadata
    assert not any("teacher" in cell.metadata.get("tags", []) for cell in student.cells)


def test_course_student_notebooks_hold_no_widget_state(tmp_path):
    assign.assign(ROOT / "notebooks", tmp_path)
    for path in tmp_path.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "widget-view" not in text and '"widgets"' not in text, path.name
