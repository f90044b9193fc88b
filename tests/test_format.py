"""The grounded format: prompt, messages, parsing of completions, drawing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from grit_lite import format as fmt
from grit_lite.examples import CAT_ON_TRUCK, KNIFE, MALFORMED, REAL_STYLE, ZEBRAS, example_image


def test_prompt_suffix_is_verbatim():
    suffix = fmt.GRIT_PROMPT_SUFFIX
    assert suffix.startswith(" First, think between <think> and </think>")
    assert suffix.endswith("then answer the question after <answer>.\n")
    assert "\n" not in suffix[:-1]
    assert "in JSON with key 'bbox_2d'. Then, based on the thinking contents" in suffix
    assert fmt.build_prompt("How many?") == "Question: How many?" + suffix


def test_messages_hold_image_then_prompt():
    image = Image.new("RGB", (28, 28))
    (turn,) = fmt.build_messages("Is it red?", image)
    assert turn["role"] == "user"
    assert [part["type"] for part in turn["content"]] == ["image", "text"]
    assert turn["content"][0]["image"] is image
    assert turn["content"][1]["text"] == fmt.build_prompt("Is it red?")
    assert "image" not in fmt.build_messages("q")[0]["content"][0]


def test_zebra_completion_parses_fully():
    parsed = fmt.parse_completion(ZEBRAS.completion)
    assert parsed.think.startswith("There are six zebras")
    assert parsed.rethink.startswith("The coordinates provided")
    assert parsed.answer == "7"
    assert len(parsed.boxes) == 7
    assert parsed.boxes[0] == (200.0, 168.0, 248.0, 202.0)
    assert parsed.well_formed
    assert set(parsed.checks) == set(fmt.FORMAT_RULES)


def test_json_and_bare_boxes_in_think():
    assert fmt.parse_completion(CAT_ON_TRUCK.completion).boxes == [
        (268.0, 92.0, 352.0, 162.0),
        (86.0, 150.0, 560.0, 352.0),
    ]
    assert len(fmt.parse_completion(KNIFE.completion).boxes) == 3


def test_boxes_outside_think_do_not_count():
    parsed = fmt.parse_completion("<think> no region </think><rethink> (1, 2, 3, 4) </rethink>")
    assert parsed.boxes == []
    assert not parsed.checks["boxes_in_think"]


def test_malformed_flags():
    checks = {name: fmt.parse_completion(text).checks for name, text in MALFORMED.items()}
    assert not any(checks["plain answer"].values())
    assert checks["no rethink"]["has_think"] and not checks["no rethink"]["has_rethink"]
    assert not checks["tags out of order"]["tags_in_order"]
    assert not checks["tags out of order"]["has_rethink"]  # <rethink> precedes </think>
    assert not checks["unclosed think"]["think_closed"]
    assert not checks["two answers"]["single_answer"]
    assert checks["two answers"]["tags_in_order"]
    assert checks["empty think"]["tags_in_order"] and not checks["empty think"]["boxes_in_think"]


def test_unclosed_think_stops_at_next_tag():
    parsed = fmt.parse_completion(MALFORMED["unclosed think"])
    assert parsed.think == "the mug at [12, 40, 88, 120]"
    assert parsed.rethink == "fine"
    assert parsed.answer == "mug"


def test_answer_extraction_rules():
    assert fmt.extract_answer("no tag") is None
    assert fmt.extract_answer("<answer>") == ""
    assert fmt.extract_answer("<answer> 2 </answer> and more") == "2"
    assert fmt.extract_answer("<answer> 2 <answer> 3") == "2"
    assert fmt.extract_answer(None) is None  # type: ignore[arg-type]


@given(st.text())
def test_parse_completion_is_total(text):
    parsed = fmt.parse_completion(text)
    assert set(parsed.checks) == set(fmt.FORMAT_RULES)
    assert all(len(box) == 4 for box in parsed.boxes)
    assert isinstance(fmt.format_report(parsed), str)


@given(
    st.lists(
        st.sampled_from(
            [
                "<think>",
                "</think>",
                "<rethink>",
                "</rethink>",
                "<answer>",
                "</answer>",
                "1, 2, 3, 4",
                " x ",
                "(5, 6, 7, 8)",
            ]
        ),
        max_size=12,
    )
)
def test_parse_completion_total_on_tag_soup(parts):
    text = "".join(parts)
    parsed = fmt.parse_completion(text)
    if parsed.well_formed:
        assert text.count("<answer>") == 1 and parsed.boxes


def test_not_a_string_gives_empty_parse():
    parsed = fmt.parse_completion(None)  # type: ignore[arg-type]
    assert parsed.think is None and parsed.answer is None and not parsed.well_formed


def test_draw_boxes_paints_inside_the_box_only():
    image = Image.new("RGB", (100, 80), "white")
    drawn = fmt.draw_boxes(image, [(10, 20, 60, 70)])
    assert image.getpixel((10, 45)) == (255, 255, 255)  # the input is not modified
    assert drawn.getpixel((10, 45)) != (255, 255, 255)  # left edge of the box is painted
    assert drawn.getpixel((90, 75)) == (255, 255, 255)  # far from the box: untouched
    assert drawn.size == image.size


def test_draw_boxes_tolerates_swapped_and_outside_boxes():
    image = example_image(ZEBRAS)
    drawn = fmt.draw_boxes(image, [(248, 202, 200, 168), (-50, -50, 9999, 9999)], ["a", "b"])
    assert drawn.size == image.size


def test_examples_images_match_their_sizes():
    for example in REAL_STYLE:
        assert example_image(example).size == example.size
