"""GRIT's training data: the official record format, the real files, and a synthetic stand-in.

GRIT trains on 20 image-question-answer triplets: 10 counting questions (TallyQA) and 10
spatial yes/no questions (VSR). Each is one JSON line in the official schema::

    {"question": "...", "answer": "...", "image": "file.jpg", "width": 640, "height": 354,
     "bboxs": [[x1, y1, x2, y2], ...], "dataset": "vsr" | "tallyqa", "split": "train"}

``bboxs`` are in original-image pixels and only serve evaluation (grounding IoU): GRIT never
uses them, nor any reasoning chain, as a training label.

The real images (COCO, Visual Genome) cannot be fetched offline, so this module also draws a
*synthetic stand-in world*: coloured shapes on a 224 x 224 canvas with exact boxes and
questions in the same two families. 224 is a multiple of 28, so Qwen2.5-VL's ``smart_resize``
keeps the image as it is and a box is valid in both coordinate systems. Everything is seeded:
``python -m grit_lite.data make-train`` rewrites the committed ``data/train_20.jsonl`` and
``data/images/`` byte for byte.

Box convention: a pixel ``(col, row)`` covers ``[col, col + 1) x [row, row + 1)``, so the
tight box of pixels in columns ``c0..c1`` is ``x1 = c0, x2 = c1 + 1`` (as in ``PIL.crop``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import math
import os
import random
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from PIL import Image

from grit_lite.boxes import qwen_resized_size
from grit_lite.format import build_messages

REPO_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_DIR / "data"
TRAIN_JSONL = "train_20.jsonl"
TRAIN_SEED = 20
EVAL_SEED = 2025
BOX_TOLERANCE = 1.0  # px: float rounding in real annotations may poke just past the border

FIELDS = ("question", "answer", "image", "width", "height", "bboxs", "dataset", "split")

# The official training files and the image folder each one's "image" names refer to.
GRIT_TRAIN_FILES = {"tallyqa_train_10.jsonl": "tallyqa", "vsr_cot_train_10.jsonl": "vsr"}
GRIT_DATA_REPO = "yfan1997/GRIT_data"


class DataError(ValueError):
    """A data file or download problem, with the place it happened and what to do about it."""


# ---------------------------------------------------------------------------------------------
# The record and its validation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One triplet in the official schema. ``image_path`` is where the image was found."""

    question: str
    answer: str
    image: str
    width: int
    height: int
    bboxs: list[list[float]]
    dataset: str
    split: str
    image_path: Path | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the official schema (``image_path`` is local, so left out)."""
        return {name: getattr(self, name) for name in FIELDS}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_fields(obj: Any) -> str | None:
    """The first schema problem of a parsed JSON line, in words, or None."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    missing = [name for name in FIELDS if name not in obj]
    if missing:
        return f"missing field(s) {', '.join(repr(m) for m in missing)}; need all of {FIELDS}"
    for name in ("question", "image", "dataset", "split"):
        if not isinstance(obj[name], str) or not obj[name]:
            return f"field {name!r} must be a non-empty string, got {obj[name]!r}"
    # Counting answers are sometimes written as JSON numbers; the rewards compare text.
    if isinstance(obj["answer"], bool) or not isinstance(obj["answer"], str | int):
        return f"field 'answer' must be a string (or an integer), got {obj['answer']!r}"
    for name in ("width", "height"):
        if isinstance(obj[name], bool) or not isinstance(obj[name], int) or obj[name] <= 0:
            return f"field {name!r} must be a positive integer, got {obj[name]!r}"
    if not isinstance(obj["bboxs"], list):
        return f"field 'bboxs' must be a list of boxes, got {obj['bboxs']!r}"
    w, h, tol = obj["width"], obj["height"], BOX_TOLERANCE
    for i, box in enumerate(obj["bboxs"]):
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            return f"box {i} of 'bboxs' is {box!r}: a box must be 4 numbers [x1, y1, x2, y2]"
        x1, y1, x2, y2 = box
        if x1 > x2 or y1 > y2:
            return f"box {i} of 'bboxs' is {box!r}: need x1 <= x2 and y1 <= y2"
        if x1 < -tol or y1 < -tol or x2 > w + tol or y2 > h + tol:
            return f"box {i} of 'bboxs' is {box!r}: outside the {w}x{h} image"
    return None


def _check_image(path: Path, width: int, height: int) -> str | None:
    """The problem with the image file a record names, or None when it opens at its size."""
    if not path.is_file():
        return f"image file {path} does not exist"
    try:
        with Image.open(path) as image:
            size = image.size
            image.load()  # every pixel: verify() passes a PNG whose pixel data is cut short
    except Exception as error:  # PIL raises many types for a bad file
        return f"image file {path} cannot be read ({error})"
    if size != (width, height):
        return f"image file {path} is {size[0]}x{size[1]}, the record says {width}x{height}"
    return None


def open_image(path: str | Path) -> Image.Image:
    """The RGB image at ``path``, or one :class:`DataError` saying which file is bad."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as error:  # missing, truncated, or not an image
        raise DataError(f"image file {path} cannot be read ({error}): replace it") from None


def load_jsonl(
    path: str | Path,
    image_dir: str | Path | None = None,
    check_images: bool = True,
    defaults: dict[str, Any] | None = None,
) -> list[Record]:
    """Read and validate a JSON-lines file of records; blank lines are skipped.

    The first bad line stops the load with one :class:`DataError` naming the file, the line and
    the fix, because a silently skipped record changes what a 20-example run learns.
    ``image_dir`` defaults to the ``images`` folder next to the file if there is one, else
    the file's own folder. With ``check_images`` each image must open at the record's size.
    ``defaults`` fills fields a record lacks (evaluation files without boxes, for instance).
    """
    path = Path(path)
    if image_dir is None:
        image_dir = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    image_dir = Path(image_dir)
    if not path.is_file():
        raise DataError(f"{path}: no such file. Check the path, or regenerate the data.")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            problem: str | None = f"invalid JSON ({error.msg} at column {error.colno})"
        else:
            if isinstance(obj, dict):
                obj = {**(defaults or {}), **obj}
            problem = _check_fields(obj)
            if problem is None and check_images:
                problem = _check_image(image_dir / obj["image"], obj["width"], obj["height"])
        if problem is not None:
            raise DataError(
                f"{path}, line {number}: {problem}. Fix or remove this line (one JSON object "
                f"per line with fields {', '.join(FIELDS)}; images in {image_dir})."
            )
        values = {name: obj[name] for name in FIELDS}
        values["answer"] = str(obj["answer"])
        values["bboxs"] = [[float(v) for v in box] for box in obj["bboxs"]]
        records.append(Record(**values, image_path=image_dir / obj["image"]))
    return records


def load_train(check_images: bool = True) -> list[Record]:
    """The committed 20 synthetic training triplets (``data/train_20.jsonl``)."""
    return load_jsonl(DATA_DIR / TRAIN_JSONL, DATA_DIR / "images", check_images)


# ---------------------------------------------------------------------------------------------
# The real GRIT data
# ---------------------------------------------------------------------------------------------

_ALTERNATIVES = (
    "Alternatives: copy tallyqa_train_10.jsonl and vsr_cot_train_10.jsonl with their image "
    "folders tallyqa/ and vsr/ into a folder and call grit_lite.data.load_grit_train(folder), "
    "or use the shipped synthetic triplets: grit_lite.data.load_train()."
)


def load_grit_train(folder: str | Path, check_images: bool = True) -> list[Record]:
    """The official 20 training triplets from a local copy of GRIT's data folder.

    Expects the layout of GRIT's training script: ``tallyqa_train_10.jsonl`` with images in
    ``tallyqa/`` and ``vsr_cot_train_10.jsonl`` with images in ``vsr/`` (10 + 10 records).
    """
    folder = Path(folder)
    missing = [name for name in GRIT_TRAIN_FILES if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)}. {_ALTERNATIVES}")
    records: list[Record] = []
    for name, images in GRIT_TRAIN_FILES.items():
        records += load_jsonl(folder / name, folder / images, check_images)
    return records


def _probe(endpoint: str, timeout: float) -> str | None:
    """Why ``endpoint`` cannot be reached within ``timeout`` seconds, or None if it can.

    A TCP connect in a worker thread: the socket timeout does not bound a DNS lookup, the
    thread's result timeout does, so an offline machine answers in ``timeout`` seconds.
    """
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)

    def connect() -> None:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(connect).result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        return f"no answer from {endpoint} within {timeout:g} s"
    except OSError as error:
        return f"cannot connect to {endpoint} ({error})"
    finally:
        pool.shutdown(wait=False)
    return None


def fetch_grit_data(
    dest: str | Path,
    repo_id: str = GRIT_DATA_REPO,
    endpoint: str | None = None,
    timeout: float = 5.0,
) -> Path:
    """Download GRIT's released data folder from the Hugging Face hub into ``dest``.

    ``repo_id`` defaults to ``yfan1997/GRIT_data``, the dataset repository GRIT's README
    pointed to when this course was written: check the README of the official GRIT code for
    its current location. The hub copy may hold only the JSON-lines files; the images come
    from COCO (VSR) and Visual Genome (TallyQA) and go into ``dest/vsr`` and ``dest/tallyqa``
    (:func:`load_grit_train` names any that are missing). Offline (``HF_HUB_OFFLINE`` set,
    or the endpoint unreachable within ``timeout`` seconds) it fails fast with a
    :class:`DataError` naming the alternatives instead of hanging on retries.
    Returns ``dest``, ready for :func:`load_grit_train`.
    """
    dest = Path(dest)
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise DataError(f"Cannot download {repo_id}: HF_HUB_OFFLINE is set. {_ALTERNATIVES}")
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    problem = _probe(endpoint, timeout)
    if problem is None:
        from huggingface_hub import snapshot_download

        try:
            snapshot_download(
                repo_id,
                repo_type="dataset",
                local_dir=dest,
                endpoint=endpoint,
                etag_timeout=timeout,
            )
        except Exception as error:  # the hub raises HTTP, connection and not-found errors
            problem = f"{type(error).__name__}: {error}"
    if problem is not None:
        raise DataError(f"Cannot download {repo_id} from the hub: {problem}. {_ALTERNATIVES}")
    return dest


# ---------------------------------------------------------------------------------------------
# The synthetic stand-in world
# ---------------------------------------------------------------------------------------------

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


@functools.lru_cache
def _qwen_keeps(width: int, height: int) -> bool:
    """True when Qwen2.5-VL sees the image at its own size, so boxes need no conversion."""
    return qwen_resized_size(width, height) == (width, height)


def synthetic_split(name: str, n: int, seed: int) -> list[tuple[Record, Image.Image]]:
    """A split of ``n`` synthetic records with their images, named ``<name>_<index>.png``."""
    digits = max(2, len(str(n - 1)))
    pairs = []
    for i, (scene, q) in enumerate(synthetic_items(n, seed)):
        assert _qwen_keeps(scene.width, scene.height), "sides must be multiples of 28"
        record = Record(
            question=q.question,
            answer=q.answer,
            image=f"{name}_{i:0{digits}d}.png",
            width=scene.width,
            height=scene.height,
            bboxs=q.bboxs,
            dataset=q.dataset,
            split=name,
        )
        pairs.append((record, render(scene)))
    return pairs


def train_split() -> list[tuple[Record, Image.Image]]:
    """The 20 training triplets (10 counting, 10 spatial), as committed in ``data/``."""
    return synthetic_split("train", 20, TRAIN_SEED)


def _key(record: Record, image: Image.Image) -> tuple[str, bytes]:
    return record.question, image.tobytes()


def eval_split(n: int = 200, seed: int = EVAL_SEED) -> list[tuple[Record, Image.Image]]:
    """A held-out split, made in memory; it shares no (question, image) with the train split,
    so accuracy on it measures more than memorising 20 pictures."""
    if seed == TRAIN_SEED:
        raise ValueError("the evaluation seed must differ from the training seed")
    pairs = synthetic_split("eval", n, seed)
    seen = {_key(r, im) for r, im in train_split()}
    clash = [r.image for r, im in pairs if _key(r, im) in seen]
    if clash:
        raise RuntimeError(f"eval items identical to training items: {clash}; pick another seed")
    return pairs


def write_split(
    pairs: Iterable[tuple[Record, Image.Image]], folder: str | Path, jsonl_name: str
) -> Path:
    """Write ``folder/jsonl_name`` and the images to ``folder/images``; return the jsonl path.

    PNGs are saved with ``optimize=True``: flat shapes on a gradient take a few KB each.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for record, image in pairs:
        image.save(folder / "images" / record.image, format="PNG", optimize=True)
        lines.append(json.dumps(record.to_json()))
    path = folder / jsonl_name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Conversion for TRL
# ---------------------------------------------------------------------------------------------


def to_dataset(
    items: Sequence[Record | tuple[Record, Image.Image]], image_dir: str | Path | None = None
) -> Any:
    """A ``datasets.Dataset`` in the conversational vision format of TRL's ``GRPOTrainer``.

    Columns: ``prompt`` (chat messages with an image placeholder and the GRIT prompt, from
    :func:`grit_lite.format.build_messages`), ``image`` (TRL 1.16 reads a single image from
    "image", a list from "images", and fills the placeholder with it), the columns the
    rewards read (``question``, ``answer``, ``dataset``) and, for evaluation, ``bboxs``,
    ``width``, ``height``. Records without an image are opened from ``image_dir`` (or the
    path they were loaded from).
    """
    import datasets

    rows: dict[str, list[Any]] = {k: [] for k in ("prompt", "image", *FIELDS[:2], *FIELDS[3:7])}
    for item in items:
        record, image = item if isinstance(item, tuple) else (item, None)
        if image is None:
            path = Path(image_dir) / record.image if image_dir is not None else record.image_path
            if path is None:
                raise DataError(f"no image for {record.image!r}: pass image_dir")
            image = open_image(path)
        rows["prompt"].append(build_messages(record.question))
        rows["image"].append(image)
        for name in rows:
            if name not in ("prompt", "image"):
                rows[name].append(getattr(record, name))
    string = datasets.Value("string")
    features = datasets.Features(
        {
            "prompt": datasets.List(
                {"role": string, "content": datasets.List({"type": string, "text": string})}
            ),
            "image": datasets.Image(),
            "question": string,
            "answer": string,
            "width": datasets.Value("int32"),
            "height": datasets.Value("int32"),
            "bboxs": datasets.List(datasets.List(datasets.Value("float64"))),
            "dataset": string,
        }
    )
    return datasets.Dataset.from_dict(rows, features=features)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """``make-train [--out data]`` rewrites the committed 20; ``make-eval OUT_DIR`` the 200."""
    parser = argparse.ArgumentParser(prog="python -m grit_lite.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("make-train", help="write train_20.jsonl and images/ (seeded)")
    train.add_argument("--out", default=str(DATA_DIR), help="folder (default: the repo's data/)")
    evaluation = sub.add_parser("make-eval", help="write eval_200.jsonl and images/ (seeded)")
    evaluation.add_argument("out", help="folder to write into (not committed)")
    evaluation.add_argument("-n", type=int, default=200, help="number of items (default 200)")
    args = parser.parse_args(argv)
    if args.command == "make-train":
        path = write_split(train_split(), args.out, TRAIN_JSONL)
    else:
        path = write_split(eval_split(args.n), args.out, f"eval_{args.n}.jsonl")
    print(f"wrote {path} and {Path(path).parent / 'images'}")


if __name__ == "__main__":
    main()
