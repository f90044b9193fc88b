"""`make course`: notebooks run headless, in order, in this environment, to HTML."""

from __future__ import annotations

import sys

import nbformat

from grit_lite import course


def _write(folder, name, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, folder / name)


def test_runs_numbered_notebooks_in_order_with_this_interpreter(tmp_path):
    _write(tmp_path, "02_b.ipynb", "print('second')")
    _write(tmp_path, "01_a.ipynb", "import sys; print(sys.executable)")
    _write(tmp_path, "scratch.ipynb", "raise SystemExit('not part of the course')")
    assert [p.name for p in course.course_notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]
    out = tmp_path / "build"
    assert course.main(["--notebooks", str(tmp_path), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["01_a.html", "02_b.html"]
    assert sys.executable in (out / "01_a.html").read_text()
    # without --inplace the sources keep no outputs
    assert nbformat.read(tmp_path / "01_a.ipynb", as_version=4).cells[0].outputs == []


def test_a_failing_notebook_stops_the_run_with_a_message(tmp_path, capsys):
    _write(tmp_path, "01_bad.ipynb", "1 / 0")
    assert course.main(["--notebooks", str(tmp_path), "--out", str(tmp_path / "b")]) == 1
    assert "01_bad.ipynb failed" in capsys.readouterr().err


def test_no_notebooks_is_an_error(tmp_path):
    assert course.main(["--notebooks", str(tmp_path)]) == 2
