"""Notebook 06's GPU section on the CPU: the tiny model stands in for the 3B; and --data."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import pytest

from grit_lite import data, presets, train, walkthrough

matplotlib.use("Agg")
FIXTURE = Path(__file__).parent / "fixtures" / "grit_data"
REPO = Path(__file__).resolve().parents[1]


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
        results = [walkthrough.show_triplets(w), walkthrough.load(w), walkthrough.budget(w),
                   walkthrough.run(w), walkthrough.compare(w)]  # fmt: skip
        assert w is None and results == [None, None, 0, None, None]
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


def test_on_a_gpu_the_card_picks_the_preset(monkeypatch):
    class T4:
        name, total_memory, major, minor = "Tesla T4", 15 * 2**30, 7, 5

    monkeypatch.setattr(walkthrough.torch.cuda, "get_device_properties", lambda i: T4())
    name, preset = walkthrough._gpu_preset("random-3b")
    assert name == "qwen2.5-vl-3b-colab"
    assert preset == dataclasses.replace(train.PRESETS[name], model="random-3b")


# -- the cells, end to end, with the tiny model and a stand-in of GRIT's evaluation files ---------


def _steady(monkeypatch, step_s=10.0):
    """A preflight that projects ``step_s`` a step, and a clock that stands still: the steps
    a budget buys, and when a run stops, no longer depend on this machine's speed."""
    real = walkthrough.preflight.project
    timing = lambda rows, preset: {**real(rows, preset), "step_s": step_s}  # noqa: E731
    monkeypatch.setattr(walkthrough.preflight, "project", timing)
    monkeypatch.setattr(walkthrough.runs, "_clock", lambda: 0.0)


def test_every_cell_runs_with_the_tiny_model_standing_in(monkeypatch, tmp_path, capsys):
    _steady(monkeypatch)
    w = walkthrough.plan(minutes=0.5, output=tmp_path / "run", preset=_tiny_preset(),
                         heldout_folder=FIXTURE)  # fmt: skip
    assert w is not None and len(w.items) == 20 and len(w.heldout) == 6
    plan_lines = capsys.readouterr().out.splitlines()
    assert plan_lines == [
        "training on: the 20 synthetic triplets (the tiny model knows only shapes)",
        f"scoring on: 3 VSR + 3 TallyQA questions of GRIT's evaluation files in {FIXTURE}",
        f"budget: 0.5 min of training; run folder {tmp_path / 'run'} (a new run)",
    ]
    walkthrough.show_triplets(w)
    before = walkthrough.load(w)
    assert list(before.columns) == ["before"] and "accuracy" in before.index
    weights = {k: v.clone() for k, v in w.model.state_dict().items()}
    assert walkthrough.budget(w) == 3  # 30 s at 10 s a step
    out = capsys.readouterr().out
    assert "check passed" in out and "0.5 min buy 3 steps here" in out
    assert all((w.model.state_dict()[k] == v).all() for k, v in weights.items())  # lr 0
    assert not (tmp_path / "run").exists()  # the preflight wrote elsewhere
    assert walkthrough.run(w) == tmp_path / "run"
    assert w.trainer.state.global_step == 3
    capsys.readouterr()  # the live curves
    rows = train.read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [row["step"] for row in rows] == [1, 2, 3]
    saved = json.loads((tmp_path / "run" / "preset.json").read_text())
    assert saved["data"] == w.data_source and saved["max_steps"] == 3
    table = walkthrough.compare(w)
    assert list(table.columns) == ["before", "after", "change"]
    assert len(w.rows["after"]) == 6 and len(w.rows["before"]) == 6
    heading = capsys.readouterr().out.splitlines()[1:]  # after the gallery
    assert heading[0] == "3 steps on the 20 synthetic triplets (the tiny model knows only shapes)"
    assert heading[1].startswith("scored on 3 VSR + 3 TallyQA questions of GRIT's")
    paper = heading[2:]  # the paper's rows, beside the course's table, with what differs
    assert paper[0].startswith("the paper's Table 1") and "GPT-4o" in "\n".join(paper)
    rows = {line[:22].strip(): line[22:].split() for line in paper[2:5]}
    assert list(rows) == list(walkthrough.PAPER_TABLE)
    assert rows["after GRIT"] == ["72.9%", "0.325", "47.8%", "0.447"]


def test_the_minutes_stop_the_run_and_the_next_run_continues_it(monkeypatch, tmp_path, capsys):
    _steady(monkeypatch, step_s=2.0)
    w = walkthrough.plan(minutes=0.1, output=tmp_path, preset=_tiny_preset(),
                         heldout_folder=FIXTURE)  # fmt: skip
    walkthrough.load(w)
    assert walkthrough.budget(w) == 3
    ticks = iter(range(0, 10**6, 4))  # 4 s a reading: past 6 s after step 2
    monkeypatch.setattr(walkthrough.runs, "_clock", lambda: float(next(ticks)))
    walkthrough.run(w)
    assert w.trainer.state.global_step == 2
    assert "0.1 minutes are up after step 2" in capsys.readouterr().out
    assert walkthrough.compare(w) is not None  # the model so far is scored
    again = walkthrough.plan(minutes=0.1, output=tmp_path, preset=_tiny_preset(),
                             heldout_folder=FIXTURE)  # fmt: skip
    assert again.resume and "continuing the run there" in capsys.readouterr().out
    scored_again = lambda *a, **k: pytest.fail("the start model was scored again")  # noqa: E731
    monkeypatch.setattr(walkthrough.scoring, "evaluate_model", scored_again)
    table = walkthrough.load(again)  # the "before" of the first section, from the run folder
    assert again.summaries["before"] == w.summaries["before"] and list(table.columns) == ["before"]
    assert "the start model's scores, from" in capsys.readouterr().out


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


# -- a run folder on Google Drive survives a disconnect ---------------------------------------


KILLED_RUN = """
import dataclasses, sys
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
from transformers import TrainerCallback
from grit_lite import train, walkthrough

class Disconnect(TrainerCallback):  # the runtime goes away after step 2's checkpoint
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == 2:
            Path(sys.argv[2]).write_text("saved")
            import time; time.sleep(600)

walkthrough.live_curves = Disconnect
walkthrough.CHECKPOINT_MINUTES = 1  # a checkpoint every step, at the minute a step below
walkthrough.preflight.project = lambda rows, preset: {"step_s": 60.0, "run_s": 240.0,
                                                       "tokens_per_s": 1.0}
small = dict(num_generations=2, completions_per_step=4, max_completion_length=16)
preset = dataclasses.replace(train.PRESETS["tiny-cpu"], **small)
w = walkthrough.plan(minutes=4, output=sys.argv[1], preset=preset,
                     heldout_folder=sys.argv[3])
walkthrough.load(w)
walkthrough.budget(w)
walkthrough.run(w)
"""


def test_a_run_on_a_stand_in_drive_resumes_after_the_runtime_is_killed(monkeypatch, tmp_path):
    mounted = []
    drive = tmp_path / "drive"
    folder = walkthrough.run_folder(True, mount=mounted.append, root=drive)
    assert mounted == [str(drive)] and folder == drive / "MyDrive" / "grit-lite" / "walkthrough"
    assert walkthrough.run_folder(False) == Path("runs/walkthrough")
    marker = tmp_path / "saved"
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(folder), str(marker),
                              str(FIXTURE)], cwd=REPO)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the first run never reached its second checkpoint"
    finally:
        child.kill()  # no clean-up, no save: the runtime is gone
        child.wait()
    assert [c.name for c in walkthrough.runs.checkpoints(folder)] == ["checkpoint-1",
                                                                      "checkpoint-2"]  # fmt: skip
    # The section again, in a new runtime: the same cells continue the run instead of restarting.
    w = walkthrough.plan(minutes=10, output=folder, preset=_tiny_preset(), heldout_folder=FIXTURE)
    assert w.resume
    walkthrough.load(w)
    assert walkthrough.budget(w) == 4  # the first run's length, not a new projection
    walkthrough.run(w)
    assert w.trainer.state.global_step == 4
    rows = train.read_metrics(folder / "metrics.jsonl")
    assert [row["step"] for row in rows] == [1, 2, 3, 4]  # every step logged once


# -- --data: synthetic, GRIT's own, or a folder ---------------------------------------------------


def test_the_tiny_model_trains_on_the_synthetic_triplets_without_a_word():
    said = []
    items, source = train.training_data(None, "tiny", say=said.append)
    assert [r for r, _ in items] == [r for r, _ in data.train_split()] and said == []
    assert source == "the 20 synthetic triplets (the tiny model knows only shapes)"
    assert train.knows_only_shapes(str(data.DATA_DIR / "tiny"))
    assert not train.knows_only_shapes(presets.QWEN_3B)


def test_a_gpu_model_offline_falls_back_and_names_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    said = []
    items, source = train.training_data(None, presets.QWEN_3B, cache=tmp_path / "cache",
                                        say=said.append)  # fmt: skip
    assert [r.question for r, _ in items] == [r.question for r, _ in data.train_split()]
    assert source.startswith("the 20 synthetic triplets, NOT GRIT's") and "HF_HUB_OFFLINE" in source
    assert said == [f"training on {source}; --data FOLDER uses a local copy"]
    with pytest.raises(data.DataError, match="HF_HUB_OFFLINE"):
        train.training_data("grit", presets.QWEN_3B, cache=tmp_path / "cache")


def test_a_hub_copy_without_images_is_an_error_unless_the_fallback_is_asked(monkeypatch, tmp_path):
    def fetch(dest):  # the JSON lines arrive, no image does
        dest.mkdir(parents=True)
        for name in data.GRIT_TRAIN_FILES:
            shutil.copy(FIXTURE / name, dest / name)
        return dest

    monkeypatch.setattr(data, "fetch_grit_data", fetch)
    with pytest.raises(data.DataError, match=r"4 of the 4 images.*--data synthetic"):
        train.training_data(None, presets.QWEN_3B, cache=tmp_path / "a")
    said = []
    items, source = train.training_data(None, presets.QWEN_3B, cache=tmp_path / "b",
                                        say=said.append, fallback=True)  # fmt: skip
    assert len(items) == 20 and "NOT GRIT's: 4 of the 4 images" in source and len(said) == 1
    w = walkthrough.plan(preset=_tiny_preset(model="random-3b"), cache=tmp_path / "c")
    assert w is None  # not the tiny model, so GRIT's data: the plan stops, in one line


def test_offline_heldout_questions_fall_back_in_one_named_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    heldout, source = walkthrough._heldout(presets.QWEN_3B, None, tmp_path, 4)
    assert len(heldout) == 4 and source.startswith("4 synthetic held-out scenes, NOT GRIT's")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "scoring on 4 synthetic held-out scenes instead" in out


def test_grit_triplets_come_from_the_cache_or_are_fetched_into_it(monkeypatch, tmp_path):
    fetched = []

    def fetch(dest):
        fetched.append(dest)
        shutil.copytree(FIXTURE, dest)
        return dest

    monkeypatch.setattr(data, "fetch_grit_data", fetch)
    cache = tmp_path / "cache"
    for choice in (None, "grit"):  # the first call downloads, the second reads the cache
        items, source = train.training_data(choice, presets.QWEN_3B, cache=cache)
        assert sorted({r.dataset for r, _ in items}) == sorted(
            {r.dataset for r in data.load_grit_train(FIXTURE)}
        )
        assert len(items) == len(data.load_grit_train(FIXTURE))
        assert source == f"GRIT's 20 triplets (VSR and TallyQA) from {cache}"
    assert fetched == [cache]
    local, _ = train.training_data(str(FIXTURE), "tiny")  # a folder wins over the model's default
    assert [r.question for r, _ in local] == [r.question for r, _ in items]


@pytest.mark.parametrize("value", ["synthetic", "grit", str(FIXTURE)])
def test_data_choices_reach_the_run(monkeypatch, tmp_path, value):
    seen = {}
    monkeypatch.setattr(train, "train", lambda preset, output, **kw: seen.update(kw))
    train.main(["--preset", "tiny-cpu", "--output", str(tmp_path), "--data", value])
    assert seen["data_choice"] == value


def test_in_colab_the_run_folder_is_on_drive_by_default(monkeypatch, tmp_path):
    import types

    mounted = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    folder = walkthrough.run_folder(root=tmp_path)
    assert mounted == [str(tmp_path)]
    assert folder == tmp_path / "MyDrive" / "grit-lite" / "walkthrough"
    assert walkthrough.run_folder(use_drive=False) == Path("runs/walkthrough")  # asked for


def test_held_out_answers_are_scored_at_the_runs_completion_length(monkeypatch):
    seen = []
    monkeypatch.setattr(walkthrough.scoring, "evaluate_model",
                        lambda model, processor, items, tokens, **kw: seen.append(tokens) or [])
    colab = train.PRESETS["qwen2.5-vl-3b-colab"]
    w = walkthrough.Walkthrough(colab, "colab", Path("unused"), 1.0, [], "", [], "")
    walkthrough._score(w, "before", __import__("torch").nn.Linear(1, 1))
    assert seen == [colab.max_completion_length]  # 512: a GRIT answer is not cut at 256
