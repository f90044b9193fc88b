"""The preflight (`python -m grit_lite.train --check`): two short steps, a few lines, a
projected run time, nothing written under runs/, non-zero when the run would not work."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from grit_lite import preflight, presets, runs, train


def _row(generation: float, step: float, longest: float, mean: float, decode: float | None = None,
         clipped: float = 0.0, tokens: float | None = None) -> dict:
    row = {"generation_time": generation, "step_time": step, "loss": 0.0,
           "completions/max_length": longest, "completions/mean_length": mean,
           "completions/clipped_ratio": clipped}  # fmt: skip
    if decode is not None:
        row["sampling/decode_time"] = decode
    if tokens is not None:
        row["num_tokens"] = tokens
    return row


def test_projection_scales_decoding_and_the_update_but_not_the_prefill():
    preset = dataclasses.replace(train.PRESETS["qwen2.5-vl-3b"], max_completion_length=1000)
    # Step 1 (compilation) is left out. Step 2 at 64 tokens: 3.7 s of sampling, 0.5 s of it
    # before the first new token (fixed) and 3.2 s decoding 64 tokens (0.05 s each); 1 s of
    # update over 8 sequences of 100 prompt + 32 completion tokens (num_tokens counts both).
    rows = [_row(100.0, 130.0, 64, 32, 90.0, 0.5, 1000), _row(3.7, 4.7, 64, 32, 3.2, 0.5, 2056)]
    timing = preflight.project(rows, preset, short=64)
    update = 1.0 / (100 + 32)  # s per token a sequence reads
    assert timing["worst_step_s"] == pytest.approx(0.5 + 0.05 * 1000 + update * (100 + 1000))
    # half the completions were cut at 64: they run on to 1000, the others keep their length
    assert timing["step_s"] == pytest.approx(0.5 + 0.05 * 1000 + update * (100 + 32 + 468))
    assert preflight.run_steps(preset) == 2000  # 200 epochs of 20 triplets, 2 prompts a step
    assert timing["run_s"] == pytest.approx(timing["step_s"] * 2000)
    assert timing["tokens_per_s"] == pytest.approx(8 * 32 / 3.7)
    # nothing cut off: the lengths the model wrote are its lengths, and step 2 is the step
    ended = [dict(r, **{"completions/clipped_ratio": 0.0}) for r in rows]
    assert preflight.project(ended, preset, short=64)["step_s"] == pytest.approx(4.7)
    # the steps ran at the preset's own length: cut there is cut in the run too
    assert preflight.project(rows, dataclasses.replace(preset, max_completion_length=64),
                             short=64)["step_s"] == pytest.approx(4.7)  # fmt: skip


def test_the_short_steps_keep_the_runs_cache_length(tmp_path):
    for name, preset in train.PRESETS.items():
        short = preflight.short_steps(preset)
        bound = short.max_prompt_length + short.max_completion_length  # the static cache's
        assert bound == preset.max_prompt_length + preset.max_completion_length, name
        assert short.max_completion_length == min(preset.max_completion_length, 128)
        assert short.max_steps == preflight.CHECK_STEPS
    stand_in = presets.cpu_stand_in(train.PRESETS["qwen2.5-vl-3b-colab"], tokens=16)
    args = train.grpo_config(preflight.short_steps(stand_in), tmp_path)  # what TRL is given
    assert args.generation_kwargs == {"max_cache_len": stand_in.max_prompt_length + 16}


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
    assert out[4].startswith("projected at the lengths the model wrote: ")
    assert out[4].endswith(" for 200 steps")
    assert list(tmp_path.iterdir()) == []  # no runs/ folder, nothing else


def test_check_fails_with_the_reason_when_the_disk_is_too_small(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(runs, "_free_bytes", lambda folder: 10**6)
    monkeypatch.setattr(train, "load_model", lambda *a, **k: pytest.fail("weights were loaded"))
    monkeypatch.chdir(tmp_path)
    assert preflight.check("tiny-cpu", train.train, train._parameters).code == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("check failed: this run would keep about ")


def test_the_gpu_check_script_fits_its_own_64_gib_disk():
    """docs/bench/gpu_check.sh checks and times the 3B presets on a machine with a 64 GiB
    disk, about 20 GB of it the environment and the wheels: its flags must keep each run's
    footprint (and so its own preflight's disk check) within the rest."""
    import re
    import shlex

    script = (train.data.REPO_DIR / "docs" / "bench" / "gpu_check.sh").read_text()
    flags = shlex.split(re.search(r'^disk="(.*)"$', script, re.M).group(1))
    free_gb = 64 * 2**30 / 1e9 - 20
    for name in ("qwen2.5-vl-3b", "qwen2.5-vl-3b-lora", "qwen2.5-vl-3b-colab"):
        args = train.parser().parse_args(["--preset", name, "--model", "random-3b", *flags])
        preset = train.with_overrides(train.PRESETS[name], args)
        need = runs.check_disk(preset, "runs/x", None, free=int(free_gb * 1e9))
        assert need <= free_gb, name
    full = train.with_overrides(train.PRESETS["qwen2.5-vl-3b"],
                                train.parser().parse_args(["--model", "random-3b"]))  # fmt: skip
    with pytest.raises(runs.RunFolderError):  # without them it would not fit
        runs.check_disk(full, "runs/x", None, free=int(free_gb * 1e9))


def test_a_run_longer_than_a_colab_runtime_is_named(monkeypatch, tmp_path):
    """A stand-in run that logs two 30-minute steps: the 2000-step run is 1000 hours."""
    def run(preset, folder, **kwargs):
        rows = [dict(_row(1800.0, 1800.0, 128, 64), step=i, num_tokens=1000.0 * i, reward=0.0)
                for i in (1, 2)]  # fmt: skip
        (Path(folder) / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    monkeypatch.setattr(runs, "check_disk", lambda *a, **k: 0.1)
    said = []
    verdict = preflight.check_preset(train.PRESETS["qwen2.5-vl-3b-colab"], "colab", run,
                                     lambda preset: None, tmp_path, say=said.append)  # fmt: skip
    assert verdict.ok and verdict.run_s > 12 * 3600, said
    assert any(line.startswith("longer than Colab's 12-hour runtime") for line in said)
    assert said[-1] == "check passed"
