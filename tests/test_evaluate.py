"""Evaluation metrics on hand-made completions, with exact expected values."""

from __future__ import annotations

import pytest

from grit_lite import evaluate
from grit_lite.data import Record


def _record(question, answer, bboxs, dataset, width=224, height=224):
    return Record(question, answer, "x.png", width, height, bboxs, dataset, "eval")


COUNT = _record(
    "How many red circles are there?", "2", [[0, 0, 10, 10], [20, 20, 30, 30]], "tallyqa"
)
SPATIAL = _record(
    "Is the red circle left of the blue square?", "yes", [[0, 0, 10, 10], [100, 0, 110, 10]], "vsr"
)
GOOD = (
    "<think>Two red circles: (0,0,10,10) and (20,20,30,30).</think> "
    "<rethink>Both boxes hold one each.</rethink> <answer>2</answer>"
)


def test_perfect_counting_completion():
    row = evaluate.score_completion(GOOD, COUNT)
    assert row["correct"] == 1.0 and row["well_formed"]
    assert row["iou"] == 1.0 and row["precision"] == 1.0 and row["recall"] == 1.0
    assert row["count"] == {"boxes": 2, "said": 2, "truth": 2}
    assert row["consistency"] == 1.0
    # answer 1 + answer format 0.5 + repetition 0.5 + grounded 0.5 + count bonus 1.0
    # + think/rethink format 0.5 + BLEU 0.05: the official BLEU reads "2 </answer>" as the
    # prediction, so the closing tag halves the unigram precision (notebook 03's quirk)
    assert row["rewards"]["answer_bleu_reward"] == pytest.approx(0.05)
    assert row["reward"] == pytest.approx(4.05)


def test_right_answer_with_half_the_boxes():
    text = "<think>one at (0,0,10,10)</think><rethink>so two</rethink><answer>2</answer>"
    row = evaluate.score_completion(text, COUNT)
    assert row["correct"] == 1.0
    assert row["iou"] == 0.5  # one perfect match, one missing box counts as IoU 0
    assert row["precision"] == 1.0 and row["recall"] == 0.5
    assert row["consistency"] == 0.0  # said 2, drew 1: the answer does not use the boxes
    assert row["count"] == {"boxes": 1, "said": 2, "truth": 2}


def test_boxes_are_mapped_back_to_original_pixels():
    """A 448 x 448 image is seen at 448 x 448 by Qwen, but a 1000 x 500 one is resized."""
    record = _record("How many red circles are there?", "1", [[100, 50, 200, 150]], "tallyqa",
                     width=1000, height=500)  # fmt: skip
    seen = (980, 476)  # what the model saw: multiples of 28
    x1, y1, x2, y2 = 100 * 0.98, 50 * 0.952, 200 * 0.98, 150 * 0.952
    text = f"<think>({x1:.1f},{y1:.1f},{x2:.1f},{y2:.1f})</think><rethink></rethink><answer>1"
    row = evaluate.score_completion(text, record, resized=seen)
    assert row["iou"] == pytest.approx(1.0, abs=2e-3)


def test_degenerate_inputs_never_crash():
    for text in ("", "<answer>", "<think></think>", "\x00" * 50, "<think>(1,2,3)</think>"):
        for record in (COUNT, SPATIAL):
            row = evaluate.score_completion(text, record)
            assert 0.0 <= row["iou"] <= 1.0 and row["correct"] == 0.0
    nothing = _record("How many red circles are there?", "0", [], "tallyqa")
    assert evaluate.score_completion("<answer>0", nothing)["iou"] == 1.0  # nothing to find
    assert evaluate.score_completion("<think>(1,1,5,5)</think><answer>0", nothing)["iou"] == 0.0


def test_spatial_consistency_follows_the_models_own_boxes():
    right = "<think>(0,0,10,10) and (100,0,110,10)</think><rethink>x</rethink><answer>yes"
    assert evaluate.box_answer_consistency(right, SPATIAL.question, "vsr") == 1.0
    # the same boxes, the opposite answer: wrong *and* inconsistent
    assert (
        evaluate.box_answer_consistency(right.replace("yes", "no"), SPATIAL.question, "vsr") == 0.0
    )
    # boxes swapped (the model thinks the circle is on the right) but answers yes anyway
    swapped = "<think>(100,0,110,10) and (0,0,10,10)</think><answer>yes"
    assert evaluate.box_answer_consistency(swapped, SPATIAL.question, "vsr") == 0.0
    # no box or one box implies no relation: it cannot be told (not "contradicts")
    assert evaluate.box_answer_consistency("<answer>yes", SPATIAL.question, "vsr") is None
    assert evaluate.box_answer_consistency("no answer", SPATIAL.question, "vsr") is None
    assert evaluate.box_answer_consistency("<answer>tv", "What is that?", "gqa") is None


def test_summary_means_per_family_and_counts():
    rows = [
        evaluate.score_completion(GOOD, COUNT),
        evaluate.score_completion("<answer>3", COUNT),
        evaluate.score_completion("<think>(0,0,10,10) (100,0,110,10)</think><answer>yes", SPATIAL),
    ]
    summary = evaluate.summarize(rows)
    assert summary["n"] == 3
    assert summary["accuracy/tallyqa"] == 0.5 and summary["accuracy/vsr"] == 1.0
    assert summary["accuracy"] == pytest.approx(2 / 3)
    assert summary["grounding/with_boxes"] == pytest.approx(2 / 3)
    assert summary["grounding/iou"] == pytest.approx(2 / 3)  # 1, 0, 1
    assert summary["grounding/iou_when_boxed"] == 1.0
    assert summary["count/boxes_equal_truth"] == 0.5  # 2 boxes = truth; 0 boxes != 2
    assert summary["count/said_equals_boxes"] == 0.5  # said 2 with 2 boxes; said 3 with 0
    assert summary["consistency"] == pytest.approx(2 / 3)  # 1, 0 (3 != 0 boxes), 1
    assert summary["format/tags_in_order"] == pytest.approx(1 / 3)
    assert evaluate.summarize([])["accuracy"] is None


def test_a_record_without_annotated_boxes_has_no_grounding_score():
    """MME/MathVista records carry no boxes: grounding is undefined, not 0 and not 1."""
    mme = _record("Is there a dog in the image?", "yes", [], "mme")
    row = evaluate.score_completion("<think>(1,1,5,5)</think><answer>yes", mme)
    assert row["iou"] is None and row["precision"] is None and row["recall"] is None
    summary = evaluate.summarize([row, evaluate.score_completion(GOOD, COUNT)])
    assert summary["grounding/iou"] == 1.0  # the mean over the one annotated record
    assert summary["accuracy/mme"] == 1.0


def _image_file(folder, name="a.png", size=(40, 30)):
    from PIL import Image

    folder.mkdir(exist_ok=True)
    Image.new("RGB", size, "white").save(folder / name)


def test_load_split_reads_an_eval_file_without_boxes(tmp_path):
    import json

    _image_file(tmp_path / "images")
    lines = [
        {"question": "Is it white?", "answer": "yes", "image": "a.png", "width": 40,
         "height": 30, "dataset": "mme"},
        {"question": "How many?", "answer": 1, "image": "a.png", "width": 40, "height": 30,
         "bboxs": [[1, 1, 5, 5]], "dataset": "tallyqa", "split": "test"},
    ]  # fmt: skip
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    items = evaluate.load_split(str(path), n=None)
    assert [r.bboxs for r, _ in items] == [[], [[1.0, 1.0, 5.0, 5.0]]]
    assert items[0][0].split == "test" and items[0][1].size == (40, 30)
    assert len(evaluate.load_split(str(path), n=1)) == 1
    path.write_text(json.dumps({**lines[0], "width": 41}))
    with pytest.raises(evaluate.data.DataError, match="line 1"):
        evaluate.load_split(str(path))


def test_compare_gives_one_row_per_metric_and_the_change():
    before = {"accuracy": 0.5, "grounding/iou": None, "n": 4}
    after = {"accuracy": 0.75, "grounding/iou": 0.25, "n": 4}
    table = evaluate.compare({"base": before, "trained": after})
    assert list(table.columns) == ["base", "trained", "change"]
    assert table.loc["accuracy", "change"] == 0.25
    assert table.loc["n", "change"] == 0
    assert table["base"].isna()["grounding/iou"]  # None stays empty, no fake zero


def _rows_and_items():
    from PIL import Image

    records = [COUNT, SPATIAL, COUNT]
    texts = [GOOD, "<think>(0,0,10,10) (100,0,110,10)</think> <answer>no", "nothing"]
    rows = [evaluate.score_completion(t, r) for t, r in zip(texts, records, strict=True)]
    return rows, [(r, Image.new("RGB", (224, 224), "white")) for r in records]


def test_browser_filters_records():
    rows, items = _rows_and_items()
    widget = evaluate.browser(rows, items)
    choice, picker = widget.children[0].children
    picture, report = widget.children[1].children
    assert picker.max == 2 and "#0" in report.value and picture.value
    choice.value = "wrong answer"  # records 1 and 2
    assert picker.max == 1 and "#1 (2 match)" in report.value
    picker.value = 1
    assert "#2 (2 match)" in report.value
    choice.value = "boxes disagree with answer"  # record 1: its boxes say yes, it says no
    assert picker.max == 0 and "#1 (1 match)" in report.value
    evaluate.FILTERS["none"] = lambda row: False
    try:
        choice.options = list(evaluate.FILTERS)
        choice.value = "none"
        assert "no record matches" in report.value
    finally:
        del evaluate.FILTERS["none"]


def test_gallery_has_a_row_per_checkpoint():
    rows, items = _rows_and_items()
    fig = evaluate.gallery({"base": rows, "trained": rows}, items, [0, 2])
    assert len(fig.axes) == 4
    captions = [ax.get_xlabel() for ax in fig.axes]
    assert captions[0].startswith("base: ") and captions[2].startswith("trained: ")
    assert "IoU 1.00" in captions[0] and "no answer" in captions[1]
    assert fig.axes[0].get_title().startswith("Q0: ") and fig.axes[2].get_title() == ""
    assert all(ax.xaxis.label.get_fontsize() >= 9 for ax in fig.axes)
    assert fig.get_size_inches()[0] <= 7


def test_llm_consistency_reads_the_judges_reply():
    class Fake:
        def __init__(self, reply):
            self.reply, self.prompts = reply, []

        def _ask(self, prompt):
            self.prompts.append(prompt)
            return self.reply

    judge = Fake("1")
    assert evaluate.llm_consistency(GOOD, COUNT.question, judge) == 1.0
    assert COUNT.question in judge.prompts[0] and GOOD in judge.prompts[0]
    assert evaluate.llm_consistency(GOOD, COUNT.question, Fake("0")) == 0.0
    assert evaluate.llm_consistency(GOOD, COUNT.question, Fake(None)) is None
    assert evaluate.llm_consistency(GOOD, COUNT.question, Fake("maybe")) is None


def test_cli_compares_two_checkpoints_and_writes_records(tmp_path, capsys):
    import json

    from grit_lite import tiny

    (tmp_path / "copy").symlink_to(tiny.SHIPPED)
    out = tmp_path / "records"
    evaluate.main(["--model", str(tiny.SHIPPED), str(tmp_path / "copy"), "-n", "2",
                   "--max-new-tokens", "4", "--out", str(out)])  # fmt: skip
    table = capsys.readouterr().out
    assert "accuracy" in table and "change" in table
    files = sorted(out.glob("*.jsonl"))
    assert len(files) == 2
    rows = [[json.loads(line) for line in f.read_text().splitlines()] for f in files]
    assert len(rows[0]) == 2 and {"question", "iou", "reward"} <= set(rows[0][0])
    assert rows[0] == rows[1]  # the same weights, greedy decoding: the same records


def test_grit_split_is_the_walkthroughs_sample_and_offline_one_error(tmp_path, monkeypatch):
    from pathlib import Path

    from grit_lite import data

    fixture = Path(__file__).parent / "fixtures" / "grit_data"
    items = evaluate.load_split("grit", n=4, grit_folder=fixture)
    assert [r for r, _ in items] == data.load_grit_heldout(fixture, per_file=2)
    assert [r.dataset for r, _ in items] == ["vsr", "vsr", "tallyqa", "tallyqa"]
    assert all(image.size == (r.width, r.height) for r, image in items)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(data, "GRIT_DATA_CACHE", tmp_path / "empty")
    with pytest.raises(SystemExit, match="^error: .*HF_HUB_OFFLINE"):
        evaluate.main(["--model", "tiny", "--split", "grit", "-n", "4"])


def test_cli_unknown_model_is_one_clear_error():
    with pytest.raises(SystemExit, match="unknown model 'nonsense'"):
        evaluate.main(["--model", "nonsense", "-n", "1"])


def test_learning_targets_read_the_summaries():
    rows = [evaluate.score_completion(GOOD, COUNT), evaluate.score_completion("<answer>3", COUNT)]
    before = evaluate.summarize([evaluate.score_completion("3", COUNT)])
    after = evaluate.summarize(rows)
    targets = evaluate.learning_targets(before, after, base_plain_accuracy=0.6)
    four_tags = {"before": 0.0, "after": 0.5, "target": ">= 0.90"}
    assert targets["format: four tags in order"] == four_tags
    assert targets["completions with a think box"]["after"] == 0.5
    iou = {"before": None, "after": 1.0, "target": ">= 0.40"}
    assert targets["IoU of the boxed answers"] == iou
    assert targets["answer accuracy (GRIT prompt)"]["target"] == ">= 0.55"
    assert targets["base plain-QA accuracy"]["before"] == 0.6
