"""Notebook 06's GPU section: the real GRPO-GR run, one function per notebook cell.

    w = walkthrough.plan()        # the preset for this card, the model, GRIT's 20 triplets
    walkthrough.show_triplets(w)  # a few triplets with their annotated boxes
    walkthrough.load(w)           # Qwen2.5-VL-3B-Instruct, scored on held-out scenes before RL
    walkthrough.run(w)            # a short GRPO-GR run with live reward curves
    walkthrough.compare(w)        # answers before and after, drawn with their boxes; the table

Without a CUDA GPU, or when the model cannot be fetched, :func:`plan` prints one line saying
what it skipped and how to run it, and returns None; every later function then does nothing
and shows nothing. The line never changes between runs, so the notebook's committed outputs
reproduce on a laptop and in CI. ``GRIT_LITE_GPU_MODEL=random-3b`` puts the 3B's exact shape
with random weights in place of the download (to check that the cells run, not to learn).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grit_lite import data, evaluate, gpu, presets, report, scoring, train

MODEL_ENV = "GRIT_LITE_GPU_MODEL"  # a hub id, a folder, or random-3b
STEPS_ENV = "GRIT_LITE_GPU_STEPS"
# About 30 minutes on a T4: an estimate, not a measurement. The floor computed in section 4 is
# ~15 s a step for the colab preset and a measured eager step ran far above its floor, so
# 60 s a step is assumed; change it with ``plan(steps=...)`` or GRIT_LITE_GPU_STEPS.
T4_STEPS = 30
SKIPPED = (
    "GPU section skipped: {why}. To run it, open this notebook in Colab (Runtime > Change "
    "runtime type > T4 GPU) or on a machine with a CUDA GPU, and run it again."
)


@dataclass
class Walkthrough:
    """What the cells share: the run's plan, its data, and the results as they come."""

    preset: presets.Preset
    output: Path
    items: list[tuple[data.Record, Any]]
    heldout: list[tuple[data.Record, Any]]
    model: Any = None
    processor: Any = None
    trainer: Any = None
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)


def _gpu_preset(model: str, steps: int) -> presets.Preset:
    """The preset :func:`grit_lite.presets.preset_for_card` picks for this GPU, shortened."""
    name, why = presets.card_preset(0)
    print(f"preset {name} on {torch.cuda.get_device_properties(0).name}: {why}")
    return dataclasses.replace(presets.PRESETS[name], model=model, max_steps=steps)


def plan(
    steps: int | None = None,
    output: str | Path = "runs/walkthrough",
    model: str | None = None,
    heldout: int = 16,
    preset: presets.Preset | None = None,
) -> Walkthrough | None:
    """The run this machine can make, or None (after one line) when it cannot make one.

    ``preset`` replaces the choice by card; tests pass the tiny CPU preset with it, so the
    cells are checked on a laptop with the tiny model standing in for the 3B.
    """
    if preset is None:
        if not torch.cuda.is_available():
            print(SKIPPED.format(why="no CUDA GPU here"))
            return None
        if problem := gpu.version_problem():
            print(SKIPPED.format(why=problem))
            return None
        model = model or os.environ.get(MODEL_ENV) or presets.QWEN_3B
        steps = steps or int(os.environ.get(STEPS_ENV) or T4_STEPS)
        preset = _gpu_preset(model, steps)
    try:
        presets.resolve_model(preset.model)  # fails in seconds when offline
    except presets.TrainError as error:
        print(SKIPPED.format(why=f"the model cannot be loaded ({error})"))
        return None
    items = train.training_data(None, preset.model)
    return Walkthrough(preset, Path(output), items, data.eval_split(heldout))


def _show(fig: Any) -> None:
    """Display ``fig`` once and close it (a returned figure would be drawn twice inline)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)


def show_triplets(w: Walkthrough | None, n: int = 4) -> None:
    """``n`` training triplets, both kinds, with the boxes GRIT's data annotates."""
    if w is None:
        return
    import matplotlib.pyplot as plt

    from grit_lite.format import draw_boxes

    shown = w.items[:: max(1, len(w.items) // n)][:n]
    fig, axes = plt.subplots(1, len(shown), figsize=(2.6 * len(shown), 3.0), squeeze=False)
    for ax, (record, image) in zip(axes[0], shown, strict=True):
        ax.imshow(draw_boxes(image.convert("RGB"), record.bboxs, width=2))
        ax.set_title(f"{record.question[:40]}\nanswer: {record.answer}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    _show(fig)


def _score(w: Walkthrough, stage: str, model: Any) -> dict[str, Any]:
    """Greedy answers on the held-out scenes, scored as notebook 07 scores them."""
    tokens = min(w.preset.max_completion_length, 256)
    with report.eval_mode(model):
        rows = scoring.evaluate_model(model, w.processor, w.heldout, tokens, progress=False)
    w.rows[stage] = rows
    w.summaries[stage] = scoring.summarize(rows)
    return w.summaries[stage]


def load(w: Walkthrough | None) -> Any:
    """The start model, and its scores on the held-out scenes before any RL (a table)."""
    if w is None:
        return None
    # LoRA adapters start at zero: with them on, the model still answers as it was trained.
    w.model, w.processor = train.load_model(w.preset)
    if w.preset.device != "cpu" and torch.cuda.is_available():
        w.model.to("cuda")
    _score(w, "before", w.model)
    return evaluate.compare({"before": w.summaries["before"]})


def live_curves() -> Any:
    """A TrainerCallback redrawing :func:`grit_lite.report.plot_rewards` in place each step."""
    import matplotlib.pyplot as plt
    from IPython.display import display
    from transformers import TrainerCallback

    class LiveCurves(TrainerCallback):
        def __init__(self) -> None:
            self.metrics: list[dict[str, Any]] = []
            self.handle: Any = None

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not state.is_world_process_zero or not logs or "reward" not in logs:
                return
            self.metrics.append({**logs, "step": state.global_step})
            fig = report.plot_rewards(self.metrics)
            if self.handle is None:
                self.handle = display(fig, display_id=True)
            else:
                self.handle.update(fig)
            plt.close(fig)

    return LiveCurves()


def run(w: Walkthrough | None) -> Any:
    """A short GRPO-GR run on the triplets, reward curves drawn live; the run folder."""
    if w is None:
        return None
    w.trainer = train.train(w.preset, w.output, model=w.model, processor=w.processor,
                            items=w.items, n_rollouts=0, callbacks=[live_curves()],
                            overwrite=True)  # fmt: skip
    return w.output


def compare(w: Walkthrough | None, shown: int = 4) -> Any:
    """The held-out answers before and after, drawn with their boxes, and notebook 07's table."""
    if w is None or w.trainer is None:
        return None
    _score(w, "after", w.trainer.model)
    indices = list(range(min(shown, len(w.heldout))))
    _show(evaluate.gallery(w.rows, w.heldout, indices))
    return evaluate.compare(w.summaries)
