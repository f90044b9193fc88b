"""Checkers for notebook 05's exercises (image tokens and the synthetic questions)."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

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


@functools.cache
def _shipped() -> tuple[Any, Any]:
    return tiny.load_tiny(tiny.SHIPPED)


def rope_experiment(max_pixels: int) -> tuple[int, int]:
    """Reference for notebook 05's experiment: the shipped tiny model's processor with
    ``max_pixels`` changed, on the first training triplet's image and question. Returns
    (image tokens in the prompt, largest position id)."""
    model, processor = _shipped()
    processor = copy.deepcopy(processor)
    size = dict(processor.image_processor.size)
    processor.image_processor.size = {**size, "longest_edge": max_pixels}
    record, image = data.train_split()[0]
    positions, tokens = tiny.rope_positions(model, processor, image, record.question)
    return tokens.count("<|image_pad|>"), int(positions.max())


def check_rope_experiment(fn: Callable[[int], tuple[int, int]]) -> None:
    """The student's (image tokens, largest position id) for three processor sizes."""
    check_cases(
        "rope_experiment",
        fn,
        [(112 * 112,), (224 * 224,), (56 * 56,)],
        rope_experiment,
        hint=(
            "Change only the processor's largest image area, then measure the same prompt "
            "as in section 3: count the image tokens and take the largest position id.",
            "Copy the processor (copy.deepcopy) and set its image_processor.size to the "
            "same dict with 'longest_edge' replaced; tiny.rope_positions(model, processor, "
            "image, question) returns (positions, tokens); count '<|image_pad|>' in tokens.",
        ),
    )
