"""Notebook 06's GPU section on the CPU: the tiny model stands in for the 3B; and --data."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import matplotlib
import pytest

from grit_lite import data, presets, train, walkthrough

matplotlib.use("Agg")
FIXTURE = Path(__file__).parent / "fixtures" / "grit_data"


def _tiny_preset(**changes) -> presets.Preset:
    small = dict(max_steps=2, num_generations=2, completions_per_step=4, max_completion_length=16,
                 save_steps=1, learning_rate=1e-3)  # fmt: skip
    return dataclasses.replace(train.PRESETS["tiny-cpu"], **(small | changes))


# -- without a GPU: one stable line, then nothing -------------------------------------------------


def test_without_a_gpu_the_section_prints_one_stable_line(monkeypatch, capsys):
    monkeypatch.setattr(walkthrough.torch.cuda, "is_available", lambda: False)
    outputs = []
    for _ in range(2):
        w = walkthrough.plan()
        results = [walkthrough.show_triplets(w), walkthrough.load(w), walkthrough.run(w),
                   walkthrough.compare(w)]  # fmt: skip
        assert w is None and results == [None] * 4
        outputs.append(capsys.readouterr())
    assert outputs[0] == outputs[1]
    assert outputs[0].err == "" and outputs[0].out.count("\n") == 1
    assert outputs[0].out.startswith("GPU section skipped: no CUDA GPU here. To run it")


def test_an_unloadable_model_skips_in_one_line_without_the_network(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(presets, "_cached", lambda name: False)
    w = walkthrough.plan(preset=_tiny_preset(model="Qwen/Not-Cached-Here"))
    out = capsys.readouterr().out
    assert w is None and out.count("\n") == 1
    assert out.startswith("GPU section skipped: the model cannot be loaded")


def test_on_a_gpu_the_card_picks_the_preset_and_the_steps(monkeypatch):
    class T4:
        name, total_memory, major, minor = "Tesla T4", 15 * 2**30, 7, 5

    monkeypatch.setattr(walkthrough.torch.cuda, "get_device_properties", lambda i: T4())
    monkeypatch.setenv(walkthrough.STEPS_ENV, "7")
    preset = walkthrough._gpu_preset("random-3b", 7)
    assert preset == dataclasses.replace(train.PRESETS["qwen2.5-vl-3b-colab"], model="random-3b",
                                         max_steps=7)  # fmt: skip


# -- the cells, end to end, with the tiny model ---------------------------------------------------


def test_every_cell_runs_with_the_tiny_model_standing_in(tmp_path, capsys):
    w = walkthrough.plan(output=tmp_path / "run", heldout=3, preset=_tiny_preset())
    assert w is not None and len(w.items) == 20 and len(w.heldout) == 3
    walkthrough.show_triplets(w)
    before = walkthrough.load(w)
    assert list(before.columns) == ["before"] and "accuracy" in before.index
    assert walkthrough.run(w) == tmp_path / "run"
    assert w.trainer.state.global_step == 2
    rows = train.read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [row["step"] for row in rows] == [1, 2]
    table = walkthrough.compare(w)
    assert list(table.columns) == ["before", "after", "change"]
    assert len(w.rows["after"]) == 3 and len(w.rows["before"]) == 3
    assert "Traceback" not in capsys.readouterr().err


def test_the_live_curves_redraw_one_figure(monkeypatch):
    shown = []

    class Handle:
        def update(self, fig):
            shown.append(("update", fig))

    def display(fig, display_id=False):
        shown.append(("display", fig))
        return Handle()

    monkeypatch.setattr("IPython.display.display", display)
    callback = walkthrough.live_curves()

    class State:
        is_world_process_zero, global_step = True, 0

    state = State()
    for step in (1, 2, 3):
        state.global_step = step
        callback.on_log(None, state, None, logs={"reward": 0.1 * step, "kl": 0.0})
        callback.on_log(None, state, None, logs={"train_runtime": 1.0})  # not a step's log
    assert [kind for kind, _ in shown] == ["display", "update", "update"]
    assert [row["step"] for row in callback.metrics] == [1, 2, 3]


# -- --data: synthetic, GRIT's own, or a folder ---------------------------------------------------


def test_the_tiny_model_trains_on_the_synthetic_triplets_without_a_word():
    said = []
    items = train.training_data(None, "tiny", say=said.append)
    assert [r for r, _ in items] == [r for r, _ in data.train_split()] and said == []
    assert train.knows_only_shapes(str(data.DATA_DIR / "tiny"))
    assert not train.knows_only_shapes(presets.QWEN_3B)


def test_a_gpu_model_offline_falls_back_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    said = []
    items = train.training_data(None, presets.QWEN_3B, cache=tmp_path / "cache", say=said.append)
    assert [r.question for r, _ in items] == [r.question for r, _ in data.train_split()]
    assert len(said) == 1 and said[0].startswith("training on the 20 synthetic triplets")
    assert "HF_HUB_OFFLINE" in said[0] and "--data FOLDER" in said[0]
    with pytest.raises(data.DataError, match="HF_HUB_OFFLINE"):
        train.training_data("grit", presets.QWEN_3B, cache=tmp_path / "cache")


def test_grit_triplets_come_from_the_cache_or_are_fetched_into_it(monkeypatch, tmp_path):
    fetched = []

    def fetch(dest):
        fetched.append(dest)
        shutil.copytree(FIXTURE, dest)
        return dest

    monkeypatch.setattr(data, "fetch_grit_data", fetch)
    cache = tmp_path / "cache"
    for choice in (None, "grit"):  # the first call downloads, the second reads the cache
        items = train.training_data(choice, presets.QWEN_3B, cache=cache)
        assert sorted({r.dataset for r, _ in items}) == sorted(
            {r.dataset for r in data.load_grit_train(FIXTURE)}
        )
        assert len(items) == len(data.load_grit_train(FIXTURE))
    assert fetched == [cache]
    local = train.training_data(str(FIXTURE), "tiny")  # a folder wins over the model's default
    assert [r.question for r, _ in local] == [r.question for r, _ in items]


@pytest.mark.parametrize("value", ["synthetic", "grit", str(FIXTURE)])
def test_data_choices_reach_the_run(monkeypatch, tmp_path, value):
    seen = {}
    monkeypatch.setattr(train, "train", lambda preset, output, **kw: seen.update(kw))
    train.main(["--preset", "tiny-cpu", "--output", str(tmp_path), "--data", value])
    assert seen["data_choice"] == value
