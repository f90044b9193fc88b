"""How the tiny model sees the canvas: patch sizes, its 112 px frame, and the maps between.

The 224 px canvas reaches the model at 112 x 112 (``MAX_PIXELS``): 8 x 8 patches of 14 px,
merged 2 x 2 into 16 ``<|image_pad|>`` tokens, one per cell of the scene's 4 x 4 grid. A box
the model writes is in this 112 px frame, so every task, check and evaluation converts
through the functions here.
"""

from __future__ import annotations

from collections.abc import Sequence

from grit_lite import world
from grit_lite.boxes import original_to_qwen, parse_boxes

PATCH, MERGE, TEMPORAL = 14, 2, 2
SIDE = 112  # the tiny model sees a 224 px canvas at 112 px: 16 image tokens, one per grid cell
MAX_PIXELS = SIDE * SIDE
MIN_PIXELS = 56 * 56


def merged_token_index(x: float, y: float, width: int = world.CANVAS) -> int:
    """Which ``<|image_pad|>`` token (0-based, in prompt order) sees pixel ``(x, y)``.

    Why it matters: a box the model writes is a statement about *these* tokens. The image
    (already at the model's size, sides multiples of 28) is cut into 14 px patches, and each
    2 x 2 block of patches is merged into one token of 28 x 28 px; the processor orders the
    merged tokens row by row, so a 224 px wide image has 8 tokens per row and the tiny
    model's 112 px image 4.
    """
    side = PATCH * MERGE
    return int(y // side) * (width // side) + int(x // side)


def to_model_frame(box: Sequence[float]) -> list[int]:
    """A canvas box in the pixels the tiny model sees (Qwen's convention: the resized image),
    rounded to whole pixels as a model writes them."""
    canvas = (world.CANVAS, world.CANVAS)
    return [round(v) for v in original_to_qwen(box, canvas, (SIDE, SIDE))]


def first_box_cell(text: str) -> tuple[int, int] | None:
    """(column, row) of the grid cell holding the centre of the first box in ``text``, a
    model answer in the tiny model's 112 px frame; None without a box."""
    boxes = parse_boxes(text)
    if not boxes:
        return None
    x1, y1, x2, y2 = (v * world.CANVAS / SIDE for v in boxes[0])
    return world.cell_at((x1 + x2) / 2, (y1 + y2) / 2)
