"""Checkers for notebook 07's exercises (count consistency and precision/recall at 0.5)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from grit_lite.boxes import grounding_scores
from grit_lite.checks import check_cases
from grit_lite.evaluate import box_answer_consistency

_COMPLETIONS = [
    "<think>(1,1,5,5) (8,8,9,9)</think><rethink>two</rethink><answer>2</answer>",
    "<think>(1,1,5,5)</think><rethink>two</rethink><answer>2</answer>",
    "<think>no boxes</think><rethink>none</rethink><answer>0</answer>",
    "<think>[1, 1, 5, 5]</think><answer>one</answer>",
    "<think>(1,1,5,5)</think><rethink>x</rethink><answer>many</answer>",
    "<answer> 3 </answer> (1,2,3,4) (5,6,7,8) (9,9,9,9)",
    "no answer at all (1,1,5,5)",
]


def check_count_consistency(fn: Callable[[str], float | None]) -> None:
    """``fn(completion)`` for a counting question: 1.0, 0.0, or None (no answer)."""
    check_cases(
        "count_consistency",
        fn,
        [(c,) for c in _COMPLETIONS],
        lambda c: box_answer_consistency(c, "How many red circles are there?", "tallyqa"),
        hint=(
            "Consistency compares two numbers the completion itself states: how many boxes "
            "it names in <think>, and the count it answers.",
            "parse_completion gives .answer (None or empty: return None) and .boxes; "
            "judge.normalize_answer turns the answer into words, number words into digits; "
            "a single all-digit word is the count. 1.0 when it equals the number of boxes.",
        ),
    )


def _pr(preds: Sequence[Sequence[float]], gts: Sequence[Sequence[float]]) -> tuple[float, float]:
    scores = grounding_scores(preds, gts)
    return scores["precision"], scores["recall"]


def check_precision_recall(
    fn: Callable[[Sequence[Sequence[float]], Sequence[Sequence[float]]], tuple[float, float]],
) -> None:
    """``fn(preds, gts)`` -> (precision, recall) at IoU 0.5 after Hungarian matching."""
    a, b, c = [0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 10]
    near, far = [1, 1, 11, 11], [5, 5, 15, 15]  # IoU with a: 0.68 and 0.14
    cases = [
        ([a, b], [a, b]), ([a], [a, b]), ([a, b, c], [a]), ([], [a]), ([a], []), ([], []),
        ([near, far], [a, far]), ([far], [a]), ([b, a], [a, b]),
    ]  # fmt: skip
    check_cases(
        "precision_recall",
        fn,
        cases,
        _pr,
        hint=(
            "Count the one-to-one matches that are good enough (IoU at least 0.5); "
            "precision divides by what was predicted, recall by what was there to find.",
            "boxes.match_boxes returns (pred, gt, iou) triples. Mind empty lists: with "
            "nothing to find, recall is 1 and precision is 1 only if nothing was predicted; "
            "with nothing predicted but something to find, both are 0.",
        ),
    )


BUDGET_ITEMS = 6  # the first counting items of the held-out split


@functools.cache
def _trained() -> tuple[Any, Any]:
    from grit_lite import data, evaluate

    return evaluate.load_model(str(data.DATA_DIR / "tiny_grpo"))


def budget_experiment(max_new_tokens: int) -> tuple[float, float]:
    """Reference for notebook 07's experiment: the trained tiny model (``data/tiny_grpo``)
    on the first :data:`BUDGET_ITEMS` counting items of the held-out split, greedy, with
    ``max_new_tokens``. Returns (fraction with an answer after </rethink>, accuracy)."""
    from grit_lite import data, evaluate

    items = [(r, im) for r, im in data.eval_split(200) if r.dataset == "tallyqa"]
    model, processor = _trained()
    rows = evaluate.evaluate_model(
        model, processor, items[:BUDGET_ITEMS], max_new_tokens=max_new_tokens, progress=False
    )
    answered = sum(bool(row["format"]["has_answer"]) for row in rows) / len(rows)
    accuracy = sum(row["correct"] for row in rows) / len(rows)
    return round(answered, 3), round(accuracy, 3)


def check_budget_experiment(fn: Callable[[int], tuple[float, float]]) -> None:
    """The student's (answered fraction, accuracy) for two completion budgets."""
    check_cases(
        "budget_experiment",
        fn,
        [(40,), (128,)],
        budget_experiment,
        hint=(
            "Evaluate the trained checkpoint exactly as section 4 does, on fewer items and "
            "with the completion budget you are given, then average two columns of rows.",
            "evaluate.load_model(str(data.DATA_DIR / 'tiny_grpo')); the items are the first "
            "6 held-out records whose dataset is 'tallyqa'; evaluate.evaluate_model(..., "
            "max_new_tokens=..., progress=False); average row['format']['has_answer'] and "
            "row['correct']; round both to 3 decimals.",
        ),
    )
