"""Tests for grit_lite.data: schema validation, the real-data path, the synthetic world, TRL."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from grit_lite import data
from grit_lite.boxes import qwen_resized_size
from grit_lite.format import GRIT_PROMPT_SUFFIX

FIXTURE = Path(__file__).parent / "fixtures" / "grit_data"
GOOD = {
    "question": "How many red circles are there?",
    "answer": "1",
    "image": "a.png",
    "width": 28,
    "height": 56,
    "bboxs": [[0.0, 0.0, 10.0, 20.0]],
    "dataset": "tallyqa",
    "split": "train",
}


@pytest.fixture(scope="module")
def train() -> list:
    return data.train_split()


@pytest.fixture(scope="module")
def evaluation() -> list:
    return data.eval_split()


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _write(tmp_path: Path, bad_line: str) -> Path:
    """A file whose line 3 is ``bad_line`` (after a good line and a blank line)."""
    Image.new("RGB", (28, 56)).save(tmp_path / "a.png")
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + bad_line + "\n", encoding="utf-8")
    return path


def _with(**changes: object) -> str:
    return json.dumps({**GOOD, **changes})


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"question": "How many', "invalid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "bboxs"}), "missing field(s) 'bboxs'"),
        (_with(width="28"), "'width' must be a positive integer"),
        (_with(question=3), "'question' must be a non-empty string"),
        (_with(answer=[1]), "'answer' must be a string"),
        (_with(bboxs=[[1, 2, 3]]), "4 numbers"),
        (_with(bboxs=[[1, 2, "3", 4]]), "4 numbers"),
        (_with(bboxs=[[5, 2, 3, 4]]), "x1 <= x2"),
        (_with(bboxs=[[0, 0, 30, 10]]), "outside the 28x56 image"),
        (_with(bboxs=[[0, -2, 10, 10]]), "outside the 28x56 image"),
        (_with(image="missing.png"), "does not exist"),
        (_with(width=56), "is 28x56, the record says 56x56"),
    ],
)
def test_bad_line_is_reported_with_file_and_line(tmp_path: Path, line: str, words: str) -> None:
    path = _write(tmp_path, line)
    with pytest.raises(data.DataError) as caught:
        data.load_jsonl(path, image_dir=tmp_path)
    message = str(caught.value)
    assert "records.jsonl, line 3:" in message
    assert words in message
    assert "Fix or remove this line" in message


def test_unreadable_image_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, _with(image="broken.png"))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(data.DataError, match=r"line 3: image file .*broken.png cannot be read"):
        data.load_jsonl(path, image_dir=tmp_path)


def test_small_float_overshoot_and_integer_answer_are_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, _with(answer=2, bboxs=[[-0.5, 0, 28.9, 56.4]]))
    records = data.load_jsonl(path, image_dir=tmp_path)
    assert [r.answer for r in records] == ["1", "2"]
    assert records[1].bboxs == [[-0.5, 0.0, 28.9, 56.4]]


def test_check_images_false_skips_the_files(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(_with(image="nowhere.png") + "\n", encoding="utf-8")
    assert data.load_jsonl(path, check_images=False)[0].image == "nowhere.png"


# ---------------------------------------------------------------------------------------------
# The real GRIT files and the hub
# ---------------------------------------------------------------------------------------------


def test_load_grit_train_reads_the_official_layout() -> None:
    records = data.load_grit_train(FIXTURE)
    assert [r.dataset for r in records] == ["tallyqa", "tallyqa", "vsr", "vsr"]
    assert records[1].bboxs == [] and records[1].answer == "0"
    assert records[2].image_path == FIXTURE / "vsr" / "000000410123.jpg"
    assert all(r.image_path.is_file() for r in records)


def test_load_grit_train_names_the_missing_files(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match="tallyqa_train_10.jsonl, vsr_cot_train_10.jsonl"):
        data.load_grit_train(tmp_path)


def test_fetch_fails_fast_when_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(data.DataError) as caught:
        data.fetch_grit_data(tmp_path)
    assert time.monotonic() - start < 3
    message = str(caught.value)
    assert "HF_HUB_OFFLINE" in message and data.GRIT_DATA_REPO in message
    assert "load_grit_train(folder)" in message and "load_train()" in message


def test_fetch_fails_fast_when_the_hub_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    start = time.monotonic()
    with pytest.raises(data.DataError, match=r"127\.0\.0\.1:9.*load_grit_train"):
        data.fetch_grit_data(tmp_path / "grit", repo_id="someone/data", timeout=2)
    assert time.monotonic() - start < 5
    assert not (tmp_path / "grit").exists()


def _hub_without_images(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A stand-in hub that holds the fixture's JSON-lines files and no image (GRIT's hub
    copy, as its README describes it); returns the patterns each call asked for."""
    asked: dict[str, list[str]] = {"patterns": []}

    def snapshot(dest, patterns, repo_id, endpoint, timeout):
        asked["patterns"].append(sorted(patterns))
        dest.mkdir(parents=True, exist_ok=True)
        for name in [*data.GRIT_TRAIN_FILES, *data.GRIT_EVAL_FILES]:
            if name in patterns:
                shutil.copy(FIXTURE / name, dest / name)

    monkeypatch.setattr(data, "_snapshot", snapshot)
    return asked


# The datasets' publishers, stood in for by the fixture's folders (urllib reads file:// URLs).
SOURCES = {name: (f"file://{FIXTURE / name}/{{image}}",) for name in ("vsr", "tallyqa")}


def test_fetch_downloads_only_the_training_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    asked = {}
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(data, "_probe", lambda endpoint, timeout: None)

    def snapshot(repo, **kw):
        asked.update(kw)
        for name in data.GRIT_TRAIN_FILES:
            shutil.copy(FIXTURE / name, tmp_path / name)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    assert data.fetch_grit_data(tmp_path, sources=SOURCES) == tmp_path
    assert sorted(asked["allow_patterns"]) == sorted(
        ["tallyqa_train_10.jsonl", "vsr_cot_train_10.jsonl", "tallyqa/*", "vsr/*"]
    )
    assert asked["repo_type"] == "dataset" and asked["local_dir"] == tmp_path
    assert data.load_grit_train(tmp_path) == data.load_grit_train(FIXTURE)


def test_a_hub_copy_without_images_gets_them_from_their_publishers_or_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hub_without_images(monkeypatch)
    data.fetch_grit_data(tmp_path / "ok", sources=SOURCES)
    for r in data.load_grit_train(tmp_path / "ok"):  # every image, byte for byte
        assert r.image_path.read_bytes() == (FIXTURE / r.dataset / r.image).read_bytes()
    nowhere = {name: ("file:///no/such/folder/{image}",) for name in SOURCES}
    data.fetch_grit_data(tmp_path / "lost", sources=nowhere)
    with pytest.raises(data.DataError, match=r"4 of the 4 images of GRIT's training triplets"):
        data.load_grit_train(tmp_path / "lost")


def test_a_wrong_picture_under_the_right_name_is_not_kept(tmp_path: Path) -> None:
    record = data.load_grit_train(FIXTURE)[0]
    other = data.load_grit_train(FIXTURE)[1]  # another size
    moved = dataclasses.replace(record, image_path=tmp_path / "x.jpg")
    wrong = {record.dataset: (f"file://{other.image_path}", f"file://{record.image_path}")}
    assert data.fetch_images([moved], wrong) == 0  # the first source's picture is refused
    assert moved.image_path.read_bytes() == record.image_path.read_bytes()
    assert list(tmp_path.iterdir()) == [moved.image_path]  # no .part file left


def test_the_heldout_sample_is_fixed_and_drawn_from_each_file() -> None:
    first = data.load_grit_heldout(FIXTURE, per_file=2, seed=7)
    assert first == data.load_grit_heldout(FIXTURE, per_file=2, seed=7)
    assert [r.dataset for r in first] == ["vsr", "vsr", "tallyqa", "tallyqa"]
    everything = data.load_grit_heldout(FIXTURE)  # 50 a file: all 3 + 3 here
    assert len(everything) == 6 and all(r in everything for r in first)
    assert {r.question for r in everything}.isdisjoint(
        {r.question for r in data.load_grit_train(FIXTURE)}
    )
    without_boxes = [r for r in everything if r.question == "How many people are there?"]
    assert without_boxes[0].bboxs == []  # the file gives none: IoU skips it
    nested = [r for r in everything if "/" in r.image][0]
    assert nested.image_path == FIXTURE / "tallyqa" / "VG_100K_2" / "2390171.jpg"


def test_heldout_fetch_takes_only_the_sample_and_then_reads_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _hub_without_images(monkeypatch)
    records = data.fetch_grit_heldout(tmp_path, per_file=2, sources=SOURCES)
    assert [r.question for r in records] == [
        r.question for r in data.load_grit_heldout(FIXTURE, per_file=2)
    ]
    images = sorted(f"{r.dataset}/{r.image}" for r in records)
    assert asked["patterns"] == [sorted(data.GRIT_EVAL_FILES), images]  # files, then 4 images
    monkeypatch.setattr(data, "_snapshot", lambda *a: pytest.fail("fetched again"))
    assert data.fetch_grit_heldout(tmp_path, per_file=2) == records


def test_heldout_fetch_offline_fails_fast_as_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(data.Unreachable, match="HF_HUB_OFFLINE"):
        data.fetch_grit_heldout(tmp_path)


# ---------------------------------------------------------------------------------------------
# The synthetic world
# ---------------------------------------------------------------------------------------------


def test_committed_train_split_reproduces(train: list, tmp_path: Path) -> None:
    committed = data.load_train()
    assert committed == [record for record, _ in train]
    for record, (_, image) in zip(committed, train, strict=True):
        pixels = np.asarray(Image.open(record.image_path).convert("RGB"))
        assert np.array_equal(pixels, np.asarray(image)), record.image
    path = data.write_split(train, tmp_path, data.TRAIN_JSONL)
    assert path.read_bytes() == (data.DATA_DIR / data.TRAIN_JSONL).read_bytes()


def test_train_split_shape(train: list) -> None:
    records = [record for record, _ in train]
    assert [r.dataset for r in records] == ["tallyqa"] * 10 + ["vsr"] * 10
    assert {r.split for r in records} == {"train"}
    assert Counter(r.answer for r in records[10:]) == {"yes": 5, "no": 5}
    relations = [_SPATIAL.fullmatch(r.question).group(3) for r in records[10:]]
    assert set(relations) == set(data.RELATIONS)
    assert {int(r.answer) for r in records[:10]} == set(range(7))
    assert len({r.image for r in records}) == 20
    assert all(qwen_resized_size(r.width, r.height) == (r.width, r.height) for r in records)


def test_write_then_load_round_trip(tmp_path: Path) -> None:
    pairs = data.synthetic_split("x", 4, seed=5)
    data.main(["make-eval", str(tmp_path), "-n", "4"])  # the CLI writes a loadable split too
    assert len(data.load_jsonl(tmp_path / "eval_4.jsonl")) == 4
    path = data.write_split(pairs, tmp_path / "rt", "x.jsonl")
    loaded = data.load_jsonl(path)
    assert loaded == [record for record, _ in pairs]
    for record, (_, image) in zip(loaded, pairs, strict=True):
        assert np.array_equal(np.asarray(Image.open(record.image_path)), np.asarray(image))


def test_same_seed_same_split_other_seed_other_split() -> None:
    a, b, c = (data.synthetic_split("x", 4, seed) for seed in (7, 7, 8))
    assert [r for r, _ in a] == [r for r, _ in b]
    assert all(im1.tobytes() == im2.tobytes() for (_, im1), (_, im2) in zip(a, b, strict=True))
    assert [r for r, _ in a] != [r for r, _ in c]


def test_eval_split_is_balanced_and_disjoint_from_train(train: list, evaluation: list) -> None:
    records = [record for record, _ in evaluation]
    assert len(records) == 200 and {r.split for r in records} == {"eval"}
    assert Counter(r.dataset for r in records) == {"tallyqa": 100, "vsr": 100}
    assert Counter(r.answer for r in records if r.dataset == "vsr") == {"yes": 50, "no": 50}
    assert {r.answer for r in records if r.dataset == "tallyqa"} == {str(k) for k in range(7)}
    train_keys = {(r.question, im.tobytes()) for r, im in train}
    assert not train_keys & {(r.question, im.tobytes()) for r, im in evaluation}
    with pytest.raises(ValueError, match="differ"):
        data.eval_split(4, seed=data.TRAIN_SEED)


_COUNT = re.compile(r"How many (\w+) (\w+)s are there\?")
_SPATIAL = re.compile(r"Is the (\w+) (\w+) (left of|right of|above|below) the (\w+) (\w+)\?")


def _check_item(scene: data.Scene, q: data.Question) -> None:
    """Recompute the answer and the boxes from the scene's objects, independently."""
    boxes = [list(map(float, o.box)) for o in scene.objects]
    for x1, y1, x2, y2 in boxes:
        assert 0 <= x1 < x2 <= scene.width and 0 <= y1 < y2 <= scene.height
    if q.dataset == "tallyqa":
        colour, shape = _COUNT.fullmatch(q.question).groups()
        hits = [o for o in scene.objects if (o.colour, o.shape) == (colour, shape)]
        assert q.answer == str(len(hits)) and 0 <= len(hits) <= 6
        assert q.bboxs == [list(map(float, o.box)) for o in hits]
        assert len(hits) < len(scene.objects)  # there is always a distractor
        return
    ca, sa, relation, cb, sb = _SPATIAL.fullmatch(q.question).groups()
    [a] = [o for o in scene.objects if (o.colour, o.shape) == (ca, sa)]  # unique, else fails
    [b] = [o for o in scene.objects if (o.colour, o.shape) == (cb, sb)]
    assert q.bboxs == [list(map(float, a.box)), list(map(float, b.box))]
    axis = 0 if relation in ("left of", "right of") else 1
    ca_, cb_ = (sum(o.box[axis::2]) / 2 for o in (a, b))
    assert abs(ca_ - cb_) >= scene.width / 4  # unambiguous
    truth = ca_ < cb_ if relation in ("left of", "above") else ca_ > cb_
    assert q.answer == ("yes" if truth else "no")


def _check_pixels(scene: data.Scene, image: Image.Image) -> None:
    """Each box is tight: its border rows and columns show the object's colours, and the
    pixels just outside it show none of them."""
    pixels = np.asarray(image)
    for o in scene.objects:
        x1, y1, x2, y2 = o.box
        colours = np.array([data.COLOURS[o.colour], data.outline_colour(data.COLOURS[o.colour])])

        def has_colour(region: np.ndarray, colours: np.ndarray = colours) -> bool:
            return bool((region.reshape(-1, 1, 3) == colours).all(-1).any())

        for edge in (
            pixels[y1, x1:x2],
            pixels[y2 - 1, x1:x2],
            pixels[y1:y2, x1],
            pixels[y1:y2, x2 - 1],
        ):
            assert has_colour(edge)
        for edge in (
            pixels[y1 - 1, x1:x2],
            pixels[y2, x1:x2],
            pixels[y1:y2, x1 - 1],
            pixels[y1:y2, x2],
        ):
            assert not has_colour(edge)


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1))
def test_any_seed_gives_valid_correct_tight_items(seed: int) -> None:
    for scene, q in data.synthetic_items(4, seed):
        _check_item(scene, q)
        _check_pixels(scene, data.render(scene))
    for record, _ in data.synthetic_split("s", 2, seed):
        assert data._check_fields(record.to_json()) is None


def test_committed_items_are_correct() -> None:
    for scene, q in data.synthetic_items(20, data.TRAIN_SEED):
        _check_item(scene, q)
        _check_pixels(scene, data.render(scene))


def test_objects_never_overlap_and_keep_a_margin() -> None:
    for scene, _ in data.synthetic_items(30, seed=3):
        for i, a in enumerate(scene.objects):
            for b in scene.objects[i + 1 :]:
                apart_x = a.box[2] + 8 <= b.box[0] or b.box[2] + 8 <= a.box[0]
                apart_y = a.box[3] + 8 <= b.box[1] or b.box[3] + 8 <= a.box[1]
                assert apart_x or apart_y


def test_spatial_question_is_none_without_a_clear_pair() -> None:
    import random

    close = data.Scene(
        224,
        224,
        (data.Obj("red", "circle", (10, 10, 40, 40)), data.Obj("blue", "square", (50, 50, 80, 80))),
        data._background(random.Random(0)),
    )
    assert data.spatial_question(close, random.Random(0)) is None
    twins = data.Scene(224, 224, close.objects[:1] * 2, close.background)
    assert data.spatial_question(twins, random.Random(0)) is None


# ---------------------------------------------------------------------------------------------
# TRL
# ---------------------------------------------------------------------------------------------


def test_to_dataset_matches_what_grpo_trainer_reads(train: list) -> None:
    from trl.data_utils import is_conversational, prepare_multimodal_messages

    dataset = data.to_dataset(train[:2] + train[10:12])
    assert set(dataset.column_names) == {
        "prompt",
        "image",
        "question",
        "answer",
        "dataset",
        "bboxs",
        "width",
        "height",
    }
    row = dataset[0]
    assert is_conversational(row)
    assert row["prompt"][0]["content"][1]["text"].endswith(GRIT_PROMPT_SUFFIX)
    assert row["question"] in row["prompt"][0]["content"][1]["text"]
    assert row["image"].size == (224, 224) and row["answer"] == train[0][0].answer
    assert dataset["dataset"] == ["tallyqa", "tallyqa", "vsr", "vsr"]
    assert dataset[2]["bboxs"] == train[10][0].bboxs
    # What GRPOTrainer does with an "image" column: fill the prompt's image placeholder.
    filled = prepare_multimodal_messages(row["prompt"], [row["image"]])
    assert filled[0]["content"][0]["image"] is row["image"]


def test_to_dataset_opens_loaded_records() -> None:
    dataset = data.to_dataset(data.load_grit_train(FIXTURE))
    assert dataset["bboxs"][1] == [] and dataset["answer"] == ["2", "0", "yes", "no"]
    assert dataset[3]["image"].size == (48, 64)
    with pytest.raises(data.DataError, match="image_dir"):
        data.to_dataset([data.Record(**{**GOOD, "bboxs": []})])
