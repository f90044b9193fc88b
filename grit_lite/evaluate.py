"""Evaluating grounded reasoning: is the answer right, are the boxes right, are they used?

    python -m grit_lite.evaluate --model data/tiny -n 200 --out runs/eval/base.jsonl

The paper measures three things, and so does this module, per completion and in summary:

* **answer accuracy**, by the course's judge (rules offline, an LLM when configured);
* **grounding**: the boxes written inside ``<think>``, converted from the model's resized
  image back to original pixels, Hungarian-matched to the annotated boxes of the question's
  key objects (:func:`grit_lite.boxes.grounding_scores`);
* **whether the reasoning uses its regions**: for a counting question, does the answer equal
  the number of boxes drawn; for a spatial question, does the yes/no follow from the model's
  *own* two boxes. Defined offline and exactly, in :func:`box_answer_consistency`.

Degenerate cases are counted, not skipped: a completion without boxes has grounding IoU 0
when the question has key objects; a question whose answer is "0" has no key objects, so
no boxes scores 1 and any box scores 0 (see ``grounding_scores``).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grit_lite import data, rewards
from grit_lite.boxes import grounding_scores, qwen_resized_size, qwen_to_original
from grit_lite.format import FORMAT_RULES, build_prompt, extract_answer, parse_completion

_RELATION = re.compile(r"\b(left of|right of|above|below)\b")


def _as_int(text: str | None) -> int | None:
    from grit_lite.judge import normalize_answer

    words = normalize_answer(text or "")
    return int(words[0]) if len(words) == 1 and words[0].isdigit() else None


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
    """1.0 when the answer follows from the completion's own think boxes, 0.0 when it does
    not, None when undefined (no answer, or a dataset with no rule).

    Counting (``tallyqa``): the answer, as an integer, equals the number of think boxes.
    Spatial (``vsr`` yes/no questions with a relation): the answer equals the relation
    evaluated on the centres of the first two think boxes (fewer than two boxes: 0.0). A
    model that draws boxes and then answers something else scores 0 even when right.
    """
    parsed = parse_completion(completion)
    said = (parsed.answer or "").strip().lower().strip(".!")
    if not said:
        return None
    if dataset == "tallyqa":
        return float(_as_int(said) == len(parsed.boxes))
    if dataset == "vsr" and said in ("yes", "no") and _RELATION.search(question):
        return float(implied_by_boxes(question, parsed.boxes) == said)
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
    seen = resized or qwen_resized_size(*size)
    boxes = [qwen_to_original(b, size, seen) for b in parsed.boxes]
    grounding = grounding_scores(boxes, record.bboxs)
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
    grounding (all samples, and those with at least one box), count and box-answer
    consistency. A mean over no samples is None, never a division by zero."""
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
    boxed = [r for r in rows if r["boxes"]]
    out["grounding/with_boxes"] = len(boxed) / len(rows) if rows else None
    out["grounding/iou_when_boxed"] = _mean([r["iou"] for r in boxed])
    counts = [r["count"] for r in rows if "count" in r]
    out["count/boxes_equal_truth"] = _mean([float(c["boxes"] == c["truth"]) for c in counts])
    out["count/said_equals_boxes"] = _mean([float(c["said"] == c["boxes"]) for c in counts])
    out["consistency"] = _mean([r["consistency"] for r in rows])
    return out


def evaluate_model(
    model: Any,
    processor: Any,
    items: Sequence[tuple[data.Record, Any]],
    max_new_tokens: int = 256,
    batch: int = 16,
) -> list[dict[str, Any]]:
    """Greedy completions to the GRIT prompt for every item, scored by :func:`score_completion`."""
    from tqdm.auto import tqdm

    from grit_lite.tiny import generate

    rows = []
    for i in tqdm(range(0, len(items), batch), desc="evaluate"):
        chunk = items[i : i + batch]
        prompts = [build_prompt(r.question) for r, _ in chunk]
        texts = generate(model, processor, prompts, [im for _, im in chunk], max_new_tokens, batch)
        for (record, image), text in zip(chunk, texts, strict=True):
            resized = _resized_for(processor, image)
            rows.append(score_completion(text, record, resized))
    return rows


def _resized_for(processor: Any, image: Any) -> tuple[int, int]:
    """The size the processor feeds the model for ``image`` (its own min/max pixels)."""
    ip = processor.image_processor
    size = getattr(ip, "size", None) or {}
    lo = size.get("shortest_edge", 56 * 56)
    hi = size.get("longest_edge", 28 * 28 * 1280)
    return qwen_resized_size(image.width, image.height, min_pixels=lo, max_pixels=hi)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m grit_lite.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="data/tiny", help="a local model folder")
    parser.add_argument("-n", type=int, default=200, help="held-out items (default 200)")
    parser.add_argument("--out", help="write per-sample records here (jsonl)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args(argv)
    from grit_lite.tiny import load_tiny

    model, processor = load_tiny(args.model)
    rows = evaluate_model(model, processor, data.eval_split(args.n), args.max_new_tokens)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for key, value in summarize(rows).items():
        print(f"{key:<36} {'-' if value is None else round(value, 3)}")


if __name__ == "__main__":
    main()
