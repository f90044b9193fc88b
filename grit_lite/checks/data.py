"""Checkers for notebook 05's exercises (image tokens and the synthetic questions)."""

from __future__ import annotations

from collections.abc import Callable

from grit_lite import data, tiny
from grit_lite.checks import check_cases


def check_merged_token_index(fn: Callable[[float, float, int], int]) -> None:
    """Pixel (x, y) of an image ``width`` px wide -> index of its merged image token."""
    cases = [(0, 0, 224), (27.9, 0, 224), (28, 0, 224), (223, 0, 224), (0, 28, 224)]
    cases += [(100, 150, 224), (223, 223, 224), (13.5, 200.2, 224), (300, 40, 448), (0, 55, 56)]
    check_cases(
        "merged_token_index",
        fn,
        cases,
        tiny.merged_token_index,
        hint=(
            "The merged tokens tile the image in a grid, read row by row like text; find "
            "the pixel's row and column in that grid.",
            "A merged token covers 2 x 2 patches of 14 px, i.e. 28 x 28 px; a row of the "
            "grid holds width / 28 tokens, and all rows above the pixel's row come first.",
        ),
    )


def check_answer_from_boxes(fn: Callable[[str, list[list[float]]], str]) -> None:
    """A VSR-style question and its two boxes -> "yes" or "no", on 60 held-out records."""
    records = [r for r, _ in data.eval_split(120) if r.dataset == "vsr"]
    truth = {(r.question, tuple(map(tuple, r.bboxs))): r.answer for r in records}
    check_cases(
        "answer_from_boxes",
        fn,
        [(r.question, r.bboxs) for r in records],
        lambda q, b: truth[(q, tuple(map(tuple, b)))],
        hint=(
            "Reduce each box to one point, then the question is a comparison of two "
            "coordinates; which coordinate depends on the relation the question names.",
            "Use the centres of the boxes (first box = first object named). The relations "
            "are 'left of', 'right of', 'above', 'below'; image y grows downwards, so "
            "'above' means a smaller y.",
        ),
    )
