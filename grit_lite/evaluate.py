"""Evaluating grounded reasoning: is the answer right, are the boxes right, are they used?

    python -m grit_lite.evaluate --model data/tiny -n 200 --out runs/eval/base.jsonl
    python -m grit_lite.evaluate --model runs/tiny-cpu/final --split /data/grit/vsr_test.jsonl
    python -m grit_lite.evaluate --model Qwen/Qwen2.5-VL-3B-Instruct --split grit -n 100
    python -m grit_lite.evaluate --model runs/walkthrough/final --split grit -n 100  # LoRA too
    python -m grit_lite.evaluate --model data/tiny_grpo --think-swap --max-new-tokens 128
    python -m grit_lite.evaluate --model data/tiny data/tiny_grpo --json runs/eval/figures.json
    python -m grit_lite.evaluate --model data/tiny_grpo --three-ways -n 100  # direct, words, boxes

The paper measures three things, and so does this module, per completion and in summary:

* **answer accuracy**, by the course's judge (rules offline, an LLM when configured);
* **grounding**: the boxes written inside ``<think>``, converted from the model's resized
  image back to original pixels, Hungarian-matched to the annotated boxes of the question's
  key objects (:func:`grit_lite.boxes.grounding_scores`);
* **whether the reasoning uses its regions**: for a counting question, does the answer equal
  the number of boxes drawn; for a spatial question, does the yes/no follow from the model's
  *own* two boxes. Defined offline and exactly, in :func:`box_answer_consistency`; and, by
  experiment, :func:`think_swap` (``--think-swap``): does accuracy fall when the model answers
  after another scene's think instead of its own?

Degenerate cases are counted, not skipped: a completion without boxes has grounding IoU 0
when the question has key objects; a question whose answer is "0" has no key objects, so
no boxes scores 1 and any box scores 0 (see ``grounding_scores``). A record of another
dataset without annotated boxes (MME, MathVista) has no grounding score (None), so it
neither helps nor hurts the means.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grit_lite import data
from grit_lite.boxes import resized_for  # noqa: F401 -- notebook 05 imports it from here
from grit_lite.format import (
    ANSWER,
    RETHINK,
    RETHINK_END,
    THINK,
    THINK_END,
    build_prompt,
    extract_answer,
)
from grit_lite.presets import TrainError, resolve_model
from grit_lite.rewards import answer_accuracy_score
from grit_lite.runs import RunFolderError, check_writable, number_arg
from grit_lite.scoring import (  # noqa: F401 -- the course calls them as evaluate.X
    WAYS,
    WORDS_SUFFIX,
    _mean,
    box_answer_consistency,
    evaluate_model,
    implied_by_boxes,
    learning_targets,
    plain_accuracy,
    score_completion,
    summarize,
    three_ways,
    ways_table,
)

GRIT_SPLIT = "grit"  # --split grit: GRIT's own held-out questions (data.fetch_grit_heldout)


def load_split(
    split: str = "heldout", n: int | None = 200, grit_folder: str | Path | None = None
) -> list[tuple[data.Record, Any]]:
    """Items to evaluate: ``"heldout"`` (the shipped synthetic split), ``"grit"`` (GRIT's
    held-out sample) or a GRIT-format file.

    ``"grit"`` is the seeded sample of GRIT's VSR and TallyQA evaluation files that notebook
    06 scores on, ``n // 2`` of each (at most 50), read from ``grit_folder`` (default
    ``data.GRIT_DATA_CACHE``) and downloaded there first when missing: the only choice that
    fetches, so offline it is one :class:`grit_lite.data.Unreachable` error.
    GRIT's evaluation files (VSR, TallyQA, GQA, MathVista-mini, MME, OVDEval) share the
    training record shape; a file without ``bboxs`` or ``split`` (no boxes annotated) is
    read with ``[]`` and ``"test"``. Images come from an ``images`` folder beside the file.
    """
    if split == "heldout":
        return data.eval_split(n or 200)
    if split == GRIT_SPLIT:
        per_file = min(data.HELDOUT_PER_FILE, max(1, (n or 200) // 2))
        records = data.fetch_grit_heldout(grit_folder or data.GRIT_DATA_CACHE, per_file)
        return [(r, data.open_image(r.image_path)) for r in records]
    records = data.load_jsonl(split, defaults={"bboxs": [], "split": "test"})[:n]
    if not records:
        raise data.DataError(f"{split} holds no records: nothing to evaluate")
    return [(r, data.open_image(r.image_path)) for r in records]


def record_names(models: Sequence[str]) -> dict[str, str]:
    """A file name per model for its per-sample records: the whole path or hub id, readable
    (``runs/a.v1`` -> ``runs--a.v1.jsonl``, ``Qwen/Qwen2.5-VL-3B`` -> ``Qwen--Qwen2.5-VL-3B.jsonl``)
    and never shared: a second model with the same name gets ``-2``."""
    names: dict[str, str] = {}
    for model in models:
        parts = [p for p in Path(model).parts if p not in ("/", ".", "..", "~")]
        stem = "--".join(parts) or "model"
        name, k = f"{stem}.jsonl", 2
        while name in names.values():
            name, k = f"{stem}-{k}.jsonl", k + 1
        names[model] = name
    return names


def load_model(name: str, device: str | None = None, base: str | None = None) -> tuple[Any, Any]:
    """A local checkpoint folder (tiny or 3B, a GRPO run's ``final``, LoRA adapters) or a hub
    id, with its processor.

    The tiny model loads on the CPU in fp32, as it was trained. Any other model loads on
    ``device`` (the GPU when there is one) in the precision and with the image cap it was
    trained with: boxes are scored in the resized image's pixel grid, so a processor with
    another cap would grade them in another grid. LoRA adapters are merged into their base
    (``base``, else the one their ``adapter_config.json`` names) for fast greedy decoding.
    """
    from grit_lite import train
    from grit_lite.tiny import load_tiny

    try:
        path = resolve_model(name)
        if train.knows_only_shapes(path):
            return load_tiny(path)
        if not (Path(path) / "adapter_config.json").is_file():
            return _load_vlm(path, device, _run_settings(path))
        from peft import PeftModel

        base_path = _adapters_base(path, base)
        if train.knows_only_shapes(base_path):
            model, processor = load_tiny(base_path)
        else:
            model, processor = _load_vlm(base_path, device, _run_settings(path))
        model = PeftModel.from_pretrained(model, path, torch_device=str(model.device))
        return model.merge_and_unload().eval(), processor
    except (OSError, ValueError) as error:  # no such hub repository, not a Qwen2.5-VL folder
        raise TrainError(f"cannot load the model {name}: {error}") from None


def _run_settings(folder: str) -> dict[str, Any] | None:
    """The ``preset.json`` of the run that wrote ``folder`` (its ``final`` or a checkpoint),
    or None for a folder no run wrote: a run's precision and image cap beat the defaults."""
    saved = Path(folder).parent / "preset.json"
    if not Path(folder).is_dir() or not saved.is_file():
        return None
    return json.loads(saved.read_text(encoding="utf-8"))


def _adapters_base(folder: str, base: str | None) -> str:
    """The loadable base model of the LoRA adapters in ``folder``."""
    config = json.loads((Path(folder) / "adapter_config.json").read_text(encoding="utf-8"))
    base = base or config.get("base_model_name_or_path") or "(not named)"
    try:
        return resolve_model(base)
    except TrainError:
        raise TrainError(
            f"the LoRA adapters in {folder} need their base model {base}, which is neither a "
            "folder here nor on the hub: download it where you are online and pass its folder: "
            f"--base /path/to/{Path(base).name}"
        ) from None


def _precision(where: Any, run: dict[str, Any] | None) -> Any:
    """fp32 on the CPU; on a GPU the run's own precision, else bf16 where the card has it
    natively and fp16 where it does not (a T4)."""
    import torch

    from grit_lite.presets import native_bf16

    if where.type != "cuda":
        return torch.float32
    if run is not None and run.get("bf16"):
        return torch.bfloat16
    if run is not None:
        return torch.float16 if run.get("fp16") else torch.float32
    card = torch.cuda.get_device_properties(where)
    return torch.bfloat16 if native_bf16((card.major, card.minor)) else torch.float16


def _load_vlm(path: str, device: str | None, run: dict[str, Any] | None) -> tuple[Any, Any]:
    """Qwen2.5-VL straight onto ``device`` (the 3B built in fp32 on the CPU first would need
    15 GB of RAM and a copy), with the run's image cap (GRIT's when no run wrote it)."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from grit_lite import gpu
    from grit_lite.boxes import QWEN_MIN_PIXELS
    from grit_lite.presets import GRIT_MAX_PIXELS

    where = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = _precision(where, run)
    placement = {"device_map": str(where)} if where.type == "cuda" else {}
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=dtype, **placement)
    if dtype == torch.float16:
        gpu.vision_in_fp32(model)  # fp16 overflows in Qwen's vision MLP
    cap = GRIT_MAX_PIXELS if run is None else run.get("max_pixels", GRIT_MAX_PIXELS)
    size = {"size": {"shortest_edge": QWEN_MIN_PIXELS, "longest_edge": cap}} if cap else {}
    return model.eval(), AutoProcessor.from_pretrained(path, **size)


def compare(summaries: dict[str, dict[str, Any]]) -> Any:
    """One table (a pandas DataFrame): a row per metric, a column per checkpoint, and the
    change from the first checkpoint to the last. Metrics that are None stay empty."""
    import pandas as pd

    table = pd.DataFrame(summaries).apply(pd.to_numeric, errors="coerce")
    if len(summaries) > 1:
        first, last = list(summaries)[0], list(summaries)[-1]
        table["change"] = table[last] - table[first]
    return table.round(3)


def _caption(name: str, row: dict[str, Any]) -> str:
    said = "no answer" if row["answer"] is None else f"said {str(row['answer'])[:10]!r}"
    iou = "-" if row["iou"] is None else f"{row['iou']:.2f}"
    verdict = "right" if row["correct"] else "wrong"
    n = len(row["boxes"])
    return f"{name}: {said}, {verdict}\nIoU {iou}, {n} box{'es' * (n != 1)}"


def gallery(
    runs: dict[str, Sequence[dict[str, Any]]],
    items: Sequence[tuple[data.Record, Any]],
    indices: Sequence[int],
    out: str | Path | None = None,
    columns: int = 3,
) -> Any:
    """The same questions side by side: each question in a column, one row per checkpoint
    under it (at most ``columns`` questions across, then the next block), its think boxes
    on the image.

    Annotated boxes are drawn thin in grey under the model's, so a student sees at once
    whether the model boxed the right things. The question and its truth head the column;
    under each image its own caption names the checkpoint, its answer and the IoU, so no
    caption reads as a header. Text is 9 pt at the figure's own width (at most 7 inches).
    """
    import textwrap

    import matplotlib.pyplot as plt
    from PIL import ImageDraw

    from grit_lite.format import draw_boxes
    from grit_lite.report import FIG_DPI

    cols = max(1, min(columns, len(indices)))
    blocks = -(-len(indices) // cols)
    fig, axes = plt.subplots(
        blocks * len(runs), cols, figsize=(2.3 * cols, 2.9 * blocks * len(runs)),
        squeeze=False, dpi=FIG_DPI,
    )  # fmt: skip
    for k, i in enumerate(indices):
        block, c = divmod(k, cols)
        record, image = items[i]
        for r, (name, rows) in enumerate(runs.items()):
            truth = image.convert("RGB").copy()
            for box in record.bboxs:
                ImageDraw.Draw(truth).rectangle(box, outline=(90, 90, 90), width=1)
            ax = axes[block * len(runs) + r][c]
            ax.imshow(draw_boxes(truth, rows[i]["boxes"], width=2))
            ax.set_xlabel(_caption(name, rows[i]), fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                question = "\n".join(textwrap.wrap(f"Q{i}: {record.question}", 26))
                ax.set_title(f"{question}\ntruth: {record.answer}", fontsize=9, weight="bold")
    for ax in axes.flat:
        if not ax.images:
            ax.axis("off")
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=FIG_DPI)
    return fig


FILTERS = {
    "all": lambda row: True,
    "wrong answer": lambda row: not row["correct"],
    "bad grounding (IoU < 0.5)": lambda row: row["iou"] is not None and row["iou"] < 0.5,
    "not well formed": lambda row: not row["well_formed"],
    "boxes disagree with answer": lambda row: row["consistency"] == 0.0,
}


def browser(rows: Sequence[dict[str, Any]], items: Sequence[tuple[data.Record, Any]]) -> Any:
    """An ipywidgets browser over evaluation records, with :data:`FILTERS` to find failures.

    Like notebook 02's viewer it only sets widget values (no prints into an Output widget),
    so a headless run (nbval) sees nothing but the widget itself.
    """
    import html
    import io

    import ipywidgets as widgets

    from grit_lite.format import draw_boxes

    choice = widgets.Dropdown(options=list(FILTERS), description="show")
    picker = widgets.IntSlider(min=0, max=0, description="record")
    picture = widgets.Image(format="png")
    report = widgets.HTML()

    def kept() -> list[int]:
        return [i for i, row in enumerate(rows) if FILTERS[choice.value](row)]

    def show(change: Any = None) -> None:
        chosen = kept()
        picker.max = max(len(chosen) - 1, 0)
        if not chosen:
            picture.value, report.value = b"", "<pre>no record matches this filter</pre>"
            return
        i = chosen[min(picker.value, len(chosen) - 1)]
        row, (_, image) = rows[i], items[i]
        buffer = io.BytesIO()
        draw_boxes(image, row["boxes"]).save(buffer, format="png")
        picture.value = buffer.getvalue()
        text = (
            f"#{i} ({len(chosen)} match)  [{row['dataset']}] {row['question']}\n"
            f"truth: {row['truth']}   said: {row['answer']}   correct: {row['correct']}\n"
            f"IoU: {row['iou']}   reward: {row['reward']:.2f}   consistency: "
            f"{row['consistency']}\n\n{row['completion']}"
        )
        report.value = f"<pre style='white-space: pre-wrap'>{html.escape(text)}</pre>"

    choice.observe(show, names="value")
    picker.observe(show, names="value")
    show()
    return widgets.VBox([widgets.HBox([choice, picker]), widgets.HBox([picture, report])])


def think_prefix(completion: Any) -> tuple[str, str] | None:
    """(the reply before its think, the think from ``<think>`` to ``</think>``), or None
    when the think is not closed before another tag: the part :func:`think_swap` replaces."""
    if not isinstance(completion, str) or THINK not in completion:
        return None
    start = completion.find(THINK)
    end = completion.find(THINK_END, start)
    if end < 0 or any(tag in completion[start:end] for tag in (RETHINK, RETHINK_END, ANSWER)):
        return None
    return completion[:start], completion[start : end + len(THINK_END)]


def swap_partners(rows: Sequence[dict[str, Any]]) -> list[int | None]:
    """For each row, another row of the same dataset whose think is different (the next one
    in order, wrapping round), or None: no closed think, or no other think to take.

    The other think was written for another picture, so its boxes sit on the wrong places
    and may be a different number: wrong evidence for this question, in the model's own words.
    """
    thinks = [think_prefix(row["completion"]) for row in rows]
    by_dataset: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_dataset.setdefault(row["dataset"], []).append(i)
    partners: list[int | None] = []
    for i, row in enumerate(rows):
        same = by_dataset[row["dataset"]]
        later = [j for j in same if j > i] + [j for j in same if j < i]
        fits = [j for j in later if thinks[j] and thinks[i] and thinks[j][1] != thinks[i][1]]
        partners.append(fits[0] if fits else None)
    return partners


def think_swap(
    model: Any,
    processor: Any,
    items: Sequence[tuple[data.Record, Any]],
    rows: Sequence[dict[str, Any]],
    max_new_tokens: int = 128,
) -> list[dict[str, Any]]:
    """Is the answer read from the boxes? Replace each think by another scene's and see.

    ``rows`` are :func:`evaluate_model`'s for ``items``. For every row with a partner
    (:func:`swap_partners`) the model continues greedily twice after the think: once after
    its own, once after the partner's. If the answer is read from the think's boxes,
    accuracy falls and answers change; if they stay, the boxes were decoration. Both arms
    are generated the same way, so only the think differs between them.
    """
    from grit_lite.tiny import generate

    kept, prompts, images, starts = [], [], [], []
    for i, j in enumerate(swap_partners(rows)):
        if j is None:
            continue
        before, own = think_prefix(rows[i]["completion"])
        other = think_prefix(rows[j]["completion"])[1]
        kept.append(i)
        for think in (own, other):
            prompts.append(build_prompt(items[i][0].question))
            images.append(items[i][1])
            starts.append(before + think)
    texts = generate(model, processor, prompts, images, max_new_tokens, prefixes=starts)
    out = []
    for k, i in enumerate(kept):
        record = items[i][0]
        own, swapped = starts[2 * k] + texts[2 * k], starts[2 * k + 1] + texts[2 * k + 1]
        said = [(extract_answer(t) or "").strip().lower() for t in (own, swapped)]
        correct_own = answer_accuracy_score(own, record.answer, record.question)
        reader = [read_off(think, record, correct_own) for think in (starts[2 * k],
                                                                     starts[2 * k + 1])]
        out.append({
            "dataset": record.dataset,
            "question": record.question,
            "truth": record.answer,
            "own": own,
            "swapped": swapped,
            "correct_own": correct_own,
            "correct_swapped": answer_accuracy_score(swapped, record.answer, record.question),
            "changed": float(said[0] != said[1]),
            "reader_own": reader[0],  # a perfect reader of the think's boxes: right?
            "reader_swapped": reader[1],
        })  # fmt: skip
    return out


def read_off(think: str, record: data.Record, otherwise: float) -> float:
    """Whether a model that reads its answer exactly off ``think``'s boxes would be right:
    counting, the number of boxes; spatial, the relation of the first two boxes' centres.
    Where the boxes imply nothing (one box for a relation, no rule), the reader answers as
    the model did (``otherwise``): the swap cannot move what no box decides."""
    from grit_lite.format import parse_completion
    from grit_lite.scoring import _as_int

    boxes = parse_completion(think).boxes  # the think's own boxes (it ends at </think>)
    if record.dataset == "tallyqa" and _as_int(record.answer) is not None:
        return float(len(boxes) == _as_int(record.answer))
    implied = implied_by_boxes(record.question, boxes) if record.dataset == "vsr" else None
    if implied is None:
        return otherwise
    return float(implied == record.answer.strip().lower())


def summarize_swap(rows: Sequence[dict[str, Any]], n_items: int | None = None) -> dict[str, Any]:
    """Accuracy after the model's own think and after another scene's, the drop between them
    (in points of accuracy, with a paired 95 % bootstrap interval), how often the answer
    changed, and the test's own yardstick: the drop a model that reads its answers exactly
    off its boxes would show on these scenes (``reader_drop_points``; one that ignores them
    shows 0). Overall and per dataset."""
    from grit_lite.scoring import bootstrap

    skipped = None if n_items is None else n_items - len(rows)
    out: dict[str, Any] = {"n": len(rows), "skipped": skipped}
    for family in [None, *sorted({r["dataset"] for r in rows})]:
        kept = [r for r in rows if family is None or r["dataset"] == family]
        suffix = "" if family is None else f"/{family}"
        own = _mean([r["correct_own"] for r in kept])
        swapped = _mean([r["correct_swapped"] for r in kept])
        out[f"n{suffix}"] = len(kept)
        out[f"accuracy_own{suffix}"] = own
        out[f"accuracy_swapped{suffix}"] = swapped
        out[f"drop_points{suffix}"] = None if own is None else round(100 * (own - swapped), 1)
        drops = [100 * (r["correct_own"] - r["correct_swapped"]) for r in kept]
        low, high = bootstrap(drops) if drops else (None, None)
        out[f"drop_ci95{suffix}"] = [low, high]
        reads = [100 * (r["reader_own"] - r["reader_swapped"]) for r in kept if "reader_own" in r]
        out[f"reader_drop_points{suffix}"] = round(sum(reads) / len(reads), 1) if reads else None
        out[f"changed{suffix}"] = _mean([r["changed"] for r in kept])
    return out


def swap_verdict(summary: dict[str, Any], family: str = "") -> str:
    """One line placing the measured drop between a model that ignores its boxes (0) and
    one that reads them exactly (``reader_drop_points``), with the drop's interval."""
    key = f"/{family}" if family else ""
    drop, reader = summary.get(f"drop_points{key}"), summary.get(f"reader_drop_points{key}")
    low, high = summary.get(f"drop_ci95{key}", [None, None])
    if drop is None or reader is None or low is None:
        return "no answer had a think to swap"
    where = f"{drop / reader:.0%} of the way" if abs(reader) >= 0.5 else "no yardstick"
    return (f"drop {drop:.1f} points (95 % CI {low:.1f} to {high:.1f}, n {summary[f'n{key}']});"
            f" a model that reads its boxes would drop {reader:.1f}, one that ignores them 0: "
            f"{where}")


CONSISTENCY_PROMPT = """You check whether a model's final answer follows from its own \
reasoning. The reasoning names image regions as boxes [x1, y1, x2, y2]. You cannot see \
the image. Question: {question}
Reasoning and answer: {completion}
Reply with 1 if the answer follows from the reasoning and the regions it names, else 0."""


def llm_consistency(completion: str, question: str, judge: Any) -> float | None:
    """The LLM-judge variant of :func:`box_answer_consistency`, for questions without a rule.

    ``judge`` is a :class:`grit_lite.judge.LLMJudge`; its ``_ask`` sends one prompt and its
    ``parse_score`` reading of the reply gives 0..1. None when the judge gives no score.
    """
    from grit_lite.judge import parse_score

    reply = judge._ask(CONSISTENCY_PROMPT.format(question=question, completion=completion))
    return None if reply is None else parse_score(reply)


def interval_figures(scored: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Every figure of every model with its n and 95 % interval
    (:func:`grit_lite.scoring.figures`) and, for two models on the same scenes, the paired
    change from the first to the second (:func:`grit_lite.scoring.paired_change`)."""
    from grit_lite.scoring import figures, paired_change

    out: dict[str, Any] = {"models": {name: figures(rows) for name, rows in scored.items()}}
    if len(scored) == 2:
        before, after = scored.values()
        out["change"] = paired_change(before, after)
    return out


KEY_FIGURES = ("accuracy", "accuracy/tallyqa", "accuracy/vsr", "format/tags_in_order",
               "grounding/with_boxes", "grounding/iou", "grounding/giou",
               "grounding/iou_when_boxed", "count/boxes_equal_truth", "count/said_equals_boxes",
               "consistency")  # fmt: skip


def figures_table(figures: dict[str, Any], keys: Sequence[str] = KEY_FIGURES) -> str:
    """:func:`interval_figures` to read: each model's value [95 % interval] n, the paired
    change with its interval (``*`` where it excludes 0), the consistency counts, and for
    accuracy the scenes that changed verdict with McNemar's p."""

    def cell(fig: dict[str, Any] | None) -> str:
        if not fig or fig["value"] is None:
            return "-"
        low, high = fig["ci95"]
        return f"{fig['value']:.2f} [{low:.2f}, {high:.2f}] n={fig['n']}"

    models, change = figures["models"], figures.get("change", {})
    lines = [f"{'':<25}" + "".join(f"{name[-24:]:>26}" for name in models)
             + (f"{'paired change':>24}" if change else "")]  # fmt: skip
    for key in keys:
        row = f"{key:<25}" + "".join(f"{cell(fig.get(key)):>26}" for fig in models.values())
        if change:
            moved = change.get(key)
            row += f"{'-':>24}" if moved is None else (
                f"{moved['change']:+.2f} [{moved['ci95'][0]:+.2f}, {moved['ci95'][1]:+.2f}]"
                + ("*" if moved["real"] else " ")).rjust(24)  # fmt: skip
        lines.append(row)
    for name, fig in models.items():
        counts = fig["consistency"]["counts"]
        lines.append(f"consistency of {name}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if "accuracy" in change:
        acc = change["accuracy"]
        lines.append(f"accuracy: {acc['wrong_to_right']} scenes wrong -> right, "
                     f"{acc['right_to_wrong']} right -> wrong, McNemar p = {acc['mcnemar_p']:.2g}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m grit_lite.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", default=["data/tiny"], nargs="+", help="folders or hub ids; 2+ are compared"
    )
    parser.add_argument(
        "--split", default="heldout",
        help="'heldout' (synthetic), 'grit' (GRIT's VSR + TallyQA sample, fetched when online)"
        " or a GRIT-format .jsonl",
    )
    parser.add_argument(
        "--base", help="the base model of LoRA adapters (default: the one their config names)"
    )
    parser.add_argument("-n", type=number_arg(int, 0, True), default=200, help="items (200)")
    parser.add_argument("--out", help="folder for per-sample records (<model>.jsonl)")
    parser.add_argument("--max-new-tokens", type=number_arg(int, 0, True), default=256)
    parser.add_argument(
        "--record", help="with two models: add the summaries and learning targets to this JSON"
    )
    parser.add_argument(
        "--three-ways", action="store_true",
        help="also answer directly and with a chain in words: accuracy of the three, same scenes",
    )  # fmt: skip
    parser.add_argument(
        "--json", metavar="PATH",
        help="every figure as {value, n, ci95} per model and metric, the consistency counts, "
        "and with two models their paired change",
    )  # fmt: skip
    parser.add_argument(
        "--think-swap", action="store_true",
        help="also answer after another scene's think: does accuracy fall without its own boxes?",
    )  # fmt: skip
    args = parser.parse_args(argv)
    models = list(dict.fromkeys(args.model))  # a model named twice is evaluated once
    try:
        if args.out:
            check_writable(args.out)
        if args.record:
            check_writable(Path(args.record).parent)
        if args.json:
            check_writable(Path(args.json).parent)
        items = load_split(args.split, args.n)
        summaries, files, scored = {}, record_names(models), {}
        verdicts: list[str] = []
        ways: dict[str, Any] = {}
        for name in models:
            model, processor = load_model(name, base=args.base)
            rows = evaluate_model(model, processor, items, args.max_new_tokens)
            summaries[name], scored[name] = summarize(rows), rows
            if args.think_swap:
                swapped = think_swap(model, processor, items, rows, args.max_new_tokens)
                swap = summarize_swap(swapped, len(items))
                summaries[name] |= {f"swap/{key}": value for key, value in swap.items()
                                    if not isinstance(value, list)}  # fmt: skip
                verdicts += [f"think swap, {name}, {kind}: {swap_verdict(swap, family)}"
                             for kind, family in (("all", ""), ("counting", "tallyqa"),
                                                  ("spatial", "vsr"))]  # fmt: skip
            if args.three_ways:
                ways[name] = ways_table(three_ways(model, processor, items, args.max_new_tokens))
            if args.record and len(models) == 2 and name == models[0]:
                base_plain = plain_accuracy(model, processor, items)  # only the targets use it
            if args.out:
                Path(args.out).mkdir(parents=True, exist_ok=True)
                text = "".join(json.dumps(r) + "\n" for r in rows)
                (Path(args.out) / files[name]).write_text(text, encoding="utf-8")
            del model  # one model on the card at a time: two 3Bs in fp16 overfill a T4
    except (data.DataError, TrainError, RunFolderError) as error:
        raise SystemExit(f"error: {error}") from None
    print(compare(summaries).to_string())
    figures = interval_figures(scored)  # once, for the table and --json
    print("\n95 % intervals (Wilson; bootstrap for IoU); * a paired change whose interval "
          "excludes 0\n" + figures_table(figures))
    if verdicts:
        print("\n".join(verdicts))
    for name, table in ways.items():
        print(f"\n{name}, three ways to answer the same {len(items)} questions:")
        print(table.to_string())
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=1), encoding="utf-8")
    if args.record and len(summaries) == 2:
        path = Path(args.record)
        path.parent.mkdir(parents=True, exist_ok=True)
        log = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        (before, after), names = summaries.values(), ("base", "trained")
        log["eval"] = dict(zip(names, summaries.values(), strict=True))
        log["eval_models"] = dict(zip(names, models, strict=True))
        log["targets"] = learning_targets(before, after, base_plain)
        path.write_text(json.dumps(log, indent=1), encoding="utf-8")
        print(json.dumps(log["targets"], indent=1))


if __name__ == "__main__":
    main()
