"""The synthetic stand-in world: coloured shapes on a canvas, with exact boxes and questions.

GRIT's real images (COCO, Visual Genome) cannot be fetched offline, so the course draws its
own: coloured shapes on a 224 x 224 canvas, and questions in GRIT's two families, counting
(TallyQA-like) and spatial yes/no (VSR-like). 224 is a multiple of 28, so Qwen2.5-VL's
``smart_resize`` keeps the image as it is and a box is valid in both coordinate systems.
Everything is seeded. :mod:`grit_lite.data` turns these scenes into GRIT records and splits.

Box convention: a pixel ``(col, row)`` covers ``[col, col + 1) x [row, row + 1)``, so the
tight box of pixels in columns ``c0..c1`` is ``x1 = c0, x2 = c1 + 1`` (as in ``PIL.crop``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 50, 47),
    "green": (56, 168, 72),
    "blue": (45, 105, 215),
    "yellow": (240, 200, 30),
    "purple": (140, 75, 190),
    "orange": (245, 128, 30),
}
SHAPES = ("circle", "square", "triangle")
RELATIONS = ("left of", "right of", "above", "below")
CANVAS = 224  # a multiple of 28: smart_resize leaves it unchanged
CELL = 56  # objects sit one per cell of a 4 x 4 grid, jittered: never overlapping
INSET = 4  # px between an object and its cell's border, so objects are >= 8 px apart
SIZES = (28, 44)  # smallest and largest side of an object, px
OUTLINE = 2  # px of darker border
SHADOW = 3  # px offset of the soft shadow


def outline_colour(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """The darker border of a shape: 60 % of its fill, so the two never coincide."""
    return tuple(int(c * 0.6) for c in colour)  # type: ignore[return-value]


@dataclass(frozen=True)
class Obj:
    """One drawn shape; ``box`` is its tight pixel box ``(x1, y1, x2, y2)``, x2/y2 exclusive."""

    colour: str
    shape: str
    box: tuple[int, int, int, int]

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def centre(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2

    @property
    def cell(self) -> tuple[int, int]:
        """(column, row) of the grid cell the shape was drawn in (it never crosses a border)."""
        return cell_at(self.box[0], self.box[1])


def cell_at(x: float, y: float) -> tuple[int, int]:
    """(column, row), from 0, of the grid cell holding the canvas point (x, y)."""
    return int(x // CELL), int(y // CELL)


@dataclass(frozen=True)
class Scene:
    """A canvas of shapes; ``background`` is the (top, bottom) colour of its gradient."""

    width: int
    height: int
    objects: tuple[Obj, ...]
    background: tuple[tuple[int, int, int], tuple[int, int, int]]


@dataclass(frozen=True)
class Question:
    """A question about a scene, its answer and the boxes of the objects it is about."""

    question: str
    answer: str
    bboxs: list[list[float]]
    dataset: str  # "tallyqa" (counting) or "vsr" (spatial), as in GRIT's files


def shape_mask(shape: str, size: int) -> np.ndarray:
    """Boolean ``size x size`` mask of a shape, drawn with numpy so pixels never depend on the
    Pillow version; every side of the square is touched, so the tight box is the square."""
    centres = np.arange(size) + 0.5
    x, y = np.meshgrid(centres, centres)
    if shape == "circle":
        r = size / 2
        return (x - r) ** 2 + (y - r) ** 2 <= r * r
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    if shape == "triangle":  # apex up, base on the bottom row
        return np.abs(x - size / 2) <= y / 2 + 0.5
    raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


def _place(rng: random.Random, index: int, size: int, width: int) -> tuple[int, int, int, int]:
    cols = width // CELL
    cx, cy = (index % cols) * CELL, (index // cols) * CELL
    x = cx + rng.randint(INSET, CELL - INSET - size)
    y = cy + rng.randint(INSET, CELL - INSET - size)
    return (x, y, x + size, y + size)


def make_scene(
    rng: random.Random,
    labels: Sequence[tuple[str, str]],
    width: int = CANVAS,
    height: int = CANVAS,
) -> Scene:
    """A scene with one object per ``(colour, shape)`` in ``labels``, at random places.

    Each object gets its own cell of a grid of 56 px cells and a random size and offset
    inside it, so shapes never overlap and keep at least 8 px apart (room for the shadow).
    """
    cells = (width // CELL) * (height // CELL)
    if len(labels) > cells:
        raise ValueError(f"at most {cells} objects fit a {width}x{height} canvas")
    chosen = rng.sample(range(cells), len(labels))
    objects = []
    for (colour, shape), index in zip(labels, chosen, strict=True):
        box = _place(rng, index, rng.randint(*SIZES), width)
        objects.append(Obj(colour, shape, box))
    return Scene(width, height, tuple(objects), _background(rng))


def _background(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A pale vertical gradient, slightly tinted per scene so scenes do not all look alike."""
    tint = [rng.randint(-8, 8) for _ in range(3)]
    top = tuple(min(255, 244 + t) for t in tint)
    bottom = tuple(min(255, 214 + t) for t in tint)
    return top, bottom  # type: ignore[return-value]


def render(scene: Scene) -> Image.Image:
    """Draw a scene: gradient background, a soft shadow, then each shape with a dark outline."""
    w, h = scene.width, scene.height
    top, bottom = (np.array(c, dtype=np.float64) for c in scene.background)
    ramp = np.linspace(0.0, 1.0, h)[:, None]
    canvas = np.repeat((top + (bottom - top) * ramp).round()[:, None, :], w, axis=1)
    canvas = canvas.astype(np.uint8)
    for obj in scene.objects:
        x1, y1, x2, y2 = obj.box
        mask = shape_mask(obj.shape, x2 - x1)
        shadow = canvas[y1 + SHADOW : y2 + SHADOW, x1 + SHADOW : x2 + SHADOW]
        m = mask[: shadow.shape[0], : shadow.shape[1]]
        shadow[m] = (shadow[m] * 0.8).astype(np.uint8)
    for obj in scene.objects:
        x1, y1, x2, y2 = obj.box
        mask = shape_mask(obj.shape, x2 - x1)
        inner = _erode(mask, OUTLINE)
        patch = canvas[y1:y2, x1:x2]
        patch[mask] = outline_colour(COLOURS[obj.colour])
        patch[inner] = COLOURS[obj.colour]
    return Image.fromarray(canvas)


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    """Pixels of ``mask`` whose whole (2r+1)-square neighbourhood is inside the mask."""
    padded = np.pad(mask, r, constant_values=False)
    out = np.ones_like(mask)
    n, m = mask.shape
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out &= padded[dy : dy + n, dx : dx + m]
    return out


def _plural(shape: str) -> str:
    return shape + "s"


def counting_question(
    scene: Scene, rng: random.Random, label: tuple[str, str] | None = None
) -> Question:
    """ "How many <colour> <shape>s are there?" (TallyQA-like), answered with a digit string.

    ``label`` is the (colour, shape) to count; by default a random one, present or not. The
    boxes are those of the counted objects, in scene order (none for the answer "0").
    """
    if label is None:
        label = (rng.choice(sorted(COLOURS)), rng.choice(SHAPES))
    colour, shape = label
    hits = [o for o in scene.objects if (o.colour, o.shape) == (colour, shape)]
    return Question(
        question=f"How many {colour} {_plural(shape)} are there?",
        answer=str(len(hits)),
        bboxs=[[float(v) for v in o.box] for o in hits],
        dataset="tallyqa",
    )


def relation_holds(a: Obj, b: Obj, relation: str, separation: float) -> bool:
    """True when ``a`` is ``relation`` ``b`` with centres at least ``separation`` px apart."""
    (ax, ay), (bx, by) = a.centre, b.centre
    gap = {"left of": bx - ax, "right of": ax - bx, "above": by - ay, "below": ay - by}
    return gap[relation] >= separation


OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def unique_objects(scene: Scene) -> list[Obj]:
    """The objects no other object shares a label with: a name picks out exactly one."""
    labels = [o.label for o in scene.objects]
    return [o for o in scene.objects if labels.count(o.label) == 1]


def spatial_question(
    scene: Scene,
    rng: random.Random,
    answer: str | None = None,
    relations: Sequence[str] = RELATIONS,
) -> Question | None:
    """ "Is the <A> <relation> the <B>?" (VSR-like), answered "yes" or "no"; None if no pair fits.

    Only unambiguous questions are asked: A and B are each the only object of their colour
    and shape, and their centres are at least a quarter of the canvas apart along the
    relation's axis, either way round ("yes" or a clear "no"). ``answer`` and ``relations``
    restrict the choice.
    The boxes are A's then B's.
    """
    separation = min(scene.width, scene.height) / 4
    unique = unique_objects(scene)
    options = []
    for a in unique:
        for b in unique:
            if a is b:
                continue
            for rel in relations:
                if relation_holds(a, b, rel, separation):
                    options.append((a, b, rel, "yes"))
                elif relation_holds(a, b, OPPOSITE[rel], separation):
                    options.append((a, b, rel, "no"))
    options = [o for o in options if answer in (None, o[3])]
    if not options:
        return None
    a, b, rel, truth = rng.choice(options)
    return Question(
        question=f"Is the {a.label} {rel} the {b.label}?",
        answer=truth,
        bboxs=[[float(v) for v in a.box], [float(v) for v in b.box]],
        dataset="vsr",
    )


def _all_labels() -> list[tuple[str, str]]:
    return [(c, s) for c in COLOURS for s in SHAPES]


def _counting_item(rng: random.Random, count: int) -> tuple[Scene, Question]:
    """A scene with ``count`` copies of a target and 1-3 distractors, some of them near misses
    (same colour or same shape), so the count needs both attributes."""
    target = rng.choice(_all_labels())
    others = [lab for lab in _all_labels() if lab != target]
    near = [lab for lab in others if lab[0] == target[0] or lab[1] == target[1]]
    distractors = [
        rng.choice(near if rng.random() < 0.6 else others) for _ in range(rng.randint(1, 3))
    ]
    labels = [target] * count + distractors
    rng.shuffle(labels)
    scene = make_scene(rng, labels)
    return scene, counting_question(scene, rng, target)


def _spatial_item(rng: random.Random, answer: str, relation: str) -> tuple[Scene, Question]:
    """A scene of 2-4 objects with distinct labels, redrawn until a clear question exists."""
    while True:
        labels = rng.sample(_all_labels(), rng.randint(2, 4))
        scene = make_scene(rng, labels)
        question = spatial_question(scene, rng, answer, (relation,))
        if question is not None:
            return scene, question


def synthetic_items(n: int, seed: int) -> list[tuple[Scene, Question]]:
    """``n`` scenes with questions: counting first (ceil(n/2)), then spatial (floor(n/2)).

    Counts cycle through shuffled 0..6, spatial answers alternate yes/no and relations take
    turns, so a split of 20 covers every count and every relation and is exactly half "yes".
    """
    rng = random.Random(seed)
    n_count = (n + 1) // 2
    counts: list[int] = []
    while len(counts) < n_count:
        counts += rng.sample(range(7), 7)
    items = [_counting_item(rng, k) for k in counts[:n_count]]
    for i in range(n - n_count):  # each relation in turn, once "yes" and once "no"
        items.append(_spatial_item(rng, ("yes", "no")[i % 2], RELATIONS[i // 2 % 4]))
    return items
