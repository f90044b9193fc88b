"""Notebook 06's GPU section: the real GRPO-GR run, one function per notebook cell.

    folder = walkthrough.run_folder(use_drive=False)  # True: on Google Drive, survives a disconnect
    w = walkthrough.plan(minutes=25, output=folder)   # preset, model, triplets, held-out questions
    walkthrough.show_triplets(w)  # a few triplets with their annotated boxes
    walkthrough.load(w)           # Qwen2.5-VL-3B-Instruct, scored on held-out questions before RL
    walkthrough.budget(w)         # the preflight: how many steps the minutes buy on this card
    walkthrough.run(w)            # GRPO-GR until the minutes are up, reward curves drawn live
    walkthrough.compare(w)        # answers before and after, drawn with their boxes; the table

The held-out questions are a fixed sample of GRIT's own evaluation files (50 of VSR, 50 of
TallyQA, photos the run never sees); the triplets are GRIT's 20. Whatever stands in for
either is named in the plan, in ``preset.json`` and above the final table. Running the
section again continues the run in the folder from its newest checkpoint (after a
disconnect, with the folder on Drive) instead of starting over.

Without a CUDA GPU, or when the model cannot be fetched, :func:`plan` prints one line saying
what it skipped and how to run it, and returns None; every later function then does nothing
and shows nothing. The line never changes between runs, so the notebook's committed outputs
reproduce on a laptop and in CI. ``GRIT_LITE_GPU_MODEL=random-3b`` puts the 3B's exact shape
with random weights in place of the download (to check that the cells run, not to learn).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grit_lite import data, evaluate, gpu, preflight, presets, report, runs, scoring, train

MODEL_ENV = "GRIT_LITE_GPU_MODEL"  # a hub id, a folder, or random-3b
MINUTES_ENV = "GRIT_LITE_GPU_MINUTES"
T4_MINUTES = 25.0  # of training; loading and the two scorings come on top
CHECKPOINT_MINUTES = 5.0  # a disconnect loses at most about this much training
BEFORE = "heldout_before.json"  # the start model's scores, kept for a resumed section
DRIVE = Path("/content/drive")  # where Colab mounts Google Drive
SKIPPED = (
    "GPU section skipped: {why}. To run it, open this notebook in Colab (Runtime > Change "
    "runtime type > T4 GPU) or on a machine with a CUDA GPU, and run it again."
)


@dataclass
class Walkthrough:
    """What the cells share: the run's plan, its data, and the results as they come."""

    preset: presets.Preset
    name: str  # the preset's name, or "given" for one passed in
    output: Path
    minutes: float
    items: list[tuple[data.Record, Any]]
    data_source: str  # which triplets, and why: in preset.json and above the final table
    heldout: list[tuple[data.Record, Any]]
    heldout_source: str
    resume: bool = False  # the output folder holds a checkpoint to continue from
    steps: int = 0  # set by budget(); 0: the run cannot start
    model: Any = None
    processor: Any = None
    trainer: Any = None
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)


def run_folder(use_drive: bool | None = None, name: str = "walkthrough", mount: Any = None,
               root: Path = DRIVE) -> Path:  # fmt: skip
    """``runs/<name>``, or with ``use_drive`` a folder on Google Drive, which outlives the
    Colab runtime (idle disconnects, the 12-hour cap, a pre-empted free GPU). By default
    Drive is used in Colab and nowhere else. ``mount`` is ``google.colab.drive.mount``
    unless given (tests give a stand-in)."""
    if use_drive is None:
        use_drive = "google.colab" in sys.modules
    if not use_drive:
        return Path("runs") / name
    if mount is None:
        try:
            from google.colab import drive
        except ImportError:
            print(f"Google Drive is mounted from Colab only: the run stays in runs/{name}")
            return Path("runs") / name
        mount = drive.mount
    mount(str(root))
    folder = root / "MyDrive" / "grit-lite" / name
    folder.mkdir(parents=True, exist_ok=True)
    print(f"run folder on Google Drive: {folder}")
    return folder


def _gpu_preset(model: str) -> tuple[str, presets.Preset]:
    """The preset :func:`grit_lite.presets.preset_for_card` picks for this GPU, and its name."""
    name, why = presets.card_preset(0)
    print(f"preset {name} on {torch.cuda.get_device_properties(0).name}: {why}")
    return name, dataclasses.replace(presets.PRESETS[name], model=model)


def _heldout(
    model: str, folder: Path | None, cache: Path, n_synthetic: int
) -> tuple[list[tuple[data.Record, Any]], str]:
    """GRIT's held-out VSR and TallyQA questions (from ``folder``, else fetched into
    ``cache``), or synthetic scenes, named, for the tiny model or when they cannot be had."""
    synthetic = f"{n_synthetic} synthetic held-out scenes"
    if folder is None and train.knows_only_shapes(model):
        return data.eval_split(n_synthetic), f"{synthetic} (the tiny model knows only shapes)"
    try:
        if folder is not None:
            records = data.load_grit_heldout(folder)
        else:
            records = data.fetch_grit_heldout(cache)
    except data.DataError as error:
        if folder is not None:
            raise
        reason = str(error).split(". ")[0]
        print(f"held-out: GRIT's evaluation questions could not be had ({reason}); "
              f"scoring on {synthetic} instead")  # fmt: skip
        return data.eval_split(n_synthetic), f"{synthetic}, NOT GRIT's questions: {reason}"
    counts = {name: sum(r.dataset == name for r in records) for name in ("vsr", "tallyqa")}
    where = folder or cache
    source = f"{counts['vsr']} VSR + {counts['tallyqa']} TallyQA questions of GRIT's " \
             f"evaluation files in {where}"  # fmt: skip
    return [(r, data.open_image(r.image_path)) for r in records], source


def plan(
    minutes: float | None = None,
    output: str | Path = "runs/walkthrough",
    model: str | None = None,
    preset: presets.Preset | None = None,
    heldout_folder: str | Path | None = None,
    fallback: bool = False,
    fresh: bool = False,
    cache: Path = data.GRIT_DATA_CACHE,
    n_synthetic: int = 16,
) -> Walkthrough | None:
    """The run this machine can make, or None (after one line) when it cannot make one.

    ``minutes`` of training (default 25: a T4 session with room to load and score).
    ``fallback`` lets the run train on the synthetic triplets when GRIT's cannot be had;
    ``fresh`` starts over instead of continuing the run in ``output``. ``preset`` replaces
    the choice by card and ``heldout_folder`` the download: tests pass the tiny CPU preset
    and a local copy of the evaluation files, so the cells are checked on a laptop.
    """
    name = "given"
    if preset is None:
        if not torch.cuda.is_available():
            print(SKIPPED.format(why="no CUDA GPU here"))
            return None
        if problem := gpu.version_problem():
            print(SKIPPED.format(why=problem))
            return None
        name, preset = _gpu_preset(model or os.environ.get(MODEL_ENV) or presets.QWEN_3B)
    minutes = float(minutes or os.environ.get(MINUTES_ENV) or T4_MINUTES)
    try:
        presets.resolve_model(preset.model)  # fails in seconds when offline
    except presets.TrainError as error:
        print(SKIPPED.format(why=f"the model cannot be loaded ({error})"))
        return None
    try:
        items, source = train.training_data(None, preset.model, cache=cache, fallback=fallback,
                                            say=lambda line: None)  # fmt: skip
    except data.DataError as error:
        print(f"GPU section stopped: {error} Or run plan(fallback=True) to train on the "
              "synthetic triplets, named as such.")  # fmt: skip
        return None
    folder = Path(heldout_folder) if heldout_folder is not None else None
    heldout, heldout_source = _heldout(preset.model, folder, cache, n_synthetic)
    output = Path(output)
    resume = not fresh and output.is_dir() and bool(runs.checkpoints(output))
    print(f"training on: {source}")
    print(f"scoring on: {heldout_source}")
    again = "continuing the run there from its newest checkpoint" if resume else "a new run"
    print(f"budget: {minutes:g} min of training; run folder {output} ({again})")
    return Walkthrough(preset, name, output, minutes, items, source, heldout, heldout_source,
                       resume)  # fmt: skip


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
        ax.set_title(f"{record.question[:40]}\nanswer: {record.answer}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    _show(fig)


def _score(w: Walkthrough, stage: str, model: Any) -> dict[str, Any]:
    """Greedy answers on the held-out questions, scored as notebook 07 scores them, at the
    run's own completion length (GRIT's answers are a few hundred tokens: a shorter cap
    would cut the "before" answers off and score them wrong)."""
    tokens = w.preset.max_completion_length
    with report.eval_mode(model):
        rows = scoring.evaluate_model(model, w.processor, w.heldout, tokens, progress=False)
    w.rows[stage] = rows
    w.summaries[stage] = scoring.summarize(rows)
    return w.summaries[stage]


def load(w: Walkthrough | None) -> Any:
    """The start model, and its scores on the held-out questions before any RL (a table).
    A section run again to continue its run reads them from the run folder instead."""
    if w is None:
        return None
    w.model, w.processor = train.load_model(w.preset)  # on the GPU as it loads
    saved = w.output / BEFORE
    if w.resume and saved.is_file():
        kept = json.loads(saved.read_text(encoding="utf-8"))
        w.rows["before"], w.summaries["before"] = kept["rows"], kept["summary"]
        print(f"the start model's scores, from {saved} (the run is being continued)")
    else:
        _score(w, "before", w.model)  # kept in the run folder when the run starts
    return evaluate.compare({"before": w.summaries["before"]})


def budget(w: Walkthrough | None) -> int:
    """How many steps the minutes buy here, from the preflight's two short steps; 0 when the
    preflight says the run will not work. A run being continued keeps its own length."""
    if w is None:
        return 0
    if w.resume and (saved := runs.saved_length(w.output)):
        steps, save_steps = saved
        done = runs.checkpoint_step(runs.checkpoints(w.output)[-1])
        w.preset = dataclasses.replace(w.preset, max_steps=steps, save_steps=save_steps)
        print(f"continuing at step {done} of {steps}, for {w.minutes:g} min more at most")
        w.steps = steps
        return steps
    grit_length = preflight.run_steps(dataclasses.replace(w.preset, max_steps=-1))  # epochs
    sized = preflight.size_to_budget(
        w.preset, w.minutes, w.name, train.train,
        lambda preset: train._parameters(preset, w.model), w.output, model=w.model,
        most=grit_length, checkpoint_minutes=CHECKPOINT_MINUTES, processor=w.processor,
        items=w.items, data_source=w.data_source,
    )  # fmt: skip  (the minutes set the length, up to GRIT's 200 epochs)
    if sized is None:
        return 0
    w.preset, w.steps = sized, sized.max_steps
    return w.steps


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
    """GRPO-GR on the triplets until the steps are done or the minutes are up, reward curves
    drawn live, a checkpoint every few minutes; the run folder."""
    if w is None or not w.steps:
        return None
    if not w.resume and "before" in w.rows:  # a resumed section reads it instead of scoring
        w.output.mkdir(parents=True, exist_ok=True)
        kept = {"rows": w.rows["before"], "summary": w.summaries["before"]}
        (w.output / BEFORE).write_text(json.dumps(kept), encoding="utf-8")
    try:
        w.trainer = train.train(
            w.preset, w.output, resume=w.resume, overwrite=not w.resume, model=w.model,
            processor=w.processor, items=w.items, data_source=w.data_source, n_rollouts=0,
            callbacks=[live_curves()], max_minutes=w.minutes,
        )  # fmt: skip
    except runs.OutOfTime as stopped:
        w.trainer = stopped.trainer
        print(f"{stopped}. Run this section again to continue from there.")
    except (presets.TrainError, runs.OutOfMemory) as error:  # one line, not a traceback
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        again = " Run this section again to continue from it." if runs.checkpoints(w.output) else ""
        print(f"the run stopped: {error}.{again}")
        return None
    return w.output


# The paper's Table 1 (arXiv 2505.15879), Qwen2.5-VL-3B on its VSR (288) and TallyQA (491)
# test questions: accuracy in %, judged by GPT-4o; GIoU is the IoU of the union of a
# completion's boxes with the union of the annotated ones. "GRIT prompt" is the table's
# chain-of-thought row: the base model asked with GRIT's suffix, as the "before" here is.
PAPER_TABLE = {
    "base, plain question": (49.5, 0.000, 40.8, 0.000),
    "base, GRIT prompt": (37.5, 0.122, 33.2, 0.113),
    "after GRIT": (72.9, 0.325, 47.8, 0.447),
}


def paper_table() -> str:
    """The paper's figures beside which to read the course's table, with what differs."""
    lines = [
        "the paper's Table 1 (arXiv 2505.15879) for Qwen2.5-VL-3B, after its full run on 8 GPUs:",
        f"{'':<22}{'VSR acc':>9}{'GIoU':>7}{'TallyQA acc':>13}{'GIoU':>7}",
    ]
    for name, (vsr, vsr_iou, tally, tally_iou) in PAPER_TABLE.items():
        lines.append(f"{name:<22}{vsr:>8.1f}%{vsr_iou:>7.3f}{tally:>12.1f}%{tally_iou:>7.3f}")
    lines += [
        "its GIoU is the union of a completion's boxes against the union of the annotated",
        "ones: grounding/giou in the table, the same measure (grounding/iou matches boxes one",
        "to one). There GPT-4o judges accuracy, here rules do. On 50 questions a family's",
        "accuracy has a 95 % interval of about +-14 points.",
    ]
    return "\n".join(lines)


def compare(w: Walkthrough | None, shown: int = 4) -> Any:
    """The held-out answers before and after, drawn with their boxes, and notebook 07's table
    under a heading that names the data the run trained and was scored on."""
    if w is None or w.trainer is None:
        return None
    _score(w, "after", w.trainer.model)
    indices = list(range(min(shown, len(w.heldout))))
    _show(evaluate.gallery(w.rows, w.heldout, indices))
    print(f"{w.trainer.state.global_step} steps on {w.data_source}")
    print(f"scored on {w.heldout_source}; accuracy by the course's rule judge")
    print(paper_table())
    print("\nthe same, each figure with its 95 % interval and the paired change (* it excludes 0):")
    print(evaluate.figures_table(evaluate.interval_figures(
        {"before": w.rows["before"], "after": w.rows["after"]})))  # fmt: skip
    return evaluate.compare(w.summaries)
