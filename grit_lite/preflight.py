"""The preflight of a run: ``python -m grit_lite.train --check`` (``make check``).

Before an hour of GPU time, two short steps on the machine at hand say whether the run will
work and how long it will take: the card and the preset it gets, the decoding path that
sampling took (compiled, or eager after a fallback), sampling speed, peak memory against
the card, and the projected time of one full step and of the whole run at the preset's own
lengths. It saves nothing (no checkpoint, no ``final/``; the two steps log to a temporary
folder) and returns non-zero, with the reason, when the run would not fit or not work.
:func:`size_to_budget` turns its projection into the steps a time budget buys.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from grit_lite import gpu, presets, report, runs
from grit_lite.presets import Preset

CHECK_STEPS = 2
CHECK_TOKENS = 128  # completion length of the two steps at most; the projection scales it
MEMORY_MARGIN = 0.95  # a peak above 95 % of the card leaves nothing for a longer completion
TRIPLETS = 20  # GRIT's training set: an epoch is 20 prompts
COLAB_HOURS = 12  # a Colab runtime is recycled after at most this long
CHECKPOINT_MINUTES = 5.0  # a budgeted run saves about this often: a disconnect loses no more


def run_steps(preset: Preset) -> int:
    """Optimisation steps of the whole run (``max_steps``, else epochs over the triplets)."""
    if preset.max_steps > 0:
        return preset.max_steps
    prompts_per_step = preset.completions_per_step // preset.num_generations
    return math.ceil(preset.num_train_epochs * TRIPLETS / prompts_per_step)


def _mean(rows: list[dict[str, Any]], key: str, default: float = 0.0) -> float:
    return sum(float(r.get(key, default)) for r in rows) / len(rows)


def project(
    rows: list[dict[str, Any]], preset: Preset, short: int | None = None
) -> dict[str, float]:
    """Seconds of one step and of the run, from the short steps' ``metrics.jsonl`` rows.

    A step is three parts. The fixed part of sampling (image processing, the vision tower,
    the prefill of the prompt: everything before the first new token) does not depend on the
    completions' length. Decoding does: every sequence advances one token per decoding step,
    so its time per token (``sampling/decode_time`` over the longest completion) is scaled
    to the length. The update (reference and policy forward, backward) is scaled by the
    tokens it reads, prompt and completion. ``step_s`` takes the lengths the model wrote in
    the ``short``-token steps (by default :func:`short_steps`' length), except that a
    completion cut at ``short`` is assumed to run on to the preset's limit; ``worst_step_s``
    puts every completion at the limit. The first step (compilation, warm-up) is left out
    when there is a second.
    """
    timed = rows[1:] or rows
    cap = preset.max_completion_length
    short = short or short_steps(preset).max_completion_length  # what the steps ran at
    sample, step = _mean(timed, "generation_time"), _mean(timed, "step_time")
    decode = min(sample, _mean(timed, "sampling/decode_time", sample))  # all, when not timed
    longest = max(1.0, _mean(timed, "completions/max_length"))
    mean_length = _mean(timed, "completions/mean_length")
    clipped = _mean(timed, "completions/clipped_ratio")
    prompt = _prompt_tokens(rows, preset, mean_length)
    per_token = decode / longest
    update_per_token = max(0.0, step - sample) / max(1.0, prompt + mean_length)

    def step_at(longest_tokens: float, mean_tokens: float) -> float:
        return (sample - decode + per_token * longest_tokens
                + update_per_token * (prompt + mean_tokens))  # fmt: skip

    if short < cap and clipped > 0:  # some completions would have gone on: to the limit
        expected = step_at(cap, mean_length + clipped * (cap - short))
    else:
        expected = step_at(longest, mean_length)
    worst = step_at(cap, cap)
    steps = run_steps(preset)
    return {
        "tokens_per_s": preset.completions_per_step * mean_length / max(sample, 1e-9),
        "step_s": expected,
        "run_s": expected * steps,
        "worst_step_s": worst,
        "worst_run_s": worst * steps,
    }


def _prompt_tokens(rows: list[dict[str, Any]], preset: Preset, mean_length: float) -> float:
    """Prompt tokens per sequence, from TRL's running ``num_tokens`` (0 when not logged)."""
    counts = [r.get("num_tokens") for r in rows]
    if len(rows) < 2 or None in counts:
        return 0.0
    per_step = (counts[-1] - counts[0]) / (len(rows) - 1)
    return max(0.0, per_step / preset.completions_per_step - mean_length)


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _peak_memory() -> tuple[float, float | None]:
    """(peak GiB, the device's GiB or None). On a GPU: the most the allocator *reserved*
    (what the card must hold, fragmentation included) plus what this process uses outside
    it (the CUDA context, cuBLAS workspaces: about 0.5 GiB); else this process's RSS."""
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        outside = max(0, total - free - torch.cuda.memory_reserved())
        return (torch.cuda.max_memory_reserved() + outside) / 2**30, total / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, None  # KiB on Linux


@dataclasses.dataclass
class Verdict:
    """What the preflight found: whether the run will work, and its projected times."""

    ok: bool
    step_s: float = math.nan  # one step, at the lengths the model wrote
    run_s: float = math.nan
    worst_step_s: float = math.nan  # every completion at the preset's limit

    @property
    def code(self) -> int:
        """The command line's exit status: 0 when the run will work."""
        return 0 if self.ok else 1


def check(
    name: str,
    run: Callable[..., Any],
    parameters: Callable[[Preset], int | None],
    adjust: Callable[[Preset], Preset] = lambda preset: preset,
    say: Any = print,
) -> Verdict:
    """Two short steps of the run ``name`` (or ``"auto"``) would make here, and the verdict.
    ``run`` is :func:`grit_lite.train.train` and ``parameters`` its model-size helper (passed
    in, so this module sits below ``train``); ``adjust`` applies the command line's overrides
    (``--model random-3b``, say)."""
    if problem := gpu.version_problem():
        say(f"check failed: {problem}")
        return Verdict(False)
    name, why = presets.auto_preset() if name == "auto" else (name, "asked for")
    return check_preset(adjust(presets.PRESETS[name]), f"{name} ({why})", run, parameters,
                        Path("runs") / name, say=say)  # fmt: skip


def short_steps(preset: Preset) -> Preset:
    """The preflight's two steps of ``preset``: completions cut at ``CHECK_TOKENS``, and
    ``max_prompt_length`` raised by as much, so the static KV cache (prompt bound plus
    completion bound: ``grpo_config``) has the run's own length and memory."""
    tokens = min(preset.max_completion_length, CHECK_TOKENS)
    return dataclasses.replace(
        preset, max_steps=CHECK_STEPS, max_completion_length=tokens,
        max_prompt_length=preset.max_prompt_length + preset.max_completion_length - tokens,
    )  # fmt: skip


def check_preset(
    preset: Preset,
    label: str,
    run: Callable[..., Any],
    parameters: Callable[[Preset], int | None],
    output: Path,
    say: Any = print,
    **run_kwargs: Any,
) -> Verdict:
    """:func:`check` for a preset in hand; ``output`` is where the real run will write (its
    disk is checked) and ``run_kwargs`` go to ``run`` (a model already loaded, say)."""
    card = torch.cuda.get_device_properties(0).name if torch.cuda.is_available() else "CPU"
    say(f"card: {card}; preset {label}")
    try:
        need = runs.check_disk(preset, output, parameters(preset))
    except (runs.RunFolderError, presets.TrainError) as error:
        say(f"check failed: {error}")
        return Verdict(False)
    short = short_steps(preset)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="grit-lite-check-") as folder:
        try:
            run(short, folder, n_rollouts=0, progress=False, heldout=False, trial=True,
                **run_kwargs)  # fmt: skip
        except (presets.TrainError, runs.RunFolderError, runs.OutOfMemory) as error:
            say(f"check failed: {error}")
            return Verdict(False)
        except torch.OutOfMemoryError:  # loading the model, before a step
            say("check failed: out of GPU memory loading the model; try --preset "
                "qwen2.5-vl-3b-lora or qwen2.5-vl-3b-colab")  # fmt: skip
            return Verdict(False)
        rows = report.read_metrics(Path(folder) / "metrics.jsonl")
    if len(rows) < CHECK_STEPS or not all(math.isfinite(r.get("loss", math.nan)) for r in rows):
        say(f"check failed: {len(rows)} of {CHECK_STEPS} steps logged, or a loss not finite")
        return Verdict(False)
    used = [r.get("sampling/compiled") for r in rows]
    path = "eager" if not any(used) else "compiled" if all(used) else "eager after a fallback"
    timing = project(rows, preset)
    peak, total = _peak_memory()
    say(f"decoding: {path}; sampling {timing['tokens_per_s']:.0f} tokens/s")
    memory = f"peak memory {peak:.1f} GiB" + (f" of {total:.1f} GiB" if total else " (process)")
    say(f"{memory}; disk: the run keeps about {need:.1f} GB")
    steps, cap = run_steps(preset), preset.max_completion_length
    worst_s = timing.get("worst_step_s", timing["step_s"])
    worst_run = timing.get("worst_run_s", timing["run_s"])
    say(f"projected, every completion at {cap} tokens (the worst case): {_duration(worst_s)} a "
        f"step, {_duration(worst_run)} for {steps} steps")  # fmt: skip
    say(f"projected at the lengths the model wrote: {_duration(timing['step_s'])} a step, "
        f"{_duration(timing['run_s'])} for {steps} steps")  # fmt: skip
    if timing["run_s"] > COLAB_HOURS * 3600:
        say(f"longer than Colab's {COLAB_HOURS}-hour runtime: run it in parts with "
            "--max-minutes and --resume, in a folder that outlives the runtime")  # fmt: skip
    verdict = Verdict(True, timing["step_s"], timing["run_s"], worst_s)
    if total and peak > MEMORY_MARGIN * total:
        say(f"check failed: the short steps peaked at {peak:.1f} of {total:.1f} GiB; longer "
            "completions will not fit. Use a smaller preset.")  # fmt: skip
        return dataclasses.replace(verdict, ok=False)
    say("check passed")
    return verdict


def steps_for(
    minutes: float, step_s: float, most: int, checkpoint_minutes: float = CHECKPOINT_MINUTES
) -> tuple[int, int]:
    """(steps, save_steps): the steps ``minutes`` buy at ``step_s`` a step (at most ``most``,
    the preset's own run), and a checkpoint about every ``checkpoint_minutes``."""
    step_s = max(step_s, 1e-3)
    steps = max(1, min(most, int(60 * minutes // step_s)))
    return steps, max(1, min(steps, round(60 * checkpoint_minutes / step_s)))


def size_to_budget(
    preset: Preset,
    minutes: float,
    label: str,
    run: Callable[..., Any],
    parameters: Callable[[Preset], int | None],
    output: Path,
    model: Any,
    say: Any = print,
    most: int | None = None,
    checkpoint_minutes: float | None = None,
    **run_kwargs: Any,
) -> Preset | None:
    """``preset`` with the steps ``minutes`` buy here (at most ``most``, by default the
    preset's own length) as its ``max_steps``, so that the learning rate's schedule ends
    within the budget; None when the preflight says the run will not work. The preflight
    trains ``model`` for two steps at learning rate 0: it measures the run without moving a
    weight (an update of 0 x anything is 0)."""
    name = model.config._name_or_path  # a saved reference would point into its temp folder
    verdict = check_preset(dataclasses.replace(preset, learning_rate=0.0), label, run,
                           parameters, output, say=say, model=model, **run_kwargs)  # fmt: skip
    model.config._name_or_path = name
    gc.collect()  # the preflight's trainer and optimizer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if not verdict.ok:
        say("the run is not started: the preflight above says why")
        return None
    steps, save_steps = steps_for(minutes, verdict.step_s, most or run_steps(preset),
                                  checkpoint_minutes or CHECKPOINT_MINUTES)  # fmt: skip
    say(f"{minutes:g} min buy {steps} steps here, at the projected {verdict.step_s:.1f} s a "
        f"step (GRIT's run: 2000); the learning rate's cosine spans them; a checkpoint every "
        f"{save_steps} steps")  # fmt: skip
    return dataclasses.replace(preset, max_steps=steps, save_steps=save_steps)
