"""Scoring grounded reasoning: is the answer right, are the boxes right, are they used?

The measurements of :mod:`grit_lite.evaluate` (notebook 07), kept below training so that a
run can score its own start and end (``python -m grit_lite.train`` ends with them):

* **answer accuracy**, by the course's judge (rules offline, an LLM when configured);
* **grounding**: the boxes written inside ``<think>``, converted from the model's resized
  image back to original pixels, Hungarian-matched to the annotated boxes of the question's
  key objects (:func:`grit_lite.boxes.grounding_scores`);
* **whether the reasoning uses its regions** (:func:`box_answer_consistency`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from grit_lite import data, rewards
from grit_lite.boxes import (
    grounding_scores,
    qwen_resized_size,
    qwen_to_original,
    resized_for,
    union_iou,
)
from grit_lite.format import FORMAT_RULES, build_prompt, extract_answer, parse_completion

_RELATION = re.compile(r"\b(left of|right of|above|below)\b")
_GROUNDING = ("mean_iou", "precision", "recall")


def _as_int(text: str | None) -> int | None:
    """The count a one-word answer states (digits of any script, number words), or None.

    ``isdecimal`` and not ``isdigit``: "²" and "①" are digits to Unicode but not to ``int``.
    """
    from grit_lite.judge import normalize_answer

    words = normalize_answer(text or "")
    if len(words) != 1 or not words[0].isdecimal():
        return None
    try:
        return int(words[0])
    except ValueError:  # more digits than Python's int-from-text limit
        return None


def seen_size(width: int, height: int) -> tuple[int, int]:
    """The size Qwen2.5-VL resizes an image to, or the image's own size when its processor
    refuses it (an aspect ratio over 200, which validation reports): scoring never raises."""
    try:
        return qwen_resized_size(width, height)
    except (ValueError, OverflowError, ZeroDivisionError):
        return width, height


def _centre(box: Sequence[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def implied_by_boxes(question: str, boxes: Sequence[Sequence[float]]) -> str | None:
    """The yes/no that the first two boxes imply for "Is the A <relation> the B?", or None."""
    match = _RELATION.search(question)
    if match is None or len(boxes) < 2:
        return None
    (ax, ay), (bx, by) = _centre(boxes[0]), _centre(boxes[1])
    gap = {"left of": bx - ax, "right of": ax - bx, "above": by - ay, "below": ay - by}
    return "yes" if gap[match.group(1)] > 0 else "no"


def box_answer_consistency(completion: str, question: str, dataset: str) -> float | None:
    """1.0 when the answer follows from the completion's own think boxes, 0.0 when it
    contradicts them, None when that cannot be told (no answer, a dataset with no rule, or
    a spatial chain with fewer than two boxes: one box implies no relation).

    Counting (``tallyqa``): the answer, as an integer, equals the number of think boxes.
    Spatial (``vsr`` yes/no questions with a relation): the answer equals the relation
    evaluated on the centres of the first two think boxes. A model that draws boxes and then
    answers something else scores 0 even when right.
    """
    parsed = parse_completion(completion)
    said = (parsed.answer or "").strip().lower().strip(".!")
    if not said:
        return None
    if dataset == "tallyqa":
        return float(_as_int(said) == len(parsed.boxes))
    if dataset == "vsr" and said in ("yes", "no") and _RELATION.search(question):
        implied = implied_by_boxes(question, parsed.boxes)
        return None if implied is None else float(implied == said)
    return None


def score_completion(
    completion: str,
    record: data.Record,
    resized: tuple[int, int] | None = None,
    judge: Any = None,
) -> dict[str, Any]:
    """Every per-sample metric of one completion to ``record``'s question.

    ``resized`` is the (width, height) the model saw (default: Qwen2.5-VL's ``smart_resize``
    of the record's size with the processor's default limits); think boxes are mapped from
    it to the record's original pixels before matching.
    """
    parsed = parse_completion(completion)
    size = (record.width, record.height)
    seen = resized or seen_size(*size)
    boxes = [qwen_to_original(b, size, seen) for b in parsed.boxes]
    annotated = bool(record.bboxs) or (record.dataset == "tallyqa" and _as_int(record.answer) == 0)
    grounding = grounding_scores(boxes, record.bboxs) if annotated else dict.fromkeys(_GROUNDING)
    kwargs = {"answer": [record.answer], "dataset": [record.dataset], "question": [record.question]}
    components = {fn.__name__: fn([completion], **kwargs)[0] for fn in rewards.GRIT_REWARDS[1:]}
    correct = rewards.answer_accuracy_score(completion, record.answer, record.question, judge)
    components = {"answer_accuracy_reward": correct, **components}
    row: dict[str, Any] = {
        "question": record.question,
        "truth": record.answer,
        "dataset": record.dataset,
        "completion": completion,
        "answer": extract_answer(completion),
        "correct": correct,
        "format": parsed.checks,
        "well_formed": parsed.well_formed,
        "boxes": [list(b) for b in boxes],
        "iou": grounding["mean_iou"],
        "precision": grounding["precision"],
        "recall": grounding["recall"],
        "giou": union_iou(boxes, record.bboxs) if annotated else None,  # the paper's measure
        "rewards": components,
        "reward": sum(components.values()),
        "consistency": box_answer_consistency(completion, record.question, record.dataset),
    }
    if record.dataset == "tallyqa":
        row["count"] = {
            "boxes": len(boxes),
            "said": _as_int(row["answer"]),
            "truth": _as_int(record.answer),
        }
    return row


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means over samples: accuracy per dataset family, every format rule, each reward,
    grounding (all samples, and those with at least one box; the matched IoU and the paper's
    union GIoU), count and box-answer consistency (the mean over the answers it can be told
    for, and the three counts over all of them). A mean over no samples is None, never a
    division by zero."""
    out: dict[str, Any] = {"n": len(rows), "accuracy": _mean([r["correct"] for r in rows])}
    for family in sorted({r["dataset"] for r in rows}):
        out[f"accuracy/{family}"] = _mean([r["correct"] for r in rows if r["dataset"] == family])
    for rule in FORMAT_RULES:
        out[f"format/{rule}"] = _mean([float(r["format"][rule]) for r in rows])
    out["format/all_four_tags_in_order"] = out.get("format/tags_in_order")
    for name in rows[0]["rewards"] if rows else ():
        out[f"reward/{name}"] = _mean([r["rewards"][name] for r in rows])
    out["reward/total"] = _mean([r["reward"] for r in rows])
    for key in ("iou", "precision", "recall"):
        out[f"grounding/{key}"] = _mean([r[key] for r in rows])
    out["grounding/giou"] = _mean([r.get("giou") for r in rows])
    boxed = [r for r in rows if r["boxes"]]
    out["grounding/with_boxes"] = len(boxed) / len(rows) if rows else None
    out["grounding/iou_when_boxed"] = _mean([r["iou"] for r in boxed])
    counts = [r["count"] for r in rows if "count" in r]
    out["count/boxes_equal_truth"] = _mean([float(c["boxes"] == c["truth"]) for c in counts])
    out["count/said_equals_boxes"] = _mean([float(c["said"] == c["boxes"]) for c in counts])
    out["consistency"] = _mean([r["consistency"] for r in rows])
    for verdict, count in consistency_counts(rows).items():  # over all scored: a fixed base
        out[f"consistency/{verdict.replace(' ', '_')}"] = count
    return out


def evaluate_model(
    model: Any,
    processor: Any,
    items: Sequence[tuple[data.Record, Any]],
    max_new_tokens: int = 256,
    batch: int = 16,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Greedy completions to the GRIT prompt for every item, scored by :func:`score_completion`."""
    from tqdm.auto import tqdm

    from grit_lite.tiny import generate

    rows = []
    for i in tqdm(range(0, len(items), batch), desc="evaluate", disable=not progress):
        chunk = items[i : i + batch]
        prompts = [build_prompt(r.question) for r, _ in chunk]
        texts = generate(model, processor, prompts, [im for _, im in chunk], max_new_tokens, batch)
        for (record, image), text in zip(chunk, texts, strict=True):
            resized = resized_for(processor, image)
            rows.append(score_completion(text, record, resized))
    return rows


def plain_accuracy(model: Any, processor: Any, items: Sequence[tuple[data.Record, Any]]) -> float:
    """Accuracy on the bare questions (no GRIT suffix): what the base model knows before RL."""
    from grit_lite.judge import rule_judge
    from grit_lite.tiny import generate

    said = generate(model, processor, [r.question for r, _ in items], [im for _, im in items], 8)
    scores = [rule_judge(r.question, r.answer, s) for (r, _), s in zip(items, said, strict=True)]
    return sum(scores) / max(1, len(scores))


TARGET_METRICS = {  # notebook 06's targets, by the summary key each reads
    "format: four tags in order": "format/all_four_tags_in_order",
    "completions with a think box": "grounding/with_boxes",
    "IoU of the boxed answers": "grounding/iou_when_boxed",
    "answer accuracy (GRIT prompt)": "accuracy",
}


def learning_targets(
    before: dict[str, Any], after: dict[str, Any], base_plain_accuracy: float
) -> dict[str, dict[str, Any]]:
    """The course's targets for a GRPO-GR run (notebook 06), from two :func:`summarize` results.

    Format compliance is all four think/rethink tags in order; "boxed" is the fraction of
    completions with at least one box inside ``<think>``; the IoU is over those completions
    only; accuracy after RL must stay within 5 points of the base model's plain QA accuracy.
    """
    bars = (">= 0.90", ">= 0.80", ">= 0.40", f">= {base_plain_accuracy - 0.05:.2f}")
    return {
        name: {"before": before.get(key), "after": after.get(key), "target": target}
        for (name, key), target in zip(TARGET_METRICS.items(), bars, strict=True)
    } | {"base plain-QA accuracy": {"before": base_plain_accuracy, "after": None, "target": ""}}


# ---------------------------------------------------------------------------------------------
# Every figure with its n and a 95 % interval
# ---------------------------------------------------------------------------------------------

BOOTSTRAP = 2000  # resamples: the interval's ends move by ~0.01 of its width between seeds


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson interval of a proportion: it stays inside [0, 1] and is not a point
    at 0 of n or n of n, where the normal approximation collapses (scipy's ``binomtest``)."""
    from scipy.stats import binomtest

    if n == 0:
        return 0.0, 1.0  # no sample: anything
    ci = binomtest(int(successes), int(n)).proportion_ci(0.95, method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap(values: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """The 95 % percentile-bootstrap interval of a mean (IoU, a reward): resample the
    samples with replacement, take the 2.5th and 97.5th percentiles of the means. Seeded,
    so the same rows give the same interval."""
    import numpy as np

    data_ = np.asarray([v for v in values if v is not None], dtype=float)
    if data_.size == 0:
        return math.nan, math.nan
    picks = np.random.default_rng(seed).integers(0, data_.size, (BOOTSTRAP, data_.size))
    means = data_[picks].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def figure(values: Sequence[float | None], proportion: bool) -> dict[str, Any]:
    """``{"value", "n", "ci95"}`` of the samples that have a value (None: not defined for
    that sample): Wilson's interval for 0/1 values, else the bootstrap's."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return {"value": None, "n": 0, "ci95": [None, None]}
    value = sum(kept) / len(kept)
    lo, hi = wilson(round(sum(kept)), len(kept)) if proportion else bootstrap(kept)
    # the value sits inside its interval by construction; min/max only absorb float rounding
    return {"value": value, "n": len(kept), "ci95": [min(lo, value), max(hi, value)]}


CONSISTENCY = ("follows", "contradicts", "cannot tell")


def _verdict(score: float | None) -> str:
    return "cannot tell" if score is None else "follows" if score else "contradicts"


def consistency_verdict(completion: str, question: str, dataset: str) -> str:
    """:func:`box_answer_consistency` in words: the answer follows from the chain's own
    boxes, contradicts them, or it cannot be told."""
    return _verdict(box_answer_consistency(completion, question, dataset))


def consistency_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many of all scored completions follow, contradict or cannot be told (each row's
    ``consistency``): counts over the same denominator for every model, not a mean over the
    ones that had a verdict."""
    said = [_verdict(r["consistency"]) for r in rows]
    return {verdict: said.count(verdict) for verdict in CONSISTENCY}


def _proportions(rows: Sequence[dict[str, Any]]) -> dict[str, list[float | None]]:
    values: dict[str, list[float | None]] = {"accuracy": [r["correct"] for r in rows]}
    for family in sorted({r["dataset"] for r in rows}):
        values[f"accuracy/{family}"] = [r["correct"] for r in rows if r["dataset"] == family]
    for rule in FORMAT_RULES:
        values[f"format/{rule}"] = [float(r["format"][rule]) for r in rows]
    values["format/all_four_tags_in_order"] = values["format/tags_in_order"]  # as summarize
    values["grounding/with_boxes"] = [float(bool(r["boxes"])) for r in rows]
    counts = [r["count"] for r in rows if "count" in r]
    values["count/boxes_equal_truth"] = [float(c["boxes"] == c["truth"]) for c in counts]
    values["count/said_equals_boxes"] = [float(c["said"] == c["boxes"]) for c in counts]
    return values


def _means(rows: Sequence[dict[str, Any]]) -> dict[str, list[float | None]]:
    values: dict[str, list[float | None]] = {}
    for key in ("iou", "precision", "recall"):
        values[f"grounding/{key}"] = [r[key] for r in rows]
    values["grounding/iou_when_boxed"] = [r["iou"] for r in rows if r["boxes"]]
    values["grounding/giou"] = [r.get("giou") for r in rows]  # the paper's measure
    for name in rows[0]["rewards"] if rows else ():
        values[f"reward/{name}"] = [r["rewards"][name] for r in rows]
    values["reward/total"] = [r["reward"] for r in rows]
    return values


def figures(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Every metric of :func:`summarize` as :func:`figure` (value, n, 95 % interval), the
    paper's GIoU beside the course's matched IoU, and the consistency counts."""
    out: dict[str, Any] = {"n": len(rows)}
    out |= {k: figure(v, proportion=True) for k, v in _proportions(rows).items()}
    out |= {k: figure(v, proportion=False) for k, v in _means(rows).items()}
    counts = consistency_counts(rows)
    told = counts["follows"] + counts["contradicts"]
    lo, hi = wilson(counts["follows"], told)
    out["consistency"] = {"value": counts["follows"] / told if told else None, "n": told,
                          "ci95": [lo, hi] if told else [None, None], "counts": counts}  # fmt: skip
    return out


def paired_change(
    before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]], seed: int = 0
) -> dict[str, Any]:
    """The change of each metric from ``before`` to ``after`` on the same scenes, in order:
    a paired bootstrap of the per-scene differences (95 % interval; ``real`` when it excludes
    0), and for accuracy McNemar's exact test on the scenes whose verdict changed."""
    import numpy as np

    if [r["question"] for r in before] != [r["question"] for r in after]:
        raise ValueError("a paired change needs the same scenes in the same order")
    out: dict[str, Any] = {}
    paired = {**_proportions(before), **_means(before)}
    later = {**_proportions(after), **_means(after)}
    paired.pop("grounding/iou_when_boxed")  # each model's own boxed subset: not paired
    for key, values in paired.items():
        pairs = [(a, b) for a, b in zip(values, later[key], strict=True)
                 if a is not None and b is not None]  # fmt: skip
        if not pairs:
            continue
        diffs = np.asarray([b - a for a, b in pairs], dtype=float)
        lo, hi = bootstrap(diffs, seed)
        out[key] = {"change": float(diffs.mean()), "n": len(pairs), "ci95": [lo, hi],
                    "real": bool(lo > 0 or hi < 0)}  # fmt: skip
    if "accuracy" in out:
        gained, lost, p = mcnemar(paired["accuracy"], later["accuracy"])
        out["accuracy"] |= {"mcnemar_p": p, "right_to_wrong": lost, "wrong_to_right": gained}
    return out


def mcnemar(
    before: Sequence[float | None], after: Sequence[float | None]
) -> tuple[int, int, float]:
    """McNemar's exact test of two verdicts (right 1, wrong 0) on the same scenes: (scenes
    wrong before and right after, right before and wrong after, two-sided p). Only the
    scenes whose verdict differs carry evidence; under no change each way is a coin toss."""
    from scipy.stats import binomtest

    pairs = [(round(a), round(b)) for a, b in zip(before, after, strict=True)
             if a is not None and b is not None]  # fmt: skip
    gained, lost = sum(b > a for a, b in pairs), sum(b < a for a, b in pairs)
    p = binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
    return gained, lost, float(p)


# ---------------------------------------------------------------------------------------------
# Three ways to answer: directly, with a chain in words, with GRIT's grounded chain
# ---------------------------------------------------------------------------------------------

WORDS_SUFFIX = (  # GRIT's suffix with the coordinates taken out: a chain of thought in words
    " First, think between <think> and </think> in words, without coordinates. Then answer "
    "the question after <answer>.\n"
)
WAYS = ("direct", "chain in words", "grounded chain")


def three_ways(
    model: Any,
    processor: Any,
    items: Sequence[tuple[data.Record, Any]],
    max_new_tokens: int = 128,
) -> dict[str, list[float]]:
    """Whether each answer is right when the model is asked three ways on the same scenes: the
    bare question (the paper's direct-query row), a chain of thought in words, and GRIT's
    grounded chain. Is a chain with boxes better than one without, or than none? The paper's
    Table 1 says yes after GRIT; a 2026 study of other grounded reasoners says often not."""
    from grit_lite.judge import rule_judge
    from grit_lite.tiny import generate

    questions = [r.question for r, _ in items]
    images = [im for _, im in items]
    direct = generate(model, processor, questions, images, 16)
    words = generate(model, processor, ["Question: " + q + WORDS_SUFFIX for q in questions],
                     images, max_new_tokens)  # fmt: skip
    grounded = generate(model, processor, [build_prompt(q) for q in questions], images,
                        max_new_tokens)  # fmt: skip
    return {
        "direct": [rule_judge(r.question, r.answer, said) for (r, _), said in
                   zip(items, direct, strict=True)],  # fmt: skip
        "chain in words": [rewards.answer_accuracy_score(t, r.answer, r.question) for (r, _), t in
                           zip(items, words, strict=True)],  # fmt: skip
        "grounded chain": [rewards.answer_accuracy_score(t, r.answer, r.question) for (r, _), t in
                           zip(items, grounded, strict=True)],  # fmt: skip
    }


def ways_table(correct: dict[str, list[float]]) -> Any:
    """Accuracy of each way with its n and 95 % Wilson interval, and McNemar's exact test of
    each against GRIT's grounded chain on the same scenes (the scenes whose verdict differs)."""
    import pandas as pd

    table = {}
    for way, values in correct.items():
        fig = figure(values, proportion=True)
        wins, losses, p = mcnemar(correct["grounded chain"], values)  # this way against it
        test = "-" if way == "grounded chain" else "< 0.001" if p < 0.001 else f"{p:.3f}"
        table[way] = {"accuracy": f"{fig['value']:.2f}", "n": fig["n"],
                      "95 % CI": "[{:.2f}, {:.2f}]".format(*fig["ci95"]),
                      "better / worse than grounded": f"{wins} / {losses}",
                      "McNemar p": test}  # fmt: skip
    return pd.DataFrame(table).T
