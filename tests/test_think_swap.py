"""The think-swap experiment: is the answer read from the think's boxes?

A fake model that reads its answer off the boxes must lose accuracy when the think is
swapped, and one that ignores them must not: the experiment has to tell the two apart.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import grit_lite.tiny
from grit_lite import data, evaluate
from grit_lite.data import Record
from grit_lite.format import build_prompt


def _think(n: int, x: int = 0) -> str:
    boxes = " ".join(f"({x + 10 * k},0,{x + 10 * k + 5},5)" for k in range(n))
    return f"<think>{boxes}</think>"


def test_the_think_is_split_off_whole() -> None:
    text = "ok <think>(1,2,3,4)</think> <rethink>r</rethink> <answer>2"
    assert evaluate.think_prefix(text) == ("ok ", "<think>(1,2,3,4)</think>")


@pytest.mark.parametrize(
    "text",
    [None, 3, "", "no tags", "<think>never closed", "</think> <think>",
     "<think>a <rethink>b</think>", "<think>a <answer>2</think>"],
)  # fmt: skip
def test_no_closed_think_is_none(text) -> None:
    assert evaluate.think_prefix(text) is None


PIECES = ["<think>", "</think>", "<rethink>", "</rethink>", "<answer>", "a", " "]


@given(st.lists(st.sampled_from(PIECES)).map("".join) | st.text())
def test_think_prefix_is_total_and_a_prefix_of_the_text(text: str) -> None:
    split = evaluate.think_prefix(text)
    if split is not None:
        before, think = split
        assert text.startswith(before + think)
        assert think.startswith("<think>") and think.endswith("</think>")
        assert think.count("</think>") == 1


def _row(dataset: str, completion: str) -> dict:
    return {"dataset": dataset, "completion": completion}


def test_partners_are_another_think_of_the_same_dataset() -> None:
    rows = [
        _row("tallyqa", _think(1)),
        _row("vsr", _think(2)),
        _row("tallyqa", _think(1)),  # the same think as row 0: no swap between them
        _row("tallyqa", _think(3)),
        _row("vsr", "no think at all <answer>yes"),
        _row("gqa", _think(1)),  # alone in its dataset
    ]
    assert evaluate.swap_partners(rows) == [3, None, 3, 0, None, None]


def _count_items(truths: list[int]) -> list[tuple[Record, None]]:
    records = [
        Record("How many red circles are there?", str(t), "x.png", 224, 224, [], "tallyqa", "eval")
        for t in truths
    ]
    return [(r, None) for r in records]


def _reader(model, processor, prompts, images, max_new_tokens, batch=16, prefixes=None, **_):
    """Answers the number of boxes in the think it is handed: a model that uses its boxes."""
    return [f" <rethink></rethink> <answer>{len(re.findall(r'[(]', p))}" for p in prefixes]


def _ignorer(model, processor, prompts, images, max_new_tokens, batch=16, prefixes=None, **_):
    return [" <rethink></rethink> <answer>2" for _ in prefixes]


def test_a_box_reader_loses_what_an_ignorer_keeps(monkeypatch) -> None:
    truths = [1, 2, 3, 2]
    items = _count_items(truths)
    rows = [_row("tallyqa", _think(t) + " <rethink></rethink> <answer>x") for t in truths]
    # partners: 0 -> 1, 1 -> 2, 2 -> 3, 3 -> 0 (every think differs from the next)
    monkeypatch.setattr(grit_lite.tiny, "generate", _reader)
    read = evaluate.summarize_swap(evaluate.think_swap(None, None, items, rows), len(items))
    # own thinks hold the true count (4 of 4 right); swapped: 2, 3, 2, 1 boxes for truths
    # 1, 2, 3, 2: none right, and every answer changed
    assert read["accuracy_own"] == 1.0 and read["accuracy_swapped"] == 0.0
    assert read["drop_points"] == 100.0 and read["changed"] == 1.0
    assert read["n"] == 4 and read["skipped"] == 0
    # the yardstick: a perfect reader of these thinks drops exactly what this reader drops
    assert read["reader_drop_points"] == read["drop_points"]
    assert read["drop_ci95"] == [100.0, 100.0]  # every scene drops by 100: no spread
    assert "100% of the way" in evaluate.swap_verdict(read)

    monkeypatch.setattr(grit_lite.tiny, "generate", _ignorer)
    ignored = evaluate.summarize_swap(evaluate.think_swap(None, None, items, rows), len(items))
    assert ignored["accuracy_own"] == ignored["accuracy_swapped"] == 0.5  # truths 2 and 2
    assert ignored["drop_points"] == 0.0 and ignored["changed"] == 0.0
    assert ignored["reader_drop_points"] == 100.0  # the same scenes, the same yardstick
    assert "0% of the way" in evaluate.swap_verdict(ignored)


def test_the_yardstick_leaves_what_no_box_decides_to_the_model(monkeypatch) -> None:
    """A spatial think with one box implies no relation: a perfect reader cannot be moved by
    swapping it, so such scenes add 0 to the yardstick."""
    question = "Is the red circle left of the blue square?"
    record = Record(question, "yes", "x.png", 224, 224, [], "vsr", "eval")
    one_box = "<think>(10,0,15,5)</think>"
    assert evaluate.read_off(one_box, record, otherwise=1.0) == 1.0
    assert evaluate.read_off(one_box, record, otherwise=0.0) == 0.0
    left = "<think>(10,0,15,5) (100,0,105,5)</think>"  # red's centre left of blue's: yes
    assert evaluate.read_off(left, record, otherwise=0.0) == 1.0
    right = "<think>(100,0,105,5) (10,0,15,5)</think>"
    assert evaluate.read_off(right, record, otherwise=1.0) == 0.0


def test_the_swapped_think_is_the_partners_and_the_prompt_is_the_question(monkeypatch) -> None:
    seen: list[tuple[str, str]] = []

    def spy(model, processor, prompts, images, max_new_tokens, batch=16, prefixes=None, **_):
        seen.extend(zip(prompts, prefixes, strict=True))
        return ["<answer>1"] * len(prompts)

    monkeypatch.setattr(grit_lite.tiny, "generate", spy)
    items = _count_items([1, 2])
    rows = [_row("tallyqa", _think(1) + "<answer>1"), _row("tallyqa", _think(2, 50) + "<answer>2")]
    evaluate.think_swap(None, None, items, rows)
    prompt = build_prompt(items[0][0].question)
    assert seen == [(prompt, _think(1)), (prompt, _think(2, 50)),
                    (prompt, _think(2, 50)), (prompt, _think(1))]  # fmt: skip


def test_a_summary_of_nothing_has_no_numbers() -> None:
    summary = evaluate.summarize_swap([], 5)
    assert summary["n"] == 0 and summary["skipped"] == 5
    assert summary["accuracy_own"] is None and summary["drop_points"] is None


def test_greedy_continues_its_own_think_word_for_word() -> None:
    """With its own think as the prefix, the trained model writes the rest of the reply it
    wrote without one: the own arm of the swap is the model's ordinary answer."""
    model, processor = grit_lite.tiny.load_tiny(data.DATA_DIR / "tiny_grpo")
    items = data.eval_split(6)
    prompts, images = [build_prompt(r.question) for r, _ in items], [im for _, im in items]
    full = grit_lite.tiny.generate(model, processor, prompts, images, 128)
    splits = [evaluate.think_prefix(text) for text in full]
    assert all(splits)
    starts = [before + think for before, think in splits]
    rest = grit_lite.tiny.generate(model, processor, prompts, images, 128, prefixes=starts)
    assert [s + r for s, r in zip(starts, rest, strict=True)] == full


def test_the_command_line_reports_the_swap(capsys) -> None:
    evaluate.main(["--model", "data/tiny_grpo", "-n", "4", "--think-swap",
                   "--max-new-tokens", "128"])  # fmt: skip
    out = capsys.readouterr().out
    assert "swap/drop_points" in out and "swap/changed" in out
    assert "swap/reader_drop_points" in out
    assert "think swap, data/tiny_grpo, all: drop " in out and "would drop" in out
