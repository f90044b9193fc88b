"""Example GRIT completions and synthetic stand-in images to read them against.

The zebra completion is the output of GRIT's Qwen2.5-VL-3B that the paper prints as its
Figure 3 (i), boxes, rethink and unclosed answer as printed (one box a line here). The cat
and knife completions are constructed by the course in the same style, to teach the format.
The images are drawn here, with each object exactly where its completion's boxes say,
because real COCO images cannot be downloaded offline.
Image sizes are multiples of 28, so Qwen2.5-VL's ``smart_resize`` leaves them unchanged
and the boxes are valid both in resized and in original pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image, ImageDraw

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Example:
    """One image-question-answer triplet with a model completion about it."""

    name: str
    question: str
    answer: str
    dataset: str  # "tallyqa" (counting) or "vsr" (spatial), as in GRIT's data files
    completion: str
    size: tuple[int, int]  # (width, height) of the stand-in image
    objects: list[tuple[str, Box]] = field(default_factory=list)  # ground truth, pixels


ZEBRAS = Example(
    name="zebras",
    question="How many zebras are pictured here?",
    answer="7",
    dataset="tallyqa",
    completion=(
        "<think>\n"
        "There are six zebras in the picture. The coordinates for the zebras are as follows:\n"
        "1. (200, 168, 248, 202)\n"
        "2. (169, 159, 214, 186)\n"
        "3. (76, 167, 108, 192)\n"
        "4. (24, 173, 50, 197)\n"
        "5. (51, 163, 70, 191)\n"
        "6. (413, 159, 441, 189)\n"
        "7. (463, 171, 483, 186)\n"
        "</think>\n\n"
        "<rethink>\n"
        "The coordinates provided for the zebras are accurate and cover all the zebras "
        "visible in the image. There are no overlapping or missing coordinates.\n"
        "</rethink>\n\n"
        "<answer>\n"
        "7"
    ),
    size=(644, 420),
    objects=[
        ("zebra", (200, 168, 248, 202)),
        ("zebra", (169, 159, 214, 186)),
        ("zebra", (76, 167, 108, 192)),
        ("zebra", (24, 173, 50, 197)),
        ("zebra", (51, 163, 70, 191)),
        ("zebra", (413, 159, 441, 189)),
        ("zebra", (463, 171, 483, 186)),
    ],
)

CAT_ON_TRUCK = Example(
    name="cat on truck",
    question="Is the cat on the truck?",
    answer="yes",
    dataset="vsr",
    completion=(
        "<think>\n"
        'The cat is at {"bbox_2d": [268, 92, 352, 162], "label": "cat"} and the truck is at '
        '{"bbox_2d": [86, 150, 560, 352], "label": "truck"}.\n'
        "</think>\n\n"
        "<rethink>\n"
        "The bottom of the cat's box (y = 162) lies inside the top of the truck's box "
        "(y = 150), and the cat is horizontally within the truck, so the cat sits on it.\n"
        "</rethink>\n\n"
        "<answer>\n"
        "yes"
    ),
    size=(644, 420),
    objects=[("cat", (268, 92, 352, 162)), ("truck", (86, 150, 560, 352))],
)

KNIFE = Example(
    name="knife",
    question="Which utensil is to the left of the knife?",
    answer="fork",
    dataset="vsr",
    completion=(
        "<think>\n"
        "The knife is at 402, 120, 430, 300. To its left there is a plate at "
        "[180, 110, 380, 310] and, at the far left, a fork at (112, 118, 140, 296).\n"
        "</think>\n\n"
        "<rethink>\n"
        "The plate (180-380) is the object closest to the left of the knife (402), so the "
        "plate is the answer.\n"
        "</rethink>\n\n"
        "<answer>\n"
        "plate"
    ),
    size=(560, 420),
    objects=[
        ("knife", (402, 120, 430, 300)),
        ("plate", (180, 110, 380, 310)),
        ("fork", (112, 118, 140, 296)),
    ],
)

REAL_STYLE = [ZEBRAS, CAT_ON_TRUCK, KNIFE]

# Completions that break one or more rules of the format, for parsers and rewards.
MALFORMED: dict[str, str] = {
    "plain answer": "The answer is 3.",
    "no rethink": "<think> two cats at (10, 10, 50, 50) and (60, 10, 99, 50) </think> <answer> 2",
    "tags out of order": "<rethink> hmm </rethink> <think> a dog </think> <answer> yes",
    "unclosed think": "<think> the mug at [12, 40, 88, 120] <rethink> fine </rethink> <answer> mug",
    "two answers": "<think>x</think><rethink>y</rethink><answer> 2 <answer> 3",
    "truncated box": "<think> the cat is at (268, 92, 35",
    "empty think": "<think></think><rethink> no regions </rethink><answer> no",
    "think without boxes": "<think> I see some birds </think><rethink> ok </rethink><answer> 4",
    "empty string": "",
}


def _zebra(draw: ImageDraw.ImageDraw, box: Box) -> None:
    x1, y1, x2, y2 = box
    draw.ellipse(box, fill=(245, 245, 240), outline=(20, 20, 20), width=2)
    step = max(4.0, (x2 - x1) / 7)
    x = x1 + step
    while x < x2 - 2:
        draw.line([(x, y1 + 3), (x - 4, y2 - 3)], fill=(20, 20, 20), width=3)
        x += step


def _cat(draw: ImageDraw.ImageDraw, box: Box) -> None:
    x1, y1, x2, y2 = box
    w = x2 - x1
    draw.ellipse((x1, y1 + 0.3 * (y2 - y1), x2, y2), fill=(236, 140, 48))
    draw.polygon(
        [
            (x1 + 0.15 * w, y1 + 0.35 * (y2 - y1)),
            (x1 + 0.25 * w, y1),
            (x1 + 0.4 * w, y1 + 0.35 * (y2 - y1)),
        ],
        fill=(236, 140, 48),
    )
    draw.polygon(
        [
            (x1 + 0.6 * w, y1 + 0.35 * (y2 - y1)),
            (x1 + 0.75 * w, y1),
            (x1 + 0.85 * w, y1 + 0.35 * (y2 - y1)),
        ],
        fill=(236, 140, 48),
    )


def _truck(draw: ImageDraw.ImageDraw, box: Box) -> None:
    x1, y1, x2, y2 = box
    h = y2 - y1
    draw.rectangle((x1, y1 + 0.1 * h, x2 - 0.25 * (x2 - x1), y2 - 0.25 * h), fill=(40, 90, 190))
    draw.rectangle((x2 - 0.25 * (x2 - x1), y1 + 0.35 * h, x2, y2 - 0.25 * h), fill=(30, 70, 150))
    for cx in (x1 + 0.18 * (x2 - x1), x2 - 0.18 * (x2 - x1)):
        r = 0.2 * h
        draw.ellipse((cx - r, y2 - 2 * r, cx + r, y2), fill=(30, 30, 30))


def _utensil(draw: ImageDraw.ImageDraw, box: Box) -> None:
    draw.rounded_rectangle(box, radius=6, fill=(170, 175, 185), outline=(90, 90, 100))


def _plate(draw: ImageDraw.ImageDraw, box: Box) -> None:
    x1, y1, x2, y2 = box
    draw.ellipse(box, fill=(250, 250, 250), outline=(180, 180, 180), width=3)
    draw.ellipse((x1 + 25, y1 + 25, x2 - 25, y2 - 25), outline=(210, 210, 210), width=2)


_PAINTERS = {
    "zebra": _zebra,
    "cat": _cat,
    "truck": _truck,
    "knife": _utensil,
    "fork": _utensil,
    "plate": _plate,
}
_BACKGROUNDS = {"tallyqa": (196, 186, 120), "vsr": (222, 214, 200)}


def example_image(example: Example) -> Image.Image:
    """Draw a stand-in image: each ground-truth object painted inside its box."""
    image = Image.new("RGB", example.size, _BACKGROUNDS.get(example.dataset, (230, 230, 230)))
    draw = ImageDraw.Draw(image)
    if example.dataset == "tallyqa":  # a sky above the grass, for the savanna scene
        draw.rectangle((0, 0, example.size[0], int(0.3 * example.size[1])), fill=(150, 200, 235))

    # Paint large objects first so small ones stay visible on top of them.
    def area(obj: tuple[str, Box]) -> float:
        x1, y1, x2, y2 = obj[1]
        return (x2 - x1) * (y2 - y1)

    for label, box in sorted(example.objects, key=area, reverse=True):
        _PAINTERS.get(label, _utensil)(draw, box)
    return image
