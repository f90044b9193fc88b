"""Evaluation is total over valid records: what passes ``load_jsonl`` is scored, never raises.

Records are drawn to pass validation (any Unicode in question and answer, no boxes or many,
every dataset value, answers that look like numbers in other scripts, images from 1 px to
an aspect ratio of 200); completions are any text or GRIT-shaped text with boxes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from grit_lite import data, evaluate, scoring

# Numbers as other scripts write them: Arabic-Indic, Devanagari, fullwidth, superscript,
# circled, CJK, mathematical bold; and things that look like numbers but are not counts.
NUMBER_LOOKALIKES = ["٣", "३", "７", "²", "①", "三", "𝟕", "7.0", "-0", "1e3", "0x1F", "½", "Ⅻ"]
DATASETS = ["vsr", "tallyqa", "gqa", "mathvista", "mme", "ovdeval"]


@st.composite
def valid_records(draw: st.DrawFn) -> dict:
    width = draw(st.integers(1, 4000))
    height = draw(st.integers(max(1, math.ceil(width / 200)), min(4000, width * 200)))

    def box() -> list[float]:
        x1, x2 = sorted(draw(st.floats(0, width)) for _ in range(2))
        y1, y2 = sorted(draw(st.floats(0, height)) for _ in range(2))
        return [x1, y1, x2, y2]

    return {
        "question": draw(st.text(min_size=1)),
        "answer": draw(st.text() | st.integers() | st.sampled_from(NUMBER_LOOKALIKES)),
        "image": draw(st.text(min_size=1)),
        "width": width,
        "height": height,
        "bboxs": [box() for _ in range(draw(st.integers(0, 12)))],
        "dataset": draw(st.sampled_from(DATASETS) | st.text(min_size=1)),
        "split": draw(st.text(min_size=1)),
    }


_NUMBER = st.integers(-(10**6), 10**6).map(str) | st.sampled_from(NUMBER_LOOKALIKES)
_BOX = st.tuples(_NUMBER, _NUMBER, _NUMBER, _NUMBER).map(lambda t: "(" + ", ".join(t) + ")")


@st.composite
def completions(draw: st.DrawFn, answer: str) -> str:
    """Any text, or GRIT's four parts with boxes and an answer that may be the truth."""
    if draw(st.booleans()):
        return draw(st.text())
    think = " ".join(draw(st.lists(_BOX | st.text(), max_size=6)))
    said = draw(st.sampled_from([answer, f" {answer}.", ""]) | _NUMBER | st.text())
    return f"<think>{think}</think> <rethink>{draw(st.text())}</rethink> <answer>{said}"


def _load_one(tmp_path: Path, obj: dict) -> data.Record:
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(obj) + "\n", encoding="utf-8")
    (record,) = data.load_jsonl(path, check_images=False)  # valid by construction: must load
    return record


def _check_row(row: dict) -> None:
    assert row["correct"] in (0.0, 1.0)
    assert all(math.isfinite(v) for v in row["rewards"].values())
    for key in ("iou", "precision", "recall", "consistency"):
        assert row[key] is None or 0.0 <= row[key] <= 1.0, (key, row[key])


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obj=valid_records(), data_=st.data())
def test_every_valid_record_is_scored(tmp_path: Path, obj: dict, data_: st.DataObject) -> None:
    record = _load_one(tmp_path, obj)
    rows = []
    for _ in range(3):
        rows.append(scoring.score_completion(data_.draw(completions(record.answer)), record))
        _check_row(rows[-1])
    summary = scoring.summarize(rows)
    assert summary["n"] == 3 and 0.0 <= summary["accuracy"] <= 1.0


@pytest.mark.parametrize("answer", NUMBER_LOOKALIKES + ["1" * 5000, "", " ", "\u200b"])
def test_counts_in_other_scripts_are_read_or_left_alone(answer: str) -> None:
    record = data.Record("How many?", answer, "x.png", 28, 28, [], "tallyqa", "test")
    text = f"<think>(1, 2, 3, 4)</think><rethink></rethink><answer>{answer}"
    row = scoring.score_completion(text, record)
    _check_row(row)
    if answer in ("٣", "३", "７"):  # decimal digits of another script: a count of 3 or 7
        assert row["count"]["truth"] == int(answer) and row["correct"] == 1.0
    if answer in ("²", "①", "½", "Ⅻ"):  # digits to Unicode, but no count to int()
        assert row["count"]["truth"] is None


def test_thousands_of_annotated_boxes_are_scored() -> None:
    boxes = [[i % 600, i % 300, i % 600 + 10, i % 300 + 10] for i in range(5000)]
    record = data.Record("How many people?", "5000", "x.png", 640, 320, boxes, "tallyqa", "test")
    row = scoring.score_completion("<think>(0, 0, 10, 10) (5, 5, 15, 15)</think>", record)
    assert 0.0 < row["iou"] < 0.01 and row["recall"] < 0.01


def test_an_image_qwen_refuses_is_an_error_at_its_line(tmp_path: Path) -> None:
    good = {"question": "q", "answer": "1", "image": "a.png", "width": 10, "height": 2000,
            "bboxs": [], "dataset": "tallyqa", "split": "test"}  # fmt: skip
    path = tmp_path / "eval.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "height": 2010}) + "\n")
    with pytest.raises(data.DataError, match=r"line 2: fields 'width' and 'height' \(10x2010\)"):
        data.load_jsonl(path, check_images=False)


ODD = [  # question, answer, (width, height), bboxs, dataset
    ("Wie viele Äpfel liegen auf dem Tisch? 🍎", "٣", (1, 1), [[0, 0, 1, 1]], "tallyqa"),
    ("这是什么？", "猫", (2000, 10), [], "gqa"),
    ("\u200b", "²", (10, 2000), [[0, 0, 5, 5]] * 300, "mme"),
    ("Is the cat left of the dog?", "yes", (640, 354), [], "vsr"),
]


def _odd_split(folder: Path) -> Path:
    """Valid records of unusual content, with their images."""
    (folder / "images").mkdir(parents=True)
    lines = []
    for i, (question, answer, (w, h), bboxs, dataset) in enumerate(ODD):
        Image.new("RGB", (w, h), (40 * i, 90, 160)).save(folder / "images" / f"{i}.png")
        lines.append(json.dumps({"question": question, "answer": answer, "image": f"{i}.png",
                                 "width": w, "height": h, "bboxs": bboxs, "dataset": dataset,
                                 "split": "test"}, ensure_ascii=False))  # fmt: skip
    path = folder / "odd.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_command_line_evaluates_unusual_records(tmp_path: Path, capsys) -> None:
    split = _odd_split(tmp_path / "odd")
    out = tmp_path / "records"
    evaluate.main(["--model", "data/tiny", "--split", str(split), "--max-new-tokens", "6",
                   "--out", str(out)])  # fmt: skip
    assert "accuracy/gqa" in capsys.readouterr().out
    (written,) = out.glob("*.jsonl")
    rows = [json.loads(line) for line in written.read_text(encoding="utf-8").splitlines()]
    assert [r["question"] for r in rows] == [q for q, *_ in ODD]
    assert [r["truth"] for r in rows] == [a for _, a, *_ in ODD]


def test_a_bad_record_stops_before_any_model_loads(tmp_path: Path, monkeypatch) -> None:
    split = _odd_split(tmp_path / "odd")
    lines = split.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace('"dataset": "mme"', '"dataset": ""')
    split.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(evaluate, "load_model", lambda name: pytest.fail("a model was loaded"))
    with pytest.raises(SystemExit, match=r"odd.jsonl, line 3: field 'dataset'"):
        evaluate.main(["--model", "data/tiny", "--split", str(split)])
