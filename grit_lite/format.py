"""The grounded reasoning format GRIT teaches, and how to read a completion in it.

A GRIT answer has three parts::

    <think> text that names image regions as boxes x1, y1, x2, y2 </think>
    <rethink> text that reasons over those regions </rethink>
    <answer> the final answer

The model is never shown an example of this format: the prompt suffix below describes it
in words, and RL rewards (notebook 03) make the model follow it. Everything here that reads
model output is *total*: any string in, a value out, no exception, linear time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from grit_lite.boxes import Box, parse_boxes

# Verbatim from the GRIT release: part of the method, so never reworded.
GRIT_PROMPT_SUFFIX = (
    " First, think between <think> and </think> while output necessary coordinates needed to"
    " answer the question in JSON with key 'bbox_2d'. Then, based on the thinking contents and"
    " coordinates, rethink between <rethink> </rethink> and then answer the question after"
    " <answer>.\n"
)

THINK, THINK_END, RETHINK, RETHINK_END, ANSWER, ANSWER_END = (
    "<think>",
    "</think>",
    "<rethink>",
    "</rethink>",
    "<answer>",
    "</answer>",
)

# One flag per rule of the format; GroundedOutput.checks has exactly these keys.
FORMAT_RULES: dict[str, str] = {
    "has_think": "a <think> tag opens the reasoning",
    "think_closed": "</think> closes it",
    "has_rethink": "a <rethink> tag follows </think>",
    "rethink_closed": "</rethink> closes the rethink",
    "tags_in_order": "each of the four think/rethink tags occurs once, in that order",
    "has_answer": "<answer> follows </rethink>",
    "single_answer": "<answer> occurs exactly once",
    "boxes_in_think": "the think part names at least one box",
}


def build_prompt(question: str) -> str:
    """The user text GRIT uses for training and inference: question, then the suffix."""
    return "Question: " + question + GRIT_PROMPT_SUFFIX


def build_messages(question: str, image: Any = None) -> list[dict[str, Any]]:
    """Chat messages for Qwen2.5-VL: one user turn holding the image, then the prompt.

    ``image`` may be a PIL image, a path or URL (what the processor's chat template loads),
    or None to leave a bare ``{"type": "image"}`` placeholder, which is what TRL expects
    when the images travel in a separate dataset column.
    """
    image_part: dict[str, Any] = {"type": "image"}
    if image is not None:
        image_part["image"] = image
    text_part = {"type": "text", "text": build_prompt(question)}
    return [{"role": "user", "content": [image_part, text_part]}]


@dataclass(frozen=True)
class GroundedOutput:
    """A completion split into its parts. A part the model did not write is ``None``."""

    think: str | None
    rethink: str | None
    answer: str | None
    boxes: list[Box] = field(default_factory=list)  # boxes named inside the think part
    checks: dict[str, bool] = field(default_factory=dict)  # FORMAT_RULES -> passed?

    @property
    def well_formed(self) -> bool:
        """True when every rule of the format holds."""
        return all(self.checks.values())


def _between(text: str, start_tag: str, stops: Sequence[str]) -> str | None:
    """Text after the first ``start_tag`` up to the earliest stop tag (or the end), stripped.

    Stopping at *any* later tag, not only the matching close tag, keeps an unclosed
    ``<think>`` from swallowing the rethink and the answer.
    """
    start = text.find(start_tag)
    if start < 0:
        return None
    start += len(start_tag)
    ends = [i for i in (text.find(stop, start) for stop in stops) if i >= 0]
    return text[start : min(ends, default=len(text))].strip()


def extract_answer(completion: str) -> str | None:
    """The answer: after the first ``<answer>`` up to ``</answer>`` or the next ``<answer>``.

    GRIT's model usually stops without ``</answer>``, so the closing tag is optional.
    ``None`` means the model gave no answer at all, which is not the same as an empty one.
    """
    if not isinstance(completion, str):
        return None
    return _between(completion, ANSWER, (ANSWER_END, ANSWER))


def _tags_in_order(text: str) -> bool:
    tags = (THINK, THINK_END, RETHINK, RETHINK_END)
    if any(text.count(tag) != 1 for tag in tags):
        return False
    positions = [text.find(tag) for tag in tags]
    return positions == sorted(positions)


def parse_completion(completion: str) -> GroundedOutput:
    """Split a completion into think / rethink / answer / boxes and check every format rule."""
    text = completion if isinstance(completion, str) else ""
    think = _between(text, THINK, (THINK_END, RETHINK, ANSWER))
    rethink = _between(text, RETHINK, (RETHINK_END, ANSWER))
    answer = extract_answer(text)
    boxes = parse_boxes(think) if think is not None else []

    think_at, rethink_at = text.find(THINK), text.find(RETHINK)
    think_end_at = text.find(THINK_END, max(think_at, 0))
    rethink_end_at = text.find(RETHINK_END, max(rethink_at, 0))
    rethink_closed = rethink_at >= 0 and rethink_end_at >= 0
    checks = {
        "has_think": think_at >= 0,
        "think_closed": think_at >= 0 and think_end_at >= 0,
        "has_rethink": rethink_at >= 0 and 0 <= think_end_at < rethink_at,
        "rethink_closed": rethink_closed,
        "tags_in_order": _tags_in_order(text),
        "has_answer": rethink_closed and text.find(ANSWER, rethink_end_at) > rethink_end_at,
        "single_answer": text.count(ANSWER) == 1,
        "boxes_in_think": bool(boxes),
    }
    return GroundedOutput(think=think, rethink=rethink, answer=answer, boxes=boxes, checks=checks)


# Distinct, colour-blind-friendly colours (Okabe-Ito) so numbered boxes stay apart.
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#D55E00", "#CC79A7", "#0072B2", "#F0E442"]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has a single bitmap font
        return ImageFont.load_default()


def draw_boxes(
    image: Image.Image,
    boxes: Sequence[Box],
    labels: Sequence[str] | None = None,
    width: int = 3,
) -> Image.Image:
    """Draw boxes on a copy of ``image``, numbered 1, 2, ... in order of appearance.

    Numbering in reading order lets a student match each box to the sentence of the
    reasoning chain that named it. Boxes may lie partly outside the image; they are drawn
    as given, so a coordinate bug stays visible instead of being clipped away.
    """
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    font = _font(max(18, canvas.height // 18, canvas.width // 20))  # >= 9 pt, shown small
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = (float(v) for v in box)
        x1, x2 = sorted((x1, x2))
        y1, y2 = sorted((y1, y2))
        color = PALETTE[i % len(PALETTE)]
        draw.rectangle((x1, y1, x2, y2), outline=color, width=width)
        tag = f"{i + 1}" if not labels or i >= len(labels) else f"{i + 1} {labels[i]}"
        left, top, right, bottom = draw.textbbox((x1, y1), tag, font=font)
        ty = y1 - (bottom - top) - 4 if y1 - (bottom - top) - 4 >= 0 else y1
        draw.rectangle((x1, ty, x1 + right - left + 6, ty + bottom - top + 4), fill=color)
        draw.text((x1 + 3, ty + 2 - (top - y1)), tag, fill="black", font=font)
    return canvas


def format_report(parsed: GroundedOutput) -> str:
    """A short plain-text report of a parsed completion: one line per rule, then the parts."""
    lines = [
        f"{'PASS' if ok else 'fail'}  {FORMAT_RULES[rule]}" for rule, ok in parsed.checks.items()
    ]
    lines.append(f"boxes in think: {[tuple(round(v, 1) for v in b) for b in parsed.boxes]}")
    lines.append(f"answer: {parsed.answer!r}")
    return "\n".join(lines)


def completion_viewer(examples: Sequence[Any], image_for: Any) -> Any:
    """An ipywidgets viewer that steps through completions with their boxes drawn.

    ``examples`` are objects with ``name``, ``question``, ``completion`` attributes (such as
    :class:`grit_lite.examples.Example`); ``image_for(example)`` returns the PIL image.
    The viewer sets widget values instead of printing into an Output widget, so it sends
    no stray output when no front end is listening (headless runs, nbval).
    """
    import html
    import io

    import ipywidgets as widgets

    picker = widgets.IntSlider(min=0, max=max(len(examples) - 1, 0), description="example")
    picture = widgets.Image(format="png")
    report = widgets.HTML()

    def show(change: Any = None) -> None:
        example = examples[picker.value]
        parsed = parse_completion(example.completion)
        buffer = io.BytesIO()
        draw_boxes(image_for(example), parsed.boxes).save(buffer, format="png")
        picture.value = buffer.getvalue()
        text = f"[{example.name}] Q: {example.question}\n\n{format_report(parsed)}"
        report.value = f"<pre>{html.escape(text)}</pre>"

    picker.observe(show, names="value")
    show()
    return widgets.VBox([picker, widgets.HBox([picture, report])])
