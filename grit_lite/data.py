"""GRIT's training data: the official record format, the real files, and synthetic splits.

GRIT trains on 20 image-question-answer triplets: 10 counting questions (TallyQA) and 10
spatial yes/no questions (VSR). Each is one JSON line in the official schema::

    {"question": "...", "answer": "...", "image": "file.jpg", "width": 640, "height": 354,
     "bboxs": [[x1, y1, x2, y2], ...], "dataset": "vsr" | "tallyqa", "split": "train"}

``bboxs`` are in original-image pixels and only serve evaluation (grounding IoU): GRIT never
uses them, nor any reasoning chain, as a training label.

The real images (COCO, Visual Genome) cannot be fetched offline, so the committed triplets
come from the *synthetic stand-in world* of :mod:`grit_lite.world` (coloured shapes with
exact boxes, questions in the same two families); this module turns its scenes into records
and splits, and re-exports the world's names so ``data.Scene`` and the like keep working.
Everything is seeded: ``python -m grit_lite.data make-train`` rewrites the committed
``data/train_20.jsonl`` and ``data/images/`` byte for byte.
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
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from PIL import Image

from grit_lite.boxes import qwen_resized_size
from grit_lite.format import build_messages
from grit_lite.world import (  # noqa: F401 (re-exported: data.Scene and the like keep working)
    CANVAS,
    CELL,
    COLOURS,
    OPPOSITE,
    RELATIONS,
    SHAPES,
    Obj,
    Question,
    Scene,
    _background,
    _spatial_item,
    cell_at,
    counting_question,
    make_scene,
    outline_colour,
    relation_holds,
    render,
    shape_mask,
    spatial_question,
    synthetic_items,
    unique_objects,
)

REPO_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_DIR / "data"
TRAIN_JSONL = "train_20.jsonl"
TRAIN_SEED = 20
EVAL_SEED = 2025
MAX_ASPECT = 200  # transformers' smart_resize raises for a longer side over 200x the other
BOX_TOLERANCE = 1.0  # px: float rounding in real annotations may poke just past the border

FIELDS = ("question", "answer", "image", "width", "height", "bboxs", "dataset", "split")

# The official training files and the image folder each one's "image" names refer to.
GRIT_TRAIN_FILES = {"tallyqa_train_10.jsonl": "tallyqa", "vsr_cot_train_10.jsonl": "vsr"}
# Two of the evaluation files of the Qwen launch script (its --eval_data_path), same layout.
GRIT_EVAL_FILES = {"vsr_val.jsonl": "vsr", "tallyqa_val.jsonl": "tallyqa"}
GRIT_DATA_REPO = "yfan1997/GRIT_data"
HELDOUT_PER_FILE = 50  # a fixed seeded sample of each evaluation file
# Where GRIT's files are downloaded to and read from, the training triplets and the held-out sample
GRIT_DATA_CACHE = Path.home() / ".cache" / "grit-lite" / "grit_data"
# Where the photos themselves are published, when the hub copy holds only the JSON lines:
# COCO 2017 for VSR, Visual Genome for TallyQA. ``{image}`` is the record's "image" field,
# ``{name}`` its file name; the first address that answers wins.
IMAGE_SOURCES = {
    "vsr": ("http://images.cocodataset.org/train2017/{name}",
            "http://images.cocodataset.org/val2017/{name}"),
    "tallyqa": ("https://cs.stanford.edu/people/rak248/{image}",
                "https://cs.stanford.edu/people/rak248/VG_100K/{name}",
                "https://cs.stanford.edu/people/rak248/VG_100K_2/{name}"),
}  # fmt: skip


class DataError(ValueError):
    """A data file or download problem, with the place it happened and what to do about it."""


class Unreachable(DataError):
    """The hub cannot be reached at all (offline, or ``HF_HUB_OFFLINE`` set)."""


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
    if max(obj["width"], obj["height"]) > MAX_ASPECT * min(obj["width"], obj["height"]):
        return (
            f"fields 'width' and 'height' ({obj['width']}x{obj['height']}) give an aspect ratio "
            f"over {MAX_ASPECT}, which Qwen2.5-VL's image processor refuses: crop the image"
        )
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


def _require_images(records: Sequence[Record], what: str) -> None:
    """One :class:`DataError` counting the records whose image is missing or unreadable."""
    problems = [p for r in records if (p := _check_image(r.image_path, r.width, r.height))]
    if problems:
        raise DataError(
            f"{len(problems)} of the {len(records)} images of {what} are missing or unreadable "
            f"(first: {problems[0]}). GRIT's data README says where each dataset's photos come "
            "from (COCO 2017 for VSR, Visual Genome for TallyQA); put them there."
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
        records += load_jsonl(folder / name, folder / images, check_images=False)
    if check_images:
        _require_images(records, f"GRIT's training triplets in {folder}")
    return records


def _heldout_records(folder: Path, per_file: int, seed: int) -> list[Record]:
    """A seeded sample of ``per_file`` records of each evaluation file, images unchecked."""
    records: list[Record] = []
    for name, images in GRIT_EVAL_FILES.items():
        found = load_jsonl(folder / name, folder / images, check_images=False,
                           defaults={"bboxs": [], "split": "val"})  # fmt: skip
        chosen = sorted(random.Random(seed).sample(range(len(found)), min(per_file, len(found))))
        records += [found[i] for i in chosen]
    return records


def load_grit_heldout(
    folder: str | Path, per_file: int = HELDOUT_PER_FILE, seed: int = EVAL_SEED
) -> list[Record]:
    """A fixed sample of GRIT's own VSR and TallyQA evaluation questions, with their images.

    ``per_file`` records of ``vsr_val.jsonl`` (images in ``vsr/``) and of
    ``tallyqa_val.jsonl`` (images in ``tallyqa/``), drawn with ``seed``: the same questions
    on every machine, none of them among the 20 training triplets (other files).
    """
    records = _heldout_records(Path(folder), per_file, seed)
    _require_images(records, f"the held-out sample in {folder}")
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


def _snapshot(
    dest: Path, patterns: list[str], repo_id: str, endpoint: str | None, timeout: float
) -> None:
    """Download the files of ``repo_id`` matching ``patterns`` into ``dest``, failing fast.

    Offline (``HF_HUB_OFFLINE`` set, or the endpoint silent for ``timeout`` seconds) it raises
    :class:`Unreachable` instead of hanging on retries; a hub error is a :class:`DataError`.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise Unreachable(f"Cannot download {repo_id}: HF_HUB_OFFLINE is set. {_ALTERNATIVES}")
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if problem := _probe(endpoint, timeout):
        raise Unreachable(f"Cannot download {repo_id} from the hub: {problem}. {_ALTERNATIVES}")
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, repo_type="dataset", local_dir=dest, endpoint=endpoint,
                          etag_timeout=timeout, allow_patterns=patterns)  # fmt: skip
    except Exception as error:  # the hub raises HTTP, connection and not-found errors
        raise DataError(f"Cannot download {repo_id} from the hub: {type(error).__name__}: "
                        f"{error}. {_ALTERNATIVES}") from None  # fmt: skip


def _fetch_one(record: Record, sources: dict[str, Sequence[str]], timeout: float) -> bool:
    """Download ``record``'s image from the first of its dataset's sources that serves it
    at the record's size; True when the file is now there."""
    path = record.image_path
    if path is None:
        return False
    for template in sources.get(record.dataset, ()):
        url = template.format(image=record.image, name=Path(record.image).name)
        part = path.with_name(path.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body = response.read()
        except (OSError, ValueError):  # not found there, refused, timed out, a bad address
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(body)
        if _check_image(part, record.width, record.height) is None:
            part.replace(path)
            return True
        part.unlink()  # another picture under the same name: try the next source
    return False


def fetch_images(
    records: Sequence[Record],
    sources: dict[str, Sequence[str]] = IMAGE_SOURCES,
    timeout: float = 20.0,
) -> int:
    """Download the images that ``records`` name and that are not on disk yet, from the
    datasets' own publishers (:data:`IMAGE_SOURCES`); returns how many are still missing."""
    wanted = [r for r in records if _check_image(r.image_path, r.width, r.height) is not None]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda r: _fetch_one(r, sources, timeout), wanted))
    return got.count(False)


def fetch_grit_data(
    dest: str | Path,
    repo_id: str = GRIT_DATA_REPO,
    endpoint: str | None = None,
    timeout: float = 5.0,
    sources: dict[str, Sequence[str]] = IMAGE_SOURCES,
) -> Path:
    """Download GRIT's 20 training triplets into ``dest``, ready for :func:`load_grit_train`.

    ``repo_id`` defaults to ``yfan1997/GRIT_data``, the dataset repository GRIT's README
    pointed to when this course was written: check the README of the official GRIT code for
    its current location. Only the two training files and their image folders are fetched
    (``allow_patterns``), not the repository's evaluation data of many gigabytes. The hub copy
    may hold only the JSON-lines files: images it lacks come from ``sources`` (COCO for VSR,
    Visual Genome for TallyQA) into ``dest/vsr`` and ``dest/tallyqa``. Offline it raises
    :class:`Unreachable` within ``timeout`` seconds instead of hanging on retries.
    """
    dest = Path(dest)
    patterns = [*GRIT_TRAIN_FILES, *(f"{d}/*" for d in GRIT_TRAIN_FILES.values())]
    _snapshot(dest, patterns, repo_id, endpoint, timeout)
    fetch_images(load_grit_train(dest, check_images=False), sources)
    return dest


def fetch_grit_heldout(
    dest: str | Path,
    per_file: int = HELDOUT_PER_FILE,
    seed: int = EVAL_SEED,
    repo_id: str = GRIT_DATA_REPO,
    endpoint: str | None = None,
    timeout: float = 5.0,
    sources: dict[str, Sequence[str]] = IMAGE_SOURCES,
) -> list[Record]:
    """:func:`load_grit_heldout` from ``dest``, downloading what it lacks first: the two
    evaluation files, then only the sample's images (from the hub if it holds them, else
    from ``sources``). Offline it raises :class:`Unreachable` within ``timeout`` seconds."""
    dest = Path(dest)
    try:
        return load_grit_heldout(dest, per_file, seed)
    except DataError:
        pass
    if not all((dest / name).is_file() for name in GRIT_EVAL_FILES):
        _snapshot(dest, list(GRIT_EVAL_FILES), repo_id, endpoint, timeout)
    records = _heldout_records(dest, per_file, seed)
    images = [str(r.image_path.relative_to(dest)) for r in records if r.image_path is not None]
    _snapshot(dest, images, repo_id, endpoint, timeout)  # nothing, if the hub has no images
    fetch_images(records, sources)
    return load_grit_heldout(dest, per_file, seed)


# ---------------------------------------------------------------------------------------------
# Splits drawn from the synthetic stand-in world (grit_lite.world)
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# The triplets a run trains on
# ---------------------------------------------------------------------------------------------


def _grit_triplets(cache: Path) -> list[Record]:
    """GRIT's 20 triplets from ``cache``, downloaded there first if it does not hold them."""
    try:
        return load_grit_train(cache)
    except DataError:
        fetch_grit_data(cache)
        return load_grit_train(cache)


def knows_only_shapes(model: str) -> bool:
    """Whether ``model`` is the course's tiny model (or trained from it): a 640-word vocabulary
    of shapes and colours that cannot read a photograph's question."""
    if model == "tiny":
        return True
    config = Path(model).expanduser() / "config.json"
    try:
        text = json.loads(config.read_text()).get("text_config", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(text, dict) and text.get("vocab_size", 10**6) <= 1024


SYNTHETIC = "the 20 synthetic triplets"
GRIT = "GRIT's 20 triplets (VSR and TallyQA)"


def training_data(
    choice: str | None = None,
    model: str = "tiny",
    cache: Path = GRIT_DATA_CACHE,
    say: Any = print,
    fallback: bool = False,
) -> tuple[list[tuple[Record, Any]], str]:
    """The triplets a run trains on, and a line naming them and why.

    ``choice`` is ``synthetic``, ``grit``, a folder, or None for the model's default: the tiny
    model only knows the synthetic shapes, so it gets the synthetic triplets; a real VLM gets
    GRIT's own 20 (VSR and TallyQA photos, the paper's setting). When they cannot be had, the
    run does not quietly train on something else: with no network (the hub unreachable) the
    default falls back to the synthetic triplets and says so; anything else (``grit`` asked
    for, a hub copy without its images) is an error naming what is missing, unless
    ``fallback`` asks for the synthetic triplets instead. The line goes to ``say`` only on a
    fallback; the caller keeps it for the run's ``preset.json`` and tables.
    """
    if choice is None and knows_only_shapes(model):
        return train_split(), f"{SYNTHETIC} (the tiny model knows only shapes)"
    if choice == "synthetic":
        return train_split(), f"{SYNTHETIC} (asked for)"
    if choice not in ("grit", None):
        records = load_grit_train(choice)
        return [(r, open_image(r.image_path)) for r in records], f"{GRIT} from {choice}"
    try:
        records = _grit_triplets(cache)
    except DataError as error:
        offline = isinstance(error, Unreachable) and choice is None
        if not (offline or fallback):
            hint = "To train on the synthetic triplets instead, pass --data synthetic."
            raise DataError(f"{error} {hint}") from None
        reason = str(error).split(". ")[0]
        source = f"{SYNTHETIC}, NOT GRIT's: {reason}"
        say(f"training on {source}; --data FOLDER uses a local copy")
        return train_split(), source
    return [(r, open_image(r.image_path)) for r in records], f"{GRIT} from {cache}"
