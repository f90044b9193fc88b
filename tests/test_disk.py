"""A run never fills its disk: it estimates what it keeps and stops first; full fine-tuning
keeps weights-only checkpoints beside the newest resumable one."""

from __future__ import annotations

import dataclasses
import types

import pytest

from grit_lite import runs, tiny, train
from tests.test_gpu import _preset

P = runs.QWEN_3B_PARAMETERS  # 3.75 B weights
LORA = runs.QWEN_3B_LORA_64  # 0.12 B adapter weights at r = 64


def test_footprints_of_the_3b_presets_by_reason():
    full = runs.run_footprint(train.PRESETS["qwen2.5-vl-3b"])
    # bf16 weights are 2 B a weight; Adam's two moments and the fp32 master 12 B. At a save,
    # the two kept checkpoints and the new one exist; two of them hold optimizer state.
    assert full["checkpoints"] == pytest.approx((3 * 2 * P + 2 * 12 * P) / 1e9)
    assert full["final"] == pytest.approx(2 * P / 1e9) and full["reference"] == 0
    lora = runs.run_footprint(train.PRESETS["qwen2.5-vl-3b-lora"])
    assert lora["checkpoints"] == pytest.approx(3 * (4 + 8) * LORA / 1e9)  # fp32 adapters
    slim = dataclasses.replace(train.PRESETS["qwen2.5-vl-3b"], weights_only_checkpoints=True,
                               model="random-3b")  # fmt: skip
    assert runs.run_footprint(slim) == pytest.approx(
        {"checkpoints": 3 * 2 * P / 1e9, "final": 2 * P / 1e9, "reference": 2 * P / 1e9}
    )  # a random model has no hub copy: TRL reloads the KL reference from a saved one
    assert 100 < sum(full.values()) < 130 and sum(lora.values()) < 6


def test_a_run_that_would_not_fit_names_the_flags_that_do(tmp_path):
    preset = train.PRESETS["qwen2.5-vl-3b"]
    with pytest.raises(runs.RunFolderError) as caught:
        runs.check_disk(preset, tmp_path / "run", free=40 * 10**9)
    message = str(caught.value)
    assert "about 120.1 GB (checkpoints 112.6, final 7.5)" in message
    assert "has 40.0 GB free" in message and "Nothing was written" in message
    assert "--weights-only-checkpoints (30.0 GB)" in message
    assert "--keep-checkpoints 1 --weights-only-checkpoints (22.5 GB)" in message
    assert runs.check_disk(preset, tmp_path / "run", free=200 * 10**9) == pytest.approx(120.1, 0.01)
    with pytest.raises(runs.RunFolderError, match="no flag makes it fit"):
        runs.check_disk(preset, tmp_path / "run", free=10**9)


def test_the_command_line_stops_before_loading_with_no_traceback(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(runs, "_free_bytes", lambda folder: 20 * 10**9)
    monkeypatch.setattr(train, "load_model", lambda *a, **k: pytest.fail("weights were loaded"))
    with pytest.raises(SystemExit, match=r"^error: this run would keep about .* 20\.0 GB free"):
        train.main(["--preset", "qwen2.5-vl-3b", "--model", "random-3b",
                    "--output", str(tmp_path / "run")])  # fmt: skip
    assert not (tmp_path / "run").exists()
    assert "Traceback" not in capsys.readouterr().err


def test_the_tiny_run_counts_its_own_weights():
    shipped = runs.parameters_in(tiny.SHIPPED)
    model, _ = tiny.load_tiny(tiny.SHIPPED)
    assert shipped == sum(p.numel() for p in model.parameters())
    assert sum(runs.run_footprint(train.PRESETS["tiny-cpu"], shipped).values()) < 0.5


def _checkpoint(folder, step):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "model.safetensors"):
        (path / name).write_bytes(b"x")
    return path


def test_older_checkpoints_lose_their_optimizer_state_the_newest_keeps_it(tmp_path):
    made = [_checkpoint(tmp_path, step) for step in (50, 100)]
    args, state = types.SimpleNamespace(output_dir=str(tmp_path)), types.SimpleNamespace(
        is_world_process_zero=True)  # fmt: skip
    runs.weights_only_callback().on_save(args, state, None)
    assert not (made[0] / "optimizer.pt").exists() and (made[0] / runs.WEIGHTS_ONLY).is_file()
    assert (made[0] / "scheduler.pt").is_file()  # small: the schedule still resumes
    assert (made[1] / "optimizer.pt").is_file() and not (made[1] / runs.WEIGHTS_ONLY).exists()
    runs.weights_only_callback(keep_newest_resumable=False).on_save(args, state, None)
    assert not (made[1] / "optimizer.pt").exists()


def test_resuming_from_weights_only_says_what_it_cannot_restore(tmp_path, capsys):
    preset = _preset(weights_only_checkpoints=True, keep_checkpoints=1, max_steps=2)
    model, processor = tiny.load_tiny(tiny.SHIPPED)
    train.train(preset, tmp_path, model=model, processor=processor, n_rollouts=0,
                progress=False)  # fmt: skip
    (last,) = runs.checkpoints(tmp_path)
    assert (last / runs.WEIGHTS_ONLY).is_file() and not (last / "optimizer.pt").exists()
    capsys.readouterr()
    more = dataclasses.replace(preset, max_steps=3)
    trainer = train.train(more, tmp_path, resume=True, model=model, processor=processor,
                          n_rollouts=0, progress=False)  # fmt: skip
    assert trainer.state.global_step == 3
    said = capsys.readouterr().out
    assert f"{last} holds weights only: resuming from its weights and step, without the " \
           "optimizer's state" in said  # fmt: skip
    assert "the learning-rate schedule's place (it starts again)" in said
