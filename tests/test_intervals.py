"""Every figure with its n and a 95 % interval; consistency as counts; the paper's GIoU."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grit_lite import data, evaluate, scoring
from grit_lite.boxes import box_iou, union_iou


def test_the_wilson_interval_is_the_textbook_one():
    # 3 of 10: (0.1078, 0.6032) in Newcombe (1998), Table I; 0 of 10 is not a point
    assert scoring.wilson(3, 10) == pytest.approx((0.1078, 0.6032), abs=1e-4)
    low, high = scoring.wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert scoring.wilson(0, 0) == (0.0, 1.0)


@given(st.integers(0, 400), st.integers(1, 400))
def test_a_wilson_interval_holds_its_value_and_narrows_with_n(k, n):
    k = min(k, n)
    low, high = scoring.wilson(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0
    wider = scoring.wilson(k, n)
    narrower = scoring.wilson(4 * k, 4 * n)
    assert narrower[1] - narrower[0] < wider[1] - wider[0] + 1e-12


def test_the_bootstrap_of_a_constant_is_that_constant_and_is_seeded():
    assert scoring.bootstrap([0.4] * 50) == pytest.approx((0.4, 0.4))
    values = [i / 10 for i in range(11)]
    assert scoring.bootstrap(values, seed=3) == scoring.bootstrap(values, seed=3)
    low, high = scoring.bootstrap(values)
    assert low < 0.5 < high and high - low < 0.5  # the mean's spread, not the values'
    assert scoring.figure([None, None], proportion=False)["n"] == 0


def test_union_iou_is_the_region_measure_not_the_matched_one():
    six = [[10 * i, 0, 10 * i + 10, 10] for i in range(6)]  # six boxes side by side
    assert union_iou(six, [[0, 0, 60, 10]]) == pytest.approx(1.0)  # one region over another
    assert union_iou([[0, 0, 10, 10]], [[5, 5, 15, 15]]) == pytest.approx(box_iou(
        [0, 0, 10, 10], [5, 5, 15, 15]))  # fmt: skip  (one box each: plain IoU)
    assert union_iou([[0, 0, 10, 10], [0, 0, 10, 10]], [[0, 0, 20, 10]]) == pytest.approx(0.5)
    assert union_iou([], []) == 1.0 and union_iou([], [[0, 0, 1, 1]]) == 0.0


def _rows(n: int = 8):
    """Scored rows of hand-written completions: counting and spatial, boxes and none."""
    rows = []
    for i, (record, _) in enumerate(data.eval_split(n)):
        boxes = "(10, 10, 20, 20), (30, 30, 40, 40)" if i % 2 else "(10, 10, 20, 20)"
        answer = record.answer if i % 3 else "7"
        text = f"<think> {boxes} </think> <rethink> ok </rethink> <answer> {answer}"
        rows.append(scoring.score_completion(text, record))
    return rows


def test_consistency_counts_add_up_to_everything_scored():
    rows = _rows(12)
    counts = scoring.consistency_counts(rows)
    assert sum(counts.values()) == len(rows) and set(counts) == set(scoring.CONSISTENCY)
    one_box = next(r for r in rows if r["dataset"] == "vsr" and len(r["boxes"]) == 1)
    assert scoring.consistency_verdict(one_box["completion"], one_box["question"],
                                       "vsr") == "cannot tell"  # fmt: skip
    figures = scoring.figures(rows)
    assert figures["consistency"]["n"] == counts["follows"] + counts["contradicts"]


def test_every_figure_has_its_n_and_an_interval_that_holds_it():
    figures = scoring.figures(_rows(12))
    for name, fig in figures.items():
        if name == "n" or fig["n"] == 0:
            continue
        low, high = fig["ci95"]
        assert low - 1e-9 <= fig["value"] <= high + 1e-9, name
    assert figures["accuracy"]["n"] == 12
    assert figures["grounding/giou"]["n"] == figures["grounding/iou"]["n"]


def test_a_paired_change_of_a_model_against_itself_is_zero_and_not_real():
    rows = _rows(10)
    change = scoring.paired_change(rows, rows)
    assert change["accuracy"]["change"] == 0.0 and change["accuracy"]["ci95"] == [0.0, 0.0]
    assert not change["accuracy"]["real"] and change["accuracy"]["mcnemar_p"] == 1.0
    better = [dict(r, correct=1.0) for r in rows]
    gained = scoring.paired_change(rows, better)["accuracy"]
    assert gained["wrong_to_right"] == sum(r["correct"] == 0 for r in rows)
    assert gained["right_to_wrong"] == 0
    with pytest.raises(ValueError, match="same scenes"):
        scoring.paired_change(rows, rows[::-1])


def test_evaluate_json_writes_every_figure_and_the_paired_change(tmp_path, capsys):
    out = tmp_path / "figures.json"
    evaluate.main(["--model", "data/tiny", "data/tiny_grpo", "-n", "4", "--max-new-tokens", "16",
                   "--json", str(out)])  # fmt: skip
    written = json.loads(out.read_text())
    assert list(written["models"]) == ["data/tiny", "data/tiny_grpo"]
    accuracy = written["models"]["data/tiny"]["accuracy"]
    assert accuracy["n"] == 4 and len(accuracy["ci95"]) == 2
    assert sum(written["models"]["data/tiny"]["consistency"]["counts"].values()) == 4
    assert written["change"]["accuracy"]["n"] == 4


def test_three_ways_ask_the_same_scenes_three_ways(monkeypatch):
    import grit_lite.tiny

    asked = []

    def fake(model, processor, prompts, images, max_new_tokens, **kwargs):
        asked.append(list(prompts))
        return ["<answer>yes" if p.startswith("Question: ") else "yes" for p in prompts]

    monkeypatch.setattr(grit_lite.tiny, "generate", fake)
    items = [(r, im) for r, im in data.eval_split(20) if r.dataset == "vsr"][:4]
    correct = evaluate.three_ways(None, None, items)
    direct, words, grounded = asked
    assert direct == [r.question for r, _ in items]  # the bare question
    assert all(p.endswith(evaluate.WORDS_SUFFIX) and "coordinates" in p for p in words)
    assert all("bbox_2d" in p for p in grounded)  # GRIT's suffix
    truth = [float(r.answer == "yes") for r, _ in items]
    assert correct == {"direct": truth, "chain in words": truth, "grounded chain": truth}
    table = evaluate.ways_table(correct)
    assert list(table.index) == list(evaluate.WAYS) and set(table["n"]) == {4}
    assert table.loc["direct", "McNemar p"] == "1.000"  # no scene differs
    assert table.loc["grounded chain", "McNemar p"] == "-"


def test_ways_table_counts_the_scenes_that_differ():
    correct = {"direct": [1.0] * 10, "chain in words": [0.0] * 10,
               "grounded chain": [1.0] * 5 + [0.0] * 5}  # fmt: skip
    table = evaluate.ways_table(correct)
    assert table.loc["direct", "better / worse than grounded"] == "5 / 0"
    assert table.loc["chain in words", "better / worse than grounded"] == "0 / 5"
    assert table.loc["direct", "McNemar p"] == "0.062"  # 5 of 5 one way: 2 x 0.5^5
    assert table.loc["grounded chain", "95 % CI"] == "[{:.2f}, {:.2f}]".format(
        *scoring.wilson(5, 10))  # fmt: skip


def test_the_figures_table_marks_a_real_change_and_only_that():
    rows = _rows(10)
    right = [dict(r, correct=1.0) for r in rows]  # every answer right after
    table = evaluate.figures_table(evaluate.interval_figures({"before": rows, "after": rows}))
    line = next(x for x in table.splitlines() if x.startswith("accuracy "))
    assert "n=10" in line and line.rstrip().endswith("+0.00 [+0.00, +0.00]")  # not real: no *
    gained = evaluate.interval_figures({"before": [dict(r, correct=0.0) for r in rows],
                                        "after": right})  # fmt: skip
    line = next(x for x in evaluate.figures_table(gained).splitlines()
                if x.startswith("accuracy "))  # fmt: skip
    assert line.endswith("+1.00 [+1.00, +1.00]*")
    assert "10 scenes wrong -> right, 0 right -> wrong" in evaluate.figures_table(gained)


@given(st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=1, max_size=30),
       st.booleans())  # fmt: skip
def test_a_figure_always_holds_its_value(values, proportion):
    if proportion:
        values = [None if v is None else float(round(v)) for v in values]
    fig = scoring.figure(values, proportion)
    if fig["n"]:
        low, high = fig["ci95"]
        assert low <= fig["value"] <= high and fig["n"] == sum(v is not None for v in values)
