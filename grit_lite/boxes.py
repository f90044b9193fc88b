"""Boxes in model output: parse them, convert their coordinates, score them against labels.

A box is ``(x1, y1, x2, y2)``: the top-left and bottom-right corners, as floats. Sizes are
``(width, height)`` everywhere in this module's public API, like PIL's ``Image.size``.
(transformers' ``smart_resize`` takes ``(height, width)``; only :func:`qwen_resized_size`
talks to it, and it swaps the order for you.)

Two coordinate systems meet in this course:

* **Qwen2.5-VL** (GRIT's model) answers in absolute pixels of the image *as its processor
  resized it* (``smart_resize``), not of the image you passed in. Annotations such as GRIT's
  ``bboxs`` are in original-image pixels, so compare only after :func:`qwen_to_original`.
* **InternVL** answers in integers normalised to 0..1000 of the original image.

The parser reads model output, so it is *total* (any input in, a list out, never an
exception) and runs in linear time: an RL run feeds it whatever a policy writes.
torch, torchvision, scipy and transformers are imported inside the functions that need them,
so ``import grit_lite.boxes`` stays cheap for notebooks that only parse text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

Box = tuple[float, float, float, float]

# Qwen2.5-VL-3B-Instruct's released preprocessor_config.json uses this max_pixels. The
# transformers default of smart_resize is 1003520 (= 1280 * 28 * 28): pass whatever *your*
# processor uses, or the conversion is silently wrong.
QWEN_MIN_PIXELS = 3136
QWEN_MAX_PIXELS = 12845056

# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

_NUM = r"-?[0-9][0-9.]*"  # loose on purpose: float() rejects "1.2.3" later, in C
# One match = a comma and the three numbers after it, then the rest of a longer run, or the
# closing bracket, or the end of the run. Each match starts at a *comma* (after a digit or a
# space: one cheap lookbehind), not at a digit: `re` jumps from comma to comma in C, so text
# with few commas costs nothing, and every attempt ends within a few steps. The box's first
# number and its opening bracket sit before the comma; `parse_boxes` reads them from the
# text between two matches. No quantifier can trade characters with its neighbour, so
# nothing backtracks: linear time. (Python's `re` still pays ~0.1-0.3 us per attempt, so a
# megabyte with a comma every few characters takes tens of milliseconds.)
_RUN = re.compile(
    r",(?<=[0-9.\s],)"
    rf"\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})"
    r"(?:(?P<more>\s*,[-0-9.,\s]*)"  # a longer run, swallowed in one step
    r"|(?P<close>\s*[\]\)])"  # the closing bracket
    r"|(?![\w.]))"  # or nothing glued after the last number ("1, 2, 3, 4px" is no box)
)
_DIGITS = "0123456789."
_PAIRS = {"[": "]", "(": ")"}


def _floats(numbers: Sequence[str]) -> Box | None:
    try:
        box = tuple(float(n) for n in numbers)
    except ValueError:  # "1.2.3" or "1..": not numbers
        return None
    return box if all(math.isfinite(v) for v in box) else None  # type: ignore[return-value]


def parse_boxes(text: Any) -> list[Box]:
    """Every box in ``text``, in order of appearance, as ``(x1, y1, x2, y2)`` floats.

    Accepts ``(1, 2, 3, 4)``, ``[1, 2, 3, 4]``, bare ``1, 2, 3, 4``, JSON objects and lists
    with ``"bbox_2d"`` (a repeated key keeps all its boxes: we read the text, not
    ``json.loads``, which keeps only the last), and InternVL's ``<box>[[..], [..]]</box>``.
    Numbers may be negative or decimal. A box is exactly four comma-separated numbers: a
    point ``(3, 4)`` or a run of five is something else (a bare box that follows a longer
    run with only spaces between is swallowed with it). A number glued to a word (``x1``,
    ``4px``) spoils its run. A box whose bracket opens but never closes was cut off by the
    length limit and is dropped, as is a box with a non-finite value. Non-strings give ``[]``.
    """
    if not isinstance(text, str):
        return []
    boxes: list[Box] = []
    previous_end = 0
    for match in _RUN.finditer(text):
        head = text[previous_end : match.start()].rstrip()  # disjoint slices: linear in total
        previous_end = match.end()
        rest = head.rstrip(_DIGITS)  # x1 is the number just before the match's comma
        x1 = head[len(rest) :]
        if rest.endswith("-"):
            x1, rest = "-" + x1, rest[:-1]
        numbers = [x1, *match.group(1, 2, 3)]
        more = match.group("more")
        if x1 and (rest[-1:].isalnum() or rest[-1:] in ("_", ".", "-")):
            continue  # "x1, 2, 3, 4" or "--1, ...": a number glued to a word spoils the run
        if not x1:  # "label , 1, 2, 3, 4": the run starts after this comma
            if more is None or more.count(",") != 1:
                continue  # three numbers, or six and more
            numbers, more = numbers[1:] + [more.split(",")[1]], None
            rest = ""
        if more is not None:
            continue  # five or more numbers: not a box
        rest = rest.rstrip()
        open_ = rest[-1:] if rest[-1:] in _PAIRS else None
        close = match.group("close")
        if (open_ is None) != (close is None):
            continue  # unbalanced: truncated "(268, 92, 35, 4" or a stray closing bracket
        if open_ is not None and _PAIRS[open_] != close.strip():
            continue
        box = _floats(numbers)
        if box is not None:
            boxes.append(box)
    return boxes


# ---------------------------------------------------------------------------------------------
# Coordinate systems
# ---------------------------------------------------------------------------------------------


def qwen_resized_size(
    width: int,
    height: int,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """``(width, height)`` of the image Qwen2.5-VL actually sees, hence of its box pixels.

    Delegates to transformers' ``smart_resize`` (sides rounded to multiples of 28, area kept
    within ``[min_pixels, max_pixels]``) so we can never disagree with the real processor.
    The defaults are those of the released Qwen2.5-VL-3B; transformers' own default
    ``max_pixels`` is 1003520, and a processor built with other limits needs them passed here.
    """
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    h, w = smart_resize(height, width, factor=28, min_pixels=min_pixels, max_pixels=max_pixels)
    return w, h


def resized_for(processor: Any, image: Any) -> tuple[int, int]:
    """The size ``processor`` feeds its model for ``image`` (the processor's own min/max
    pixels, which a capped preset or the tiny model set below the 3B's defaults)."""
    return resized_size_for(processor, image.width, image.height)


def resized_size_for(processor: Any, width: int, height: int) -> tuple[int, int]:
    """:func:`resized_for` from an image's size alone (what a reward function is given)."""
    ip = processor.image_processor
    size = getattr(ip, "size", None) or {}
    lo = size.get("shortest_edge", QWEN_MIN_PIXELS)
    hi = size.get("longest_edge", 28 * 28 * 1280)  # transformers' default for Qwen2.5-VL
    return qwen_resized_size(width, height, min_pixels=lo, max_pixels=hi)


def _scale(box: Sequence[float], sx: float, sy: float) -> Box:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)


def qwen_to_original(
    box: Sequence[float], original_size: tuple[int, int], resized_size: tuple[int, int]
) -> Box:
    """Map a box from Qwen's resized-image pixels to original-image pixels.

    x scales by ``original_width / resized_width`` and y by the heights: the two ratios
    differ slightly because smart_resize rounds each side to a multiple of 28 on its own.
    """
    (ow, oh), (rw, rh) = original_size, resized_size
    return _scale(box, ow / rw, oh / rh)


def original_to_qwen(
    box: Sequence[float], original_size: tuple[int, int], resized_size: tuple[int, int]
) -> Box:
    """Inverse of :func:`qwen_to_original`: original-image pixels to Qwen's resized pixels."""
    (ow, oh), (rw, rh) = original_size, resized_size
    return _scale(box, rw / ow, rh / oh)


def internvl_to_pixels(box: Sequence[float], width: int, height: int) -> Box:
    """InternVL's 0..1000 normalised box to pixels of a ``width`` x ``height`` image."""
    return _scale(box, width / 1000, height / 1000)


def pixels_to_internvl(box: Sequence[float], width: int, height: int) -> tuple[int, ...]:
    """Pixels to InternVL's integer 0..1000 scale (rounded, like the model writes them).

    Not clamped: a box that leaves the image leaves 0..1000 too. Use :func:`clip_box` first
    if you need it inside. Rounding costs up to half a unit, i.e. ``width / 2000`` pixels.
    """
    return tuple(round(v) for v in _scale(box, 1000 / width, 1000 / height))


def normalize_box(box: Sequence[float]) -> Box:
    """Order the corners so that ``x1 <= x2`` and ``y1 <= y2`` (models sometimes swap them)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def clip_box(box: Sequence[float], width: int, height: int) -> Box:
    """Normalise ``box`` and clip it to the image ``[0, width] x [0, height]``."""
    x1, y1, x2, y2 = normalize_box(box)
    return (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )


def is_degenerate(box: Sequence[float]) -> bool:
    """True for a box that encloses nothing: zero or negative area, or a non-finite value.

    Such a box has no meaningful IoU, so scoring treats it as overlapping nothing.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return True
    return not (x2 > x1 and y2 > y1)


# ---------------------------------------------------------------------------------------------
# IoU, matching, grounding scores
# ---------------------------------------------------------------------------------------------


def iou_matrix(preds: Sequence[Sequence[float]], gts: Sequence[Sequence[float]]) -> Any:
    """IoU of every prediction with every ground-truth box: a float64 tensor (len(preds), len(gts)).

    Corners are normalised first, so a swapped box still counts; a degenerate box
    (:func:`is_degenerate` after normalising) gets IoU 0 with everything, never ``nan``.
    """
    import torch
    from torchvision.ops import box_iou as tv_box_iou

    def tensor(boxes: Sequence[Sequence[float]]) -> tuple[Any, Any]:
        normal = [normalize_box(b) for b in boxes]
        valid = [not is_degenerate(b) for b in normal]
        # A harmless stand-in keeps nan/inf out of torchvision; its IoU is zeroed below.
        safe = [b if ok else (0.0, 0.0, 1.0, 1.0) for b, ok in zip(normal, valid, strict=True)]
        as_tensor = torch.tensor(safe, dtype=torch.float64).reshape(-1, 4)
        return as_tensor, torch.tensor(valid, dtype=torch.bool)

    p, p_ok = tensor(preds)
    g, g_ok = tensor(gts)
    if len(p) == 0 or len(g) == 0:
        return torch.zeros((len(p), len(g)), dtype=torch.float64)
    iou = tv_box_iou(p, g)
    return torch.where(p_ok[:, None] & g_ok[None, :], iou, torch.zeros_like(iou))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes, in [0, 1]; 0 when either is degenerate."""
    return float(iou_matrix([a], [b])[0, 0])


def match_boxes(
    preds: Sequence[Sequence[float]], gts: Sequence[Sequence[float]]
) -> list[tuple[int, int, float]]:
    """One-to-one matching that maximises the total IoU: ``(pred_index, gt_index, iou)``.

    Hungarian matching (``scipy.optimize.linear_sum_assignment``), not greedy: taking the
    best pair first can leave the other boxes with worse partners. ``min(len(preds),
    len(gts))`` pairs are returned, sorted by ground-truth index, even those with IoU 0.
    """
    if len(preds) == 0 or len(gts) == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    iou = iou_matrix(preds, gts).numpy()
    rows, cols = linear_sum_assignment(iou, maximize=True)
    pairs = sorted(zip(rows.tolist(), cols.tolist(), strict=True), key=lambda rc: rc[1])
    return [(r, c, float(iou[r, c])) for r, c in pairs]


def grounding_scores(
    preds: Sequence[Sequence[float]], gts: Sequence[Sequence[float]], threshold: float = 0.5
) -> dict[str, float]:
    """Grounding metrics of predicted boxes against ground truth, after :func:`match_boxes`.

    - ``mean_iou`` = sum of matched IoUs / max(len(preds), len(gts)): a missing box and an
      extra box both count as IoU 0, so neither under- nor over-boxing pays off.
    - ``precision`` = matched pairs with IoU >= ``threshold`` / len(preds).
    - ``recall`` = the same count / len(gts).

    Empty inputs: no predictions and no ground truth scores 1.0 on all three (nothing to
    find, nothing wrong). Predictions without ground truth: mean_iou 0.0, precision 0.0,
    recall 1.0. Ground truth without predictions: mean_iou 0.0, precision 0.0, recall 0.0
    (zero predictions are only "precise" when there was nothing to predict).
    """
    if len(preds) == 0 and len(gts) == 0:
        return {"mean_iou": 1.0, "precision": 1.0, "recall": 1.0}
    pairs = match_boxes(preds, gts)
    hits = sum(1 for _, _, iou in pairs if iou >= threshold)
    return {
        "mean_iou": sum(iou for _, _, iou in pairs) / max(len(preds), len(gts)),
        "precision": hits / len(preds) if preds else 0.0,
        "recall": hits / len(gts) if gts else 1.0,
    }


def _union_cells(boxes: Sequence[Sequence[float]], xs: Any, ys: Any) -> Any:
    """Which cells of the grid cut by ``xs`` x ``ys`` some box covers (a boolean array)."""
    import numpy as np

    covered = np.zeros((len(ys) - 1, len(xs) - 1), dtype=bool)
    for x1, y1, x2, y2 in boxes:
        i0, i1 = np.searchsorted(ys, [y1, y2])
        j0, j1 = np.searchsorted(xs, [x1, x2])
        covered[i0:i1, j0:j1] = True
    return covered


def union_iou(preds: Sequence[Sequence[float]], gts: Sequence[Sequence[float]]) -> float:
    """The GRIT paper's grounding IoU ("GIoU" in its Table 1): the area where the union of a
    completion's boxes and the union of the annotated boxes overlap, over the area of the
    two unions together. Unlike :func:`grounding_scores` it does not pair boxes: six boxes
    over six zebras score as one region over another, however the boxes are cut.

    Exact, on the grid every box edge cuts the plane into (no rasterising). Degenerate
    boxes cover nothing; no region on either side scores 0.0 (1.0 when both are empty).
    """
    import numpy as np

    def kept(boxes: Sequence[Sequence[float]]) -> list[Box]:
        normal = [normalize_box(b) for b in boxes]
        return [b for b in normal if not is_degenerate(b)]

    p, g = kept(preds), kept(gts)
    if not p and not g:
        return 1.0
    if not p or not g:
        return 0.0
    xs = np.unique([v for b in p + g for v in (b[0], b[2])])
    ys = np.unique([v for b in p + g for v in (b[1], b[3])])
    area = np.outer(np.diff(ys), np.diff(xs))
    a, b = _union_cells(p, xs, ys), _union_cells(g, xs, ys)
    union = float(area[a | b].sum())
    return float(area[a & b].sum()) / union if union > 0 else 0.0
