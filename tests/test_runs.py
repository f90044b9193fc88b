"""Run folders, resume, interruption and the CLIs' checks: nothing lost, nothing silent."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import nbformat
import pytest

from grit_lite import assign, data, evaluate, runs, train
from tests.test_train import _small_run

REPO = Path(__file__).resolve().parents[1]


def _earlier_run(folder: Path) -> dict[str, bytes]:
    """A run folder as an earlier run leaves it; returns its files' bytes."""
    (folder / "checkpoint-5").mkdir(parents=True)
    (folder / "checkpoint-5" / "trainer_state.json").write_text('{"global_step": 5}')
    (folder / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n')
    (folder / "preset.json").write_text('{"model": "earlier"}')
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# -- a start that fails touches nothing ----------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"model": "./no/such/model"}, {"model": "not-a-hub-id"}, {"data_choice": "no-such-folder"}],
)
def test_a_failed_start_keeps_the_earlier_run(tmp_path, change):
    before = _earlier_run(tmp_path / "run")
    preset = dataclasses.replace(train.PRESETS["tiny-cpu"], model=change.get("model", "tiny"))
    with pytest.raises((train.TrainError, data.DataError)):
        train.train(preset, tmp_path / "run", overwrite=True, n_rollouts=0,
                    data_choice=change.get("data_choice"))  # fmt: skip
    assert _files(tmp_path / "run") == before


def test_an_earlier_run_needs_resume_or_overwrite(tmp_path):
    before = _earlier_run(tmp_path / "run")
    with pytest.raises(runs.RunFolderError, match="--resume.*--overwrite"):
        train.train(train.PRESETS["tiny-cpu"], tmp_path / "run", n_rollouts=0)
    assert _files(tmp_path / "run") == before
    with pytest.raises(runs.RunFolderError, match="nothing to resume"):
        train.train(train.PRESETS["tiny-cpu"], tmp_path / "empty", resume=True)


def test_an_output_that_cannot_be_written_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(runs.RunFolderError, match="is a file"):
        runs.check_folder(tmp_path / "file" / "run", resume=False, overwrite=False)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(runs.RunFolderError, match="not writable"):
            runs.check_folder(locked / "run", resume=False, overwrite=False)


def test_overwrite_removes_the_earlier_runs_records_only(tmp_path):
    _earlier_run(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    runs.clear_earlier_run(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# -- resume: the newest complete checkpoint, every step logged once -------------------------------


def _checkpoint(folder: Path, step: int) -> Path:
    """A checkpoint with a valid safetensors file and a torch.save optimizer."""
    import torch
    from safetensors.torch import save_file

    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_file({"w": torch.ones(64)}, path / "model.safetensors")
    torch.save({"state": torch.ones(64)}, path / "optimizer.pt")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


@pytest.mark.parametrize(
    ("name", "cut", "why"),
    [("model.safetensors", True, "model.safetensors is cut off"),
     ("optimizer.pt", True, "optimizer.pt is cut off"),
     ("trainer_state.json", False, "trainer_state.json"),
     ("model.safetensors", False, "no weights")],
)  # fmt: skip
def test_resume_skips_a_half_written_newest_checkpoint(tmp_path, name, cut, why):
    _checkpoint(tmp_path, 9)
    newest = _checkpoint(tmp_path, 10)
    if cut:
        size = (newest / name).stat().st_size
        with (newest / name).open("r+b") as f:
            f.truncate(size - 10)
    else:
        (newest / name).unlink()
    checkpoint, skipped = runs.resume_point(tmp_path)
    assert checkpoint.name == "checkpoint-9"
    assert len(skipped) == 1 and "checkpoint-10" in skipped[0] and why in skipped[0]


def test_checkpoints_are_ordered_by_step_not_by_name(tmp_path):
    for step in (100, 25, 9):
        _checkpoint(tmp_path, step)
    assert [p.name for p in runs.checkpoints(tmp_path)][-1] == "checkpoint-100"
    assert runs.resume_point(tmp_path)[0].name == "checkpoint-100"


def test_resume_names_the_settings_it_changes(tmp_path):
    preset = train.PRESETS["tiny-cpu"]
    (tmp_path / "preset.json").write_text(json.dumps(dataclasses.asdict(preset)))
    assert runs.changed_settings(tmp_path / "preset.json", preset) == []
    changed = dataclasses.replace(preset, learning_rate=1e-3, note="other")
    lines = runs.changed_settings(tmp_path / "preset.json", changed)
    assert lines == ["resuming with learning_rate = 0.001 (the run used 0.0001)"]


def test_cut_log_keeps_the_steps_up_to_the_checkpoint(tmp_path):
    log = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "reward": s / 10} for s in (1, 2, 3, 4)]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 5, "rew')
    assert runs.cut_log(log, 2) == 3  # steps 3 and 4, and the line a crash cut off
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]


def test_resume_after_a_crash_logs_every_step_once(tmp_path, capsys):
    _small_run(tmp_path)  # 3 steps, a checkpoint after each
    newest = tmp_path / "checkpoint-3" / "model.safetensors"
    with newest.open("r+b") as f:  # killed while writing it
        f.truncate(newest.stat().st_size // 2)
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "reward": 9.0}\n{"step": 5, "rew')
    _small_run(tmp_path, resume=True)
    assert "skipped" in capsys.readouterr().out
    steps = [row["step"] for row in train.read_metrics(tmp_path / "metrics.jsonl")]
    assert steps == [1, 2, 3]
    assert runs.incomplete(tmp_path / "checkpoint-3") is None  # written again, whole


def test_ctrl_c_stops_after_the_step_with_a_checkpoint(tmp_path):
    from transformers import TrainerCallback

    class CtrlC(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 1:  # during step 2, as a user would press it
                os.kill(os.getpid(), signal.SIGINT)

    model, processor = train.tiny.load_tiny(train.tiny.SHIPPED)
    preset = dataclasses.replace(
        train.PRESETS["tiny-cpu"], max_steps=3, save_steps=100, num_generations=2,
        completions_per_step=4, max_completion_length=8,
    )  # fmt: skip
    before = signal.getsignal(signal.SIGINT)  # whatever earlier tests or plugins left there
    with pytest.raises(runs.Stopped) as stopped:
        train.train(preset, tmp_path, model=model, processor=processor, n_rollouts=0,
                    callbacks=[CtrlC()], progress=False)  # fmt: skip
    assert stopped.value.step == 2 and stopped.value.checkpoint.name == "checkpoint-2"
    assert runs.incomplete(stopped.value.checkpoint) is None
    assert signal.getsignal(signal.SIGINT) is before  # the handler it found is restored


def test_the_cli_prints_the_resume_command_and_no_traceback(monkeypatch, tmp_path, capsys):
    def stop(preset, output, **kw):
        raise runs.Stopped(27, Path(output) / "checkpoint-25")

    monkeypatch.setattr(train, "train", stop)
    argv = ["--preset", "tiny-cpu", "--output", str(tmp_path), "--overwrite", "--seed", "3"]
    with pytest.raises(SystemExit) as exit_:
        train.main(argv)
    assert exit_.value.code == 130
    err = capsys.readouterr().err
    assert "checkpoint-25" in err and "Traceback" not in err
    command = err.split("continue with: ")[1].strip()
    assert command.endswith("--resume") and "--overwrite" not in command
    assert f"--output {tmp_path}" in command and "--seed 3" in command

    def interrupted(preset, output, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "train", interrupted)
    with pytest.raises(SystemExit) as exit_:
        train.main(["--preset", "tiny-cpu", "--output", str(tmp_path / "new")])
    assert exit_.value.code == 130 and "no checkpoint was written" in capsys.readouterr().err


# -- a time budget: stop on time, with a checkpoint; resume to the same steps --------------------


def _budget_run(output, minutes=None, resume=False, overwrite=False):
    model, processor = train.tiny.load_tiny(train.tiny.SHIPPED)
    preset = dataclasses.replace(
        train.PRESETS["tiny-cpu"], max_steps=4, save_steps=100, num_generations=2,
        completions_per_step=4, max_completion_length=8, learning_rate=1e-3,
    )  # fmt: skip
    return train.train(preset, output, model=model, processor=processor, n_rollouts=0,
                       progress=False, max_minutes=minutes, resume=resume,
                       overwrite=overwrite)  # fmt: skip


def test_max_minutes_stops_after_the_first_step_past_the_budget_and_resumes(monkeypatch, tmp_path):
    import torch

    ticks = iter(range(0, 10**6, 60))  # every reading of the clock is a minute later
    monkeypatch.setattr(runs, "_clock", lambda: float(next(ticks)))
    with pytest.raises(runs.OutOfTime) as stopped:
        _budget_run(tmp_path / "budget", minutes=1.5)  # start 0, step 1 at 1 min, step 2 at 2
    assert stopped.value.step == 2 and stopped.value.checkpoint.name == "checkpoint-2"
    assert runs.incomplete(stopped.value.checkpoint) is None
    assert stopped.value.trainer.state.global_step == 2
    assert (tmp_path / "budget" / "final").is_dir()  # the model so far, as a finished run
    resumed = _budget_run(tmp_path / "budget", resume=True)
    straight = _budget_run(tmp_path / "straight")
    assert resumed.state.global_step == straight.state.global_step == 4
    rows = train.read_metrics(tmp_path / "budget" / "metrics.jsonl")
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    for a, b in zip(resumed.model.state_dict().values(), straight.model.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.allclose(a, b, atol=1e-6)  # the same steps, whether stopped or not


def test_a_budget_that_ends_at_the_last_step_finishes_the_run(monkeypatch, tmp_path):
    ticks = iter(range(0, 10**6, 60))
    monkeypatch.setattr(runs, "_clock", lambda: float(next(ticks)))
    trainer = _budget_run(tmp_path, minutes=3.5)  # past the budget only after step 4 (the last)
    assert trainer.state.global_step == 4 and (tmp_path / "final").is_dir()


def test_the_cli_says_how_to_go_on_after_the_budget(monkeypatch, tmp_path, capsys):
    seen = {}

    def out_of_time(preset, output, **kw):
        seen.update(kw)
        raise runs.OutOfTime(12, Path(output) / "checkpoint-12", kw["max_minutes"], None)

    monkeypatch.setattr(train, "budgeted", lambda preset, *a: (preset, {}))
    monkeypatch.setattr(train, "train", out_of_time)
    train.main(["--preset", "tiny-cpu", "--output", str(tmp_path), "--max-minutes", "25"])
    assert seen["max_minutes"] == 25.0
    out = capsys.readouterr().out
    assert "25 minutes are up after step 12" in out and "checkpoint-12" in out
    command = out.split("continue with: ")[1].strip()
    assert command.endswith("--max-minutes 25 --resume")


def test_max_minutes_sizes_the_cli_run_so_its_schedule_ends_within_them(monkeypatch, tmp_path):
    """As notebook 06 does: the preflight's projection sets the steps the minutes buy, so the
    cosine decays within the budget; the run ends with final/ like any finished run."""
    from grit_lite import preflight

    small = dataclasses.replace(train.PRESETS["tiny-cpu"], num_generations=2,
                                completions_per_step=4, max_completion_length=8)  # fmt: skip
    monkeypatch.setitem(train.PRESETS, "tiny-cpu", small)
    real = preflight.project
    monkeypatch.setattr(preflight, "project", lambda rows, preset: {
        **real(rows, preset), "step_s": 12.0})  # 12 s a step, whatever this machine does
    monkeypatch.setattr(runs, "_clock", lambda: 0.0)  # and the budget never runs out early
    run = tmp_path / "run"
    train.main(["--preset", "tiny-cpu", "--output", str(run), "--max-minutes", "1",
                "--rollouts", "0", "--no-heldout"])  # fmt: skip
    rows = train.read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]  # 60 s at 12 s a step
    saved = json.loads((run / "preset.json").read_text())
    assert saved["max_steps"] == 5 and (run / "final").is_dir()
    peak = small.learning_rate
    assert rows[0]["learning_rate"] == pytest.approx(peak)
    assert rows[-1]["learning_rate"] < 0.15 * peak  # the cosine's last step, not its middle


# -- every value checked when parsed -------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [["--max-steps", "-1"], ["--max-steps", "0"], ["--max-steps", "two"],
     ["--num-generations", "0"], ["--num-generations", "1"], ["--lr", "0"], ["--lr", "nan"],
     ["--beta", "-0.1"], ["--temperature", "0"], ["--warmup", "-1"], ["--save-steps", "0"],
     ["--rollouts", "-1"], ["--epochs", "0"], ["--seed", "-1"], ["--data", "no-such-folder"],
     ["--max-steps", "5", "--epochs", "2"], ["--resume", "--overwrite"],
     ["--vllm-url", "http://x:8000"], ["--max-minutes", "0"], ["--max-minutes", "-5"]],
)  # fmt: skip
def test_bad_values_are_refused_when_parsed(monkeypatch, capsys, bad):
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("train ran"))
    with pytest.raises(SystemExit) as exit_:
        train.main(["--preset", "tiny-cpu", *bad])
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_epochs_and_save_steps_reach_the_preset(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(train, "train", lambda preset, output, **kw: seen.update(p=preset))
    train.main(["--preset", "tiny-cpu", "--output", str(tmp_path), "--epochs", "3",
                "--save-steps", "7"])  # fmt: skip
    assert (seen["p"].max_steps, seen["p"].num_train_epochs) == (-1, 3.0)
    assert seen["p"].save_steps == 7


# -- evaluate, assign, data ----------------------------------------------------------------------


def test_record_files_are_unique_and_readable():
    names = evaluate.record_names(
        ["runs/a.v1", "runs/a.v2", "Qwen/Qwen2.5-VL-3B-Instruct", "./runs/a.v1/", "data/tiny"]
    )
    assert names["runs/a.v1"] == "runs--a.v1.jsonl"
    assert names["Qwen/Qwen2.5-VL-3B-Instruct"] == "Qwen--Qwen2.5-VL-3B-Instruct.jsonl"
    assert len(set(names.values())) == len(names)


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["-n", "0"], "must be greater than 0"),
     (["--max-new-tokens", "0"], "must be greater than 0"),
     (["--model", "runs/no-such-run/final"], "no model folder"),
     (["--model", "tests"], "cannot load the model"),
     (["--split", "no-such-file.jsonl"], "no such file")],
)  # fmt: skip
def test_evaluate_refuses_bad_input_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        evaluate.main(argv)
    assert exit_.value.code != 0
    err = capsys.readouterr().err + str(exit_.value.code)
    assert message in err and "Traceback" not in err


def test_evaluate_refuses_an_unwritable_out_and_empty_data(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit, match="is a file"):
        evaluate.main(["--out", str(tmp_path / "file" / "records"), "-n", "1"])
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(SystemExit, match="no records"):
        evaluate.main(["--split", str(tmp_path / "empty.jsonl")])


@pytest.mark.parametrize("inside", [".", "student"])
def test_assign_refuses_an_output_inside_its_source(tmp_path, inside):
    source = tmp_path / "notebooks"
    source.mkdir()
    shutil.copy(REPO / "notebooks" / "01_grounded_format.ipynb", source)
    before = _files(source)
    assert assign.main([str(source), str(source / inside)]) == 2
    assert _files(source) == before
    nbformat.read(source / "01_grounded_format.ipynb", as_version=4)


def _short_png(path: Path, width: int = 30, height: int = 20) -> None:
    """A PNG whose chunks and checksums are valid but whose pixel data stops early."""
    rows = b"".join(b"\x00" + bytes(3 * width) for _ in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(rows)[:8]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
                     + chunk(b"IEND", b""))  # fmt: skip


def test_a_truncated_image_is_a_data_error(tmp_path):
    _short_png(tmp_path / "a.png")
    record = {"image": "a.png", "question": "How many?", "answer": "1", "dataset": "tallyqa",
              "split": "train", "bboxs": [], "width": 30, "height": 20}  # fmt: skip
    (tmp_path / "items.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(data.DataError, match="a.png cannot be read"):
        data.load_jsonl(tmp_path / "items.jsonl")
    with pytest.raises(data.DataError, match="a.png cannot be read"):
        data.open_image(tmp_path / "a.png")


# -- the distributed path ------------------------------------------------------------------------


def test_accelerate_launch_runs_two_cpu_processes(tmp_path):
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--cpu", "--num_processes", "2", "--num_machines",
               "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m",
               "grit_lite.train", "--preset", "tiny-cpu", "--max-steps", "2", "--rollouts",
               "0", "--output", str(tmp_path / "run")]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    logged = train.read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [row["step"] for row in logged] == [1, 2]  # one line a step, from process 0 only
    assert runs.incomplete(tmp_path / "run" / "checkpoint-2") is None


# -- the console a newcomer sees -----------------------------------------------------------------


def test_a_short_cli_run_reads_well_and_keeps_two_checkpoints(tmp_path):
    """No FutureWarning, no printed log dicts, a start/end table, at most two checkpoints."""
    command = [sys.executable, "-m", "grit_lite.train", "--preset", "tiny-cpu", "--max-steps",
               "3", "--save-steps", "1", "--rollouts", "0", "--num-generations", "2",
               "--output", str(tmp_path / "run")]  # fmt: skip  (G 2: what is read, faster)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout + done.stderr
    assert "Warning" not in printed, printed[printed.find("Warning") - 800:][:1200]
    assert "{'loss'" not in printed and "Writing model" not in printed
    assert "GRPO-GR: 100%" in done.stderr and "reward=" in done.stderr  # the one bar
    table = (tmp_path / "run" / "heldout.txt").read_text()
    assert table in done.stdout
    for row in ("format: four tags in order", "answer accuracy (GRIT prompt)"):
        start, end = table.split(row)[1].split()[:2]
        assert 0 <= float(start) <= 1 and 0 <= float(end) <= 1
    assert [p.name for p in runs.checkpoints(tmp_path / "run")] == ["checkpoint-2", "checkpoint-3"]
    assert train.read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]["step"] == 3
