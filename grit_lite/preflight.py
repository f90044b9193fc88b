"""The preflight of a run: ``python -m grit_lite.train --check`` (``make check``).

Before an hour of GPU time, two short steps on the machine at hand say whether the run will
work and how long it will take: the card and the preset it gets, the decoding path that
sampling took (compiled, or eager after a fallback), sampling speed, peak memory against
the card, and the projected time of one full step and of the whole run at the preset's own
lengths. It writes nothing under ``runs/`` (the two steps go to a temporary folder) and
returns non-zero, with the reason, when the run would not fit or not work.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from grit_lite import gpu, presets, report, runs
from grit_lite.presets import Preset

CHECK_STEPS = 2
CHECK_TOKENS = 64  # completion length of the two steps; the projection scales to the preset's
MEMORY_MARGIN = 0.95  # a peak above 95 % of the card leaves nothing for a longer completion
TRIPLETS = 20  # GRIT's training set: an epoch is 20 prompts


def run_steps(preset: Preset) -> int:
    """Optimisation steps of the whole run (``max_steps``, else epochs over the triplets)."""
    if preset.max_steps > 0:
        return preset.max_steps
    prompts_per_step = preset.completions_per_step // preset.num_generations
    return math.ceil(preset.num_train_epochs * TRIPLETS / prompts_per_step)


def project(rows: list[dict[str, Any]], preset: Preset) -> dict[str, float]:
    """Seconds of one full step and of the run, from the short steps' ``metrics.jsonl`` rows.

    Sampling decodes every sequence together, one token each per decoding step, so its time
    per decoding step (``generation_time`` over the longest completion) is scaled to the
    preset's ``max_completion_length``: the worst case, every completion to the limit. The
    update is scaled by the tokens it reads. The first step (compilation, warm-up) is left
    out when there is a second.
    """
    timed = rows[1:] or rows
    sample = sum(r["generation_time"] for r in timed) / len(timed)
    step = sum(r["step_time"] for r in timed) / len(timed)
    decoded = max(1.0, sum(r["completions/max_length"] for r in timed) / len(timed))
    mean_length = sum(r["completions/mean_length"] for r in timed) / len(timed)
    per_token = sample / decoded
    full_sample = per_token * preset.max_completion_length
    update = max(0.0, step - sample) * (preset.max_completion_length / max(1.0, mean_length))
    return {
        "tokens_per_s": preset.completions_per_step * mean_length / max(sample, 1e-9),
        "step_s": full_sample + update,
        "run_s": (full_sample + update) * run_steps(preset),
    }


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _peak_memory() -> tuple[float, float | None]:
    """(peak GiB, the device's GiB or None): the GPU's allocator, else this process's RSS."""
    if torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        return torch.cuda.max_memory_allocated() / 2**30, total
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, None  # KiB on Linux


@dataclasses.dataclass
class Verdict:
    """What the preflight found: whether the run will work, and its projected times."""

    ok: bool
    step_s: float = math.nan  # one full step, every completion at the preset's limit
    run_s: float = math.nan

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
    short = dataclasses.replace(
        preset, max_steps=CHECK_STEPS, save_steps=10**6, keep_checkpoints=1,
        max_completion_length=min(preset.max_completion_length, CHECK_TOKENS),
    )  # fmt: skip
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="grit-lite-check-") as folder:
        try:
            run(short, folder, n_rollouts=0, progress=False, heldout=False, **run_kwargs)
        except (presets.TrainError, runs.RunFolderError) as error:
            say(f"check failed: {error}")
            return Verdict(False)
        except torch.OutOfMemoryError:
            say(f"check failed: out of GPU memory in {CHECK_STEPS} short steps; "
                "try --preset qwen2.5-vl-3b-lora or qwen2.5-vl-3b-colab")  # fmt: skip
            return Verdict(False)
        rows = report.read_metrics(Path(folder) / "metrics.jsonl")
    if len(rows) < CHECK_STEPS or not all(math.isfinite(r.get("loss", math.nan)) for r in rows):
        say(f"check failed: {len(rows)} of {CHECK_STEPS} steps logged, or a loss not finite")
        return Verdict(False)
    used = [r.get("sampling/compiled") for r in rows]
    path = "eager" if None in used else "compiled" if all(used) else "eager after a fallback"
    timing = project(rows, preset)
    peak, total = _peak_memory()
    say(f"decoding: {path}; sampling {timing['tokens_per_s']:.0f} tokens/s")
    memory = f"peak memory {peak:.1f} GiB" + (f" of {total:.1f} GiB" if total else " (process)")
    say(f"{memory}; disk: the run keeps about {need:.1f} GB")
    say(f"projected, every completion at {preset.max_completion_length} tokens (the worst case):"
        f" {_duration(timing['step_s'])} a step, {_duration(timing['run_s'])} for "
        f"{run_steps(preset)} steps")  # fmt: skip
    verdict = Verdict(True, timing["step_s"], timing["run_s"])
    if total and peak > MEMORY_MARGIN * total:
        say(f"check failed: the short steps peaked at {peak:.1f} of {total:.1f} GiB; longer "
            "completions will not fit. Use a smaller preset.")  # fmt: skip
        return dataclasses.replace(verdict, ok=False)
    say("check passed")
    return verdict
