"""Every preset in its CPU shape (:func:`grit_lite.presets.cpu_stand_in`: the tiny model, fp32,
short lengths, every other setting as the preset has it), through every route a user takes:
the command line's run, ``--check`` and ``--resume``, and notebook 06's GPU cells in order,
each with and without a compile failure injected into compiled sampling. A new preset is
tested by adding it to ``PRESETS``: these tests pick it up."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import matplotlib
import pytest
import torch

from grit_lite import gpu, preflight, presets, report, runs, train, walkthrough

matplotlib.use("Agg")
FIXTURE = Path(__file__).parent / "fixtures" / "grit_data"
CASES = [(name, fails) for name in presets.PRESETS for fails in (False, True)]
IDS = [f"{name}-{'compile-fails' if fails else 'compiled'}" for name, fails in CASES]
FALLBACK = "compiled decoding failed (RuntimeError: injected"


def pretend_gpu(model: object, fails: bool) -> None:
    """``generate`` takes its compiled path on the CPU, as on a GPU; the "compiled" call is
    the eager one, or, with ``fails``, the first one raises like a Triton failure."""
    calls = []
    model._valid_auto_compile_criteria = lambda kwargs, config: (  # a GPU's rule, less the GPU
        not config.disable_compile and getattr(kwargs.get("cache"), "is_compileable", False))

    def get_compiled_call(config):
        calls.append(config)
        if fails and len(calls) == 1:
            def broken(*args, **kwargs):
                raise RuntimeError("injected: triton failed to compile the decoder")

            return broken
        return model.__call__

    model.get_compiled_call = get_compiled_call


class Checkpointing:
    """A callback reading at every step end whether activation checkpointing is on."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        self.seen: list[bool] = []
        seen = self.seen

        class Read(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kwargs):
                seen.append(gpu._checkpointing(model))

        self.callback = Read()


def stand_in(monkeypatch, name: str, fails: bool, steps: int | None = 2) -> tuple:
    """``PRESETS[name]`` replaced by its CPU stand-in, every model a run loads on the pretend
    GPU, and every run reporting its checkpointing: (the stand-in, the reading)."""
    preset = presets.cpu_stand_in(presets.PRESETS[name], steps=steps)
    monkeypatch.setitem(presets.PRESETS, name, preset)
    load, run = train.load_model, train.train

    def loaded(*args, **kwargs):
        model, processor = load(*args, **kwargs)
        pretend_gpu(model, fails)
        return model, processor

    reading = Checkpointing()

    def recorded(*args, callbacks=(), **kwargs):
        return run(*args, callbacks=[*callbacks, reading.callback], **kwargs)

    monkeypatch.setattr(train, "load_model", loaded)
    monkeypatch.setattr(train, "train", recorded)
    return preset, reading


def compiled_per_step(preset: presets.Preset, fails: bool, steps: int) -> list[float]:
    """What ``sampling/compiled`` must say: 1 only where the compiled graph really ran."""
    return [float(preset.fast_sampling and not fails)] * steps


@pytest.mark.parametrize(("name", "fails"), CASES, ids=IDS)
def test_the_command_line_runs_checks_and_resumes(monkeypatch, tmp_path, capsys, name, fails):
    preset, reading = stand_in(monkeypatch, name, fails)
    monkeypatch.chdir(tmp_path)
    kept = tmp_path / "check"

    @contextlib.contextmanager
    def kept_folder(prefix=""):
        kept.mkdir()
        yield str(kept)

    monkeypatch.setattr(preflight.tempfile, "TemporaryDirectory", kept_folder)
    with pytest.raises(SystemExit) as check:
        train.main(["--check", "--preset", name])
    out = capsys.readouterr().out
    assert check.value.code == 0, out
    written = {p.name for p in kept.iterdir()}
    assert "metrics.jsonl" in written and not written & {"final", "checkpoint-1", "checkpoint-2"}
    assert not (tmp_path / "runs").exists()  # the check saved nothing: no checkpoint, no final
    assert out.count(FALLBACK) == (1 if preset.fast_sampling and fails else 0)
    assert reading.seen == [preset.gradient_checkpointing] * 2

    run = tmp_path / "run"
    train.main(["--preset", name, "--output", str(run), "--save-steps", "1", "--rollouts", "0"])
    out = capsys.readouterr().out
    assert out.count(FALLBACK) == (1 if preset.fast_sampling and fails else 0)
    rows = report.read_metrics(run / "metrics.jsonl")
    assert [r["sampling/compiled"] for r in rows] == compiled_per_step(preset, fails, 2)
    assert (run / "final").is_dir() and (run / "heldout.txt").read_text() in out
    assert reading.seen[2:] == [preset.gradient_checkpointing] * 2  # every step, after a fallback
    if preset.lora:  # TRL's way: the base with adapters off is the reference, no "ref" copy
        assert (run / "final" / "adapter_config.json").is_file()
        assert not list(run.glob("**/ref")) and not (run / "reference").exists()

    train.main(["--preset", name, "--output", str(run), "--resume", "--max-steps", "3",
                "--rollouts", "0", "--no-heldout"])  # fmt: skip
    rows = report.read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert reading.seen[4:] == [preset.gradient_checkpointing]


def steady(monkeypatch, step_s: float = 10.0) -> None:
    """A preflight that projects ``step_s`` a step, and a clock that stands still: what the
    budget buys, and when a run stops, do not depend on this machine's speed."""
    real = preflight.project
    monkeypatch.setattr(preflight, "project", lambda rows, preset: {
        **real(rows, preset), "step_s": step_s})  # fmt: skip
    monkeypatch.setattr(runs, "_clock", lambda: 0.0)


@pytest.mark.parametrize(("name", "fails"), CASES, ids=IDS)
def test_notebook_06s_gpu_cells_run_in_order(monkeypatch, tmp_path, capsys, name, fails):
    preset, reading = stand_in(monkeypatch, name, fails, steps=None)  # the budget sets it
    steady(monkeypatch)
    monkeypatch.setattr(walkthrough.torch.cuda, "is_available", lambda: False)  # the CPU's
    w = walkthrough.plan(minutes=1 / 3, output=tmp_path / "run", preset=preset,
                         heldout_folder=FIXTURE)  # fmt: skip
    assert w is not None
    walkthrough.show_triplets(w)
    assert list(walkthrough.load(w).columns) == ["before"]
    assert walkthrough.budget(w) == 2  # 20 s at 10 s a step
    assert walkthrough.run(w) == tmp_path / "run"
    assert w.trainer.state.global_step == 2 and (tmp_path / "run" / "final").is_dir()
    table = walkthrough.compare(w)
    assert list(table.columns) == ["before", "after", "change"] and len(w.rows["after"]) == 6
    out = capsys.readouterr().out
    assert "check passed" in out and out.count(FALLBACK) == (
        2 if preset.fast_sampling and fails else 0)  # the preflight's model, then the run's
    assert reading.seen == [preset.gradient_checkpointing] * 4  # preflight 2, run 2
    rows = report.read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["sampling/compiled"] for r in rows] == compiled_per_step(preset, fails, 2)
    saved = json.loads((tmp_path / "run" / "preset.json").read_text())
    assert saved["lora"] == preset.lora and saved["max_steps"] == 2


def test_the_lora_preflight_hands_the_model_back_for_the_run(monkeypatch, tmp_path):
    """The colab preset's cells share one model between the preflight and the run; TRL used
    to add a ``ref`` adapter to it each time ("Adapter with name 'ref' already exists")."""
    preset, _ = stand_in(monkeypatch, "qwen2.5-vl-3b-colab", False, steps=None)
    steady(monkeypatch)
    w = walkthrough.plan(minutes=1 / 3, output=tmp_path, preset=preset, heldout_folder=FIXTURE)
    model, processor = train.load_model(preset)
    w.model, w.processor = model, processor
    names = {n for n, _ in model.named_parameters()}
    assert walkthrough.budget(w) == 2
    assert {n for n, _ in model.named_parameters()} == names  # no adapter left behind
    trainer = train.train(w.preset, tmp_path, model=model, processor=processor, items=w.items,
                          n_rollouts=0, progress=False, overwrite=True)  # fmt: skip
    adapters = {n.split(".lora_")[1].split(".")[1] for n, _ in trainer.model.named_parameters()
                if ".lora_" in n}  # fmt: skip
    assert adapters == {"default"} and trainer.ref_model is None


def _oom_at(call: int):
    """A stand-in for ``generate`` that runs out of memory at its ``call``-th call."""
    calls = []

    def generate(original):
        def wrapped(*args, **kwargs):
            calls.append(1)
            if len(calls) == call:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return original(*args, **kwargs)

        return wrapped

    return generate


def test_out_of_memory_mid_run_is_one_line_with_a_checkpoint(monkeypatch, tmp_path, capsys):
    name = "qwen2.5-vl-3b-colab"
    preset, reading = stand_in(monkeypatch, name, True, steps=3)
    oom = _oom_at(4)  # step 1: the compiled call fails, eager runs; step 2; step 3 fails
    load = train.load_model

    def loaded(*args, **kwargs):
        model, processor = load(*args, **kwargs)
        model.generate = oom(model.generate)
        return model, processor

    monkeypatch.setattr(train, "load_model", loaded)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        train.main(["--preset", name, "--output", str(run), "--save-steps", "1", "--rollouts",
                    "0", "--no-heldout"])  # fmt: skip
    message = str(stopped.value.code)
    assert message.count("\n") == 0 and message.startswith("error: out of GPU memory in ")
    assert "sampling of step 3" in message and "--max-completion-length 16" in message
    assert "--num-generations 2" in message and "--lora-rank 32" in message
    assert f"the last complete checkpoint is {run / 'checkpoint-2'}" in message
    assert message.endswith(f"--output {run} --save-steps 1 --rollouts 0 --no-heldout --resume")
    assert runs.incomplete(run / "checkpoint-2") is None
    assert reading.seen == [True, True]  # checkpointing stayed on through the fallback


def test_out_of_memory_in_the_update_stops_the_cell_in_one_line(monkeypatch, tmp_path, capsys):
    from trl import GRPOTrainer

    preset, _ = stand_in(monkeypatch, "qwen2.5-vl-3b-lora", False, steps=None)
    steady(monkeypatch)
    w = walkthrough.plan(minutes=1 / 3, output=tmp_path, preset=preset, heldout_folder=FIXTURE)
    walkthrough.load(w)
    walkthrough.budget(w)
    loss, calls = GRPOTrainer.compute_loss, []
    micro_batches = train.batch_split(preset, 1)[1]  # a step's gradient accumulation

    def compute_loss(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > micro_batches:  # step 1 passes, step 2 runs out
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return loss(self, *args, **kwargs)

    monkeypatch.setattr(GRPOTrainer, "compute_loss", compute_loss)
    capsys.readouterr()
    w.preset = dataclasses.replace(w.preset, save_steps=1)
    assert walkthrough.run(w) is None
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.startswith("the run stopped: out of GPU memory in the update of step 2: ")
    assert "checkpoint-1" in out and out.endswith("Run this section again to continue from it.")
