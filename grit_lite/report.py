"""What a run shows and keeps besides checkpoints: the console, the log, the pictures, and
a held-out table of the start model against the trained one.

The console is one progress bar with the four numbers a learner watches (total reward,
answer accuracy, the think/rethink format reward, KL); every number TRL logs still goes to
``metrics.jsonl``. At the end, :func:`heldout_table` says whether the run learnt anything.
"""

from __future__ import annotations

import contextlib
import json
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from grit_lite import data, rewards, scoring, tiny
from grit_lite.boxes import qwen_to_original, resized_for
from grit_lite.format import build_prompt, draw_boxes, parse_completion

FIG_DPI = 100  # every figure the course draws or saves: legible, and still light
SMOOTH = 10  # steps in the rolling mean drawn over the raw reward curves

WATCHED = {  # bar label -> TRL's log key
    "reward": "reward",
    "accuracy": "rewards/answer_accuracy_reward/mean",
    "format": "rewards/think_rethink_format_reward/mean",
    "kl": "kl",
}


def progress_bar() -> Any:
    """A TrainerCallback drawing one bar for the run, its postfix the :data:`WATCHED` numbers."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class RunBar(TrainerCallback):
        bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.is_world_process_zero:
                self.bar = tqdm(total=state.max_steps, initial=state.global_step,
                                desc="GRPO-GR", unit="step", dynamic_ncols=True)  # fmt: skip

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if self.bar is not None and logs and "reward" in logs:
                shown = {k: f"{logs[key]:.3f}" for k, key in WATCHED.items() if key in logs}
                self.bar.set_postfix(shown, refresh=False)
                self.bar.update(state.global_step - self.bar.n)

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)
                self.bar.close()
                self.bar = None

    return RunBar()


def metrics_callback(path: Path) -> Any:
    """A TrainerCallback that appends every log line (with its step) to ``path``."""
    from transformers import TrainerCallback

    class Metrics(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if state.is_world_process_zero and logs:
                if torch.cuda.is_available() and "reward" in logs:
                    logs["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
                with path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return Metrics()


def _finish(fig: Any, out: str | Path | None) -> Any:
    """Lay out ``fig``; with ``out``, save it (:data:`FIG_DPI`) and close it so runs keep no
    figures open. Returns the figure for notebooks."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=FIG_DPI)
        plt.close(fig)
    return fig


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The log lines of a run's ``metrics.jsonl`` that carry rewards (one per step)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [row for row in map(json.loads, lines) if "reward" in row]


def rolling_mean(values: Sequence[float], window: int = SMOOTH) -> list[float]:
    """Mean of each value and the ``window - 1`` before it (fewer at the start); ``nan``
    values are skipped, so a missing log line does not blank the curve."""
    out = []
    for i in range(len(values)):
        seen = [v for v in values[max(0, i - window + 1) : i + 1] if v == v]
        out.append(sum(seen) / len(seen) if seen else float("nan"))
    return out


def plot_smoothed(
    ax: Any,
    steps: Sequence[float],
    values: Sequence[float],
    color: str = "C0",
    label: str | None = None,
    window: int = SMOOTH,
) -> None:
    """One noisy curve on ``ax``: the raw values faint, their rolling mean on top, so a
    trend stays readable when single steps jump."""
    ax.plot(steps, values, lw=0.8, color=color, alpha=0.25)
    ax.plot(steps, rolling_mean(values, window), lw=1.5, color=color, label=label)


def plot_rewards(
    metrics: Sequence[dict[str, Any]],
    out: str | Path | None = None,
    window: int = SMOOTH,
    columns: int = 4,
) -> Any:
    """One panel per reward function (mean over the step's completions) plus the total, in
    a grid of ``columns``: the raw values faint, their ``window``-step rolling mean on top."""
    import matplotlib.pyplot as plt

    keys = sorted({k for row in metrics for k in row if k.startswith("rewards/") and "/mean" in k})
    keys.append("reward")
    cols = min(columns, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(1.72 * cols, 1.9 * rows), squeeze=False, dpi=FIG_DPI
    )
    steps = [row["step"] for row in metrics]
    for ax, key in zip(axes.flat, keys, strict=False):
        values = [row.get(key, float("nan")) for row in metrics]
        plot_smoothed(ax, steps, values, window=window)
        name = key.split("/")[1] if "/" in key else "total"
        ax.set_title(name.removesuffix("_reward").replace("_", " "), fontsize=9)
        ax.set_ylim(0, rewards.REWARD_MAX.get(name, rewards.GRIT_MAX_TOTAL) * 1.05)
        ax.set_xlabel("step", fontsize=9)
        ax.tick_params(labelsize=9)
    for ax in axes.flat[len(keys) :]:
        ax.axis("off")
    return _finish(fig, out)


def plot_reward_stack(
    rows: Sequence[dict[str, float]],
    names: Sequence[str],
    out: str | Path | None = None,
) -> Any:
    """Stacked bars of :func:`grit_lite.rewards.reward_table` rows: one bar per completion,
    one segment per reward function, the bar's height its total (GRIT's maximum dashed)."""
    import matplotlib.pyplot as plt

    labels = [k for k in rows[0] if k != "total"] if rows else []
    fig, ax = plt.subplots(figsize=(7, 3.4), dpi=FIG_DPI)
    bottom = [0.0] * len(rows)
    for k, label in enumerate(labels):
        heights = [row[label] for row in rows]
        ax.bar(range(len(rows)), heights, bottom=bottom, color=f"C{k}", label=label, width=0.7)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.axhline(rewards.GRIT_MAX_TOTAL, color="grey", ls="--", lw=1)
    ax.set_xticks(range(len(rows)), list(names), rotation=35, ha="right", fontsize=9)
    ax.set_ylabel("reward", fontsize=9)
    ax.set_ylim(0, rewards.GRIT_MAX_TOTAL * 1.08)
    ax.tick_params(axis="y", labelsize=9)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _finish(fig, out)


def rollouts(
    model: Any, processor: Any, items: Sequence[tuple[data.Record, Any]], max_new_tokens: int
) -> list[dict[str, Any]]:
    """Greedy completions to the GRIT prompt, parsed and scored with the reward preset; the
    think boxes are mapped from the pixels the model saw to the image's, ready to draw."""
    prompts = [build_prompt(r.question) for r, _ in items]
    texts = tiny.generate(model, processor, prompts, [im for _, im in items], max_new_tokens)
    out = []
    for (record, image), text in zip(items, texts, strict=True):
        seen = resized_for(processor, image)
        boxes = [qwen_to_original(b, image.size, seen) for b in parse_completion(text).boxes]
        scores = {
            fn.__name__: fn([text], answer=[record.answer], dataset=[record.dataset])[0]
            for fn in rewards.GRIT_REWARDS
        }
        out.append({"question": record.question, "answer": record.answer, "completion": text,
                    "boxes": boxes, "rewards": scores})  # fmt: skip
    return out


def draw_rollouts(
    rows: Sequence[dict[str, Any]],
    items: Sequence[tuple[data.Record, Any]],
    out: str | Path | None = None,
) -> Any:
    """The rollouts' think boxes on their images, with question, answer and total reward."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(rows), figsize=(1.75 * len(rows), 2.9), squeeze=False, dpi=FIG_DPI
    )
    for ax, row, (_, image) in zip(axes[0], rows, items, strict=True):
        ax.imshow(draw_boxes(image, row["boxes"], width=2))
        total = sum(row["rewards"].values())
        answer = parse_completion(row["completion"]).answer
        question = "\n".join(textwrap.wrap(row["question"], 20))
        ax.set_title(f"{question}\nsaid {str(answer)[:8]!r} (truth {row['answer']})\n"
                     f"reward {total:.2f}", fontsize=9)  # fmt: skip
        ax.axis("off")
    return _finish(fig, out)


def write_rollouts(output: Path, stage: str, rows: list[dict[str, Any]], items: Any) -> None:
    with (output / f"rollouts_{stage}.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    draw_rollouts(rows, items, output / f"rollouts_{stage}.png")


# ---------------------------------------------------------------------------------------------
# The held-out table at the end of a run
# ---------------------------------------------------------------------------------------------


def heldout_summary(
    model: Any, processor: Any, items: Sequence[tuple[data.Record, Any]], max_new_tokens: int
) -> dict[str, Any]:
    """Greedy completions on held-out items, scored as notebook 07 scores them, plus the
    plain-question accuracy (what the model knows without GRIT's prompt)."""
    with eval_mode(model):
        rows = scoring.evaluate_model(model, processor, items, max_new_tokens, progress=False)
        summary = scoring.summarize(rows)
        summary["plain_accuracy"] = scoring.plain_accuracy(model, processor, items)
    summary["figures"] = scoring.figures(rows)  # each with its n and 95 % interval
    return summary


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """``model.eval()`` for the block, then back to the mode it was in (mid-run, training)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def heldout_table(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Notebook 06's learning targets for the start and the trained model, each with the
    95 % intervals of :func:`grit_lite.scoring.figures` where the summaries carry them."""
    targets = scoring.learning_targets(before, after, before["plain_accuracy"])
    for name, key in scoring.TARGET_METRICS.items():
        for stage, summary in (("before", before), ("after", after)):
            targets[name][f"{stage}_ci95"] = (summary.get("figures") or {}).get(key)
    return targets


def format_table(targets: dict[str, dict[str, Any]], n: int) -> str:
    """The targets as a small text table for the console and ``heldout.txt``: start, end,
    target, then each figure's 95 % interval (and its n where it is not every scene)."""

    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}"

    def interval(fig: dict[str, Any] | None) -> str:
        if not fig or fig.get("ci95", [None])[0] is None:
            return "-"
        low, high = fig["ci95"]
        return f"[{low:.2f}, {high:.2f}]" + ("" if fig["n"] == n else f" n={fig['n']}")

    width = max(map(len, targets))
    lines = [f"held-out scenes: {n}, greedy; 95 % intervals (Wilson, or bootstrap for IoU)",
             f"{'':{width}}  {'start':>6}  {'end':>6}  target    start 95 %, end 95 %"]
    for name, row in targets.items():
        spread = ""
        if row.get("before_ci95") or row.get("after_ci95"):
            spread = f"  {interval(row.get('before_ci95'))}, {interval(row.get('after_ci95'))}"
        lines.append(f"{name:{width}}  {cell(row['before']):>6}  {cell(row['after']):>6}  "
                     f"{row['target']:<8}{spread}".rstrip())  # fmt: skip
    return "\n".join(lines)


def write_heldout(output: Path, before: dict[str, Any], after: dict[str, Any], n: int) -> str:
    """Print the start-vs-end table and keep it in the run folder (``heldout.txt`` to read,
    ``heldout.json`` with every summary number). Returns the table."""
    targets = heldout_table(before, after)
    table = format_table(targets, n)
    (output / "heldout.txt").write_text(table + "\n", encoding="utf-8")
    record = {"n": n, "start": before, "end": after, "targets": targets}
    (output / "heldout.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return table
