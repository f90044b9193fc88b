"""The preflight (`python -m grit_lite.train --check`): two short steps, a few lines, a
projected run time, nothing written under runs/, non-zero when the run would not work."""

from __future__ import annotations

import dataclasses

import pytest

from grit_lite import preflight, runs, train


def _row(generation: float, step: float, longest: float, mean: float) -> dict:
    return {"generation_time": generation, "step_time": step, "loss": 0.0,
            "completions/max_length": longest, "completions/mean_length": mean}  # fmt: skip


def test_projection_scales_sampling_per_decoded_token_by_reason():
    preset = dataclasses.replace(train.PRESETS["qwen2.5-vl-3b"], max_completion_length=1000)
    # step 1 (compilation) is left out; step 2: 64 decoding steps in 3.2 s = 0.05 s each,
    # 1 s of update for a mean of 32 tokens
    rows = [_row(100.0, 130.0, 64, 32), _row(3.2, 4.2, 64, 32)]
    timing = preflight.project(rows, preset)
    assert timing["step_s"] == pytest.approx(0.05 * 1000 + 1.0 * 1000 / 32)
    assert timing["tokens_per_s"] == pytest.approx(8 * 32 / 3.2)
    assert preflight.run_steps(preset) == 2000  # 200 epochs of 20 triplets, 2 prompts a step
    assert timing["run_s"] == pytest.approx(timing["step_s"] * 2000)


def _quick(monkeypatch):
    """tiny-cpu with 4 completions a step: the same path, a few seconds."""
    quick = dataclasses.replace(train.PRESETS["tiny-cpu"], num_generations=2,
                                completions_per_step=4)  # fmt: skip
    monkeypatch.setitem(train.PRESETS, "tiny-cpu", quick)


def test_check_runs_two_short_steps_and_writes_nothing_under_runs(monkeypatch, tmp_path, capsys):
    _quick(monkeypatch)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        train.main(["--check", "--preset", "tiny-cpu"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "card: CPU; preset tiny-cpu (asked for)"
    assert out[1].startswith("decoding: eager; sampling ") and out[1].endswith(" tokens/s")
    assert out[2].startswith("peak memory ") and "disk: the run keeps about 0.1 GB" in out[2]
    assert out[3].startswith("projected, every completion at 128 tokens (the worst case): ")
    assert out[3].endswith(" for 200 steps") and out[-1] == "check passed"
    assert list(tmp_path.iterdir()) == []  # no runs/ folder, nothing else


def test_check_fails_with_the_reason_when_the_disk_is_too_small(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(runs, "_free_bytes", lambda folder: 10**6)
    monkeypatch.setattr(train, "load_model", lambda *a, **k: pytest.fail("weights were loaded"))
    monkeypatch.chdir(tmp_path)
    assert preflight.check("tiny-cpu", train.train, train._parameters).code == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("check failed: this run would keep about ")
