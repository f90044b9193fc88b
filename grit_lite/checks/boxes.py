"""Checkers for notebook 02's exercises (box coordinates and IoU)."""

from __future__ import annotations

from collections.abc import Callable

from grit_lite import boxes
from grit_lite.checks import check_cases

_IOU_CASES = [
    ((0, 0, 10, 10), (0, 0, 10, 10)),  # identical: 1
    ((0, 0, 2, 1), (1, 0, 3, 1)),  # half of each overlaps: 1/3
    ((0, 0, 10, 10), (20, 20, 30, 30)),  # disjoint: 0
    ((0, 0, 10, 10), (10, 0, 20, 10)),  # touching edges share no area: 0
    ((0, 0, 10, 10), (2, 2, 4, 4)),  # contained: 4 / 100
    ((268, 92, 352, 162), (86, 150, 560, 352)),  # the cat and the truck
    ((5.5, 1.25, 9.0, 7.75), (3.0, 2.0, 8.0, 6.0)),  # decimals
    ((3, 3, 3, 8), (0, 0, 10, 10)),  # zero-area box: 0, not a division by zero
    ((4, 4, 4, 4), (4, 4, 4, 4)),  # two empty boxes: 0, not nan
]


def check_iou(fn: Callable[..., float]) -> None:
    """IoU of two (x1, y1, x2, y2) boxes with ordered corners, including empty ones."""
    check_cases(
        "iou",
        fn,
        _IOU_CASES,
        boxes.box_iou,
        hint=(
            "The intersection of two boxes is itself a box (possibly empty); IoU is its area "
            "over the area the two boxes cover together.",
            "The overlap's left edge is the larger of the two left edges, its right edge the "
            "smaller right edge (same for y); a negative width or height means no overlap "
            "(area 0). The union is the two areas minus the overlap; an empty union gives 0.0.",
        ),
    )


def check_qwen_to_original(fn: Callable[..., tuple[float, ...]]) -> None:
    """Resized-image pixels (what Qwen2.5-VL writes) to original-image pixels."""
    cases = []
    for size in [(1288, 840), (1280, 960), (640, 354), (644, 420), (3000, 200)]:
        resized = boxes.qwen_resized_size(*size, max_pixels=401408)
        cases.append(((100, 50, 300, 250), size, resized))
        cases.append(((0, 0, resized[0], resized[1]), size, resized))
    check_cases(
        "qwen_to_original",
        fn,
        cases,
        boxes.qwen_to_original,
        hint=(
            "The box is in the resized image's pixels; scale each coordinate by how much "
            "bigger the original is along its own axis.",
            "Sizes are (width, height). x coordinates scale by the ratio of the widths "
            "(original over resized), y coordinates by the ratio of the heights; the two "
            "ratios differ a little.",
        ),
    )
