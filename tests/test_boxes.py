"""Box parsing, coordinate conversions, IoU, matching and grounding scores."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grit_lite import boxes as B
from grit_lite.examples import CAT_ON_TRUCK, KNIFE, MALFORMED, ZEBRAS

# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(1, 2, 3, 4)", [(1, 2, 3, 4)]),
        ("[1, 2, 3, 4]", [(1, 2, 3, 4)]),
        ("at 1, 2, 3, 4.", [(1, 2, 3, 4)]),
        ("( 1 ,2,  3 , 4 )", [(1, 2, 3, 4)]),
        ('{"bbox_2d": [10, 20, 30, 40], "label": "cat"}', [(10, 20, 30, 40)]),
        ('{"bbox_2d": [1, 2, 3, 4], "bbox_2d": [5, 6, 7, 8]}', [(1, 2, 3, 4), (5, 6, 7, 8)]),
        (
            '[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6, 7, 8], "label": "b"}]',
            [(1, 2, 3, 4), (5, 6, 7, 8)],
        ),
        (
            "<ref>zebra</ref><box>[[10, 20, 30, 40], [50, 60, 70, 80]]</box>",
            [(10, 20, 30, 40), (50, 60, 70, 80)],
        ),
        ("[1.5, 2.25, 3.0, 4.75]", [(1.5, 2.25, 3.0, 4.75)]),
        ("(-5, -2.5, 3, 4)", [(-5, -2.5, 3, 4)]),
        ("zebras, 200, 168, 248, 202", [(200, 168, 248, 202)]),
        ("zebras , 200, 168, 248, 202", [(200, 168, 248, 202)]),
        ("box (10 , 20 , 30 , 40) and [1,2,3,4]", [(10, 20, 30, 40), (1, 2, 3, 4)]),
        ("1, 2, 3, 4, 5 and then (6, 7, 8, 9)", [(6, 7, 8, 9)]),
        (
            "a (1, 2, 3, 4) b [5, 6, 7, 8] c 9, 10, 11, 12",
            [(1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12)],
        ),
    ],
)
def test_parse_box_shapes(text, expected):
    assert B.parse_boxes(text) == [tuple(float(v) for v in b) for b in expected]


@pytest.mark.parametrize(
    "text",
    [
        "[10, 20, 30, 4",  # truncated inside the box
        "the cat is at (268, 92, 35",
        "(1, 2, 3, 4",  # four numbers but the bracket never closes
        "[1, 2, 3, 4, 5]",
        "1, 2, 3, 4, 5",
        "a point (3, 4)",
        "(1, 2, 3)",
        "(1, 2)",
        "x1, 2, 3, 4",  # glued to a word
        "x-1, 2, 3, 4",
        "--1, 2, 3, 4",
        "1, 2, 3, 4abc",
        "v1.2, 3, 4, 5",
        "1, 2, 3, 4.5.6",
        "(1, 2, 3, 4]",  # mismatched brackets
        "1, 2, 3, 4)",  # closing bracket without an opening one
        "9" * 1000 + ", 1, 2, 3",  # overflows to inf
        "",
    ],
)
def test_parse_rejects_non_boxes(text):
    assert B.parse_boxes(text) == []


@pytest.mark.parametrize("value", [None, 5, 3.5, b"(1, 2, 3, 4)", ["(1, 2, 3, 4)"], object()])
def test_parse_non_strings_give_empty(value):
    assert B.parse_boxes(value) == []


def test_parse_example_completions():
    zebras = B.parse_boxes(ZEBRAS.completion)
    assert len(zebras) >= 6 and zebras == [b for _, b in ZEBRAS.objects][: len(zebras)]
    assert B.parse_boxes(CAT_ON_TRUCK.completion) == [b for _, b in CAT_ON_TRUCK.objects]
    assert B.parse_boxes(KNIFE.completion) == [b for _, b in KNIFE.objects]
    assert B.parse_boxes(MALFORMED["truncated box"]) == []
    assert B.parse_boxes(MALFORMED["no rethink"]) == [(10, 10, 50, 50), (60, 10, 99, 50)]


@given(st.text())
def test_parse_is_total(text):
    result = B.parse_boxes(text)
    assert isinstance(result, list)
    for box in result:
        assert isinstance(box, tuple) and len(box) == 4
        assert all(isinstance(v, float) and math.isfinite(v) for v in box)


_number = st.builds(lambda n, d: f"{n / 10**d:.{d}f}", st.integers(-5000, 5000), st.integers(0, 3))
_box = st.tuples(_number, _number, _number, _number)
_sep = st.sampled_from([", ", ",", " , ", ",  "])


def _render(style: str, group: list[tuple[str, ...]], sep: str) -> str:
    def join(b):
        return sep.join(b)

    if style == "paren":
        return " ".join(f"({join(b)})" for b in group)
    if style == "bracket":
        return " ".join(f"[{join(b)}]" for b in group)
    if style == "bare":
        return " and ".join(join(b) for b in group)
    if style == "json":
        return ", ".join(f'{{"bbox_2d": [{join(b)}], "label": "x"}}' for b in group)
    if style == "json_list":
        return "[" + ", ".join(f'{{"bbox_2d": [{join(b)}]}}' for b in group) + "]"
    if style == "repeated_key":
        return "{" + ", ".join(f'"bbox_2d": [{join(b)}]' for b in group) + "}"
    return "<ref>thing</ref><box>[" + ", ".join(f"[{join(b)}]" for b in group) + "]</box>"


_STYLES = ["paren", "bracket", "bare", "json", "json_list", "repeated_key", "internvl"]
_prose = st.text(alphabet="abcdefghij XYZ:;!?'\n\u00e9\u6f22", min_size=0, max_size=20).map(
    lambda s: f" w{s}w "
)


@given(
    st.lists(
        st.tuples(st.sampled_from(_STYLES), st.lists(_box, min_size=1, max_size=3), _sep, _prose),
        max_size=6,
    ),
    _prose,
)
def test_parse_recovers_rendered_boxes_in_order(groups, lead):
    text = lead
    expected = []
    for style, group, sep, prose in groups:
        text += _render(style, group, sep) + prose
        expected += [tuple(float(v) for v in b) for b in group]
    assert B.parse_boxes(text) == expected


_M = 1_000_000
# Adversaries in which no box survives the regex itself (all the work happens in C).
_FAST = ["1,", "1, ", "[", "9", "-", "1.", " ", '{"bbox_2d": [', "1,2,3,4,", "[ ", ","]
_FAST += ["1 ", "(1 , ", "<box>[[", "1, 2, 3, 4, "]
# A comma every few characters: `re` pays ~0.1-0.3 us per attempt, tens of ms per megabyte on
# a slow core. And floods of (near-)boxes, each costing a few microseconds of Python. What
# must never happen is quadratic growth.
_DENSE = ["(1, 2, 3", "-1, -2, -3 ", "a, 1, 2, 3, ", "1,2,3 ", "[1, 2, 3, 4] ", "[1, 2, 3, 4"]
_DENSE += ["((((1, 2, 3, 4)", "1, 2, 3, 4x ", "x12, 2, 3, 4 "]


def _best_of_3(text: str) -> float:
    """The parse's CPU time (this thread's, not the wall clock: a busy machine does not count)."""
    best = math.inf
    for _ in range(3):
        start = time.thread_time()
        B.parse_boxes(text)
        best = min(best, time.thread_time() - start)
    return best


@pytest.mark.parametrize("unit", _FAST)
def test_parse_adversarial_megabyte_under_100ms(unit):
    text = (unit * (_M // len(unit) + 1))[:_M]
    assert _best_of_3(text) < 0.100


@pytest.mark.parametrize("unit", _DENSE)
def test_parse_dense_numbers_scale_linearly(unit):
    small = _best_of_3((unit * (_M // 10 // len(unit) + 1))[: _M // 10])
    large = _best_of_3((unit * (_M // len(unit) + 1))[:_M])
    assert large < 2.0
    assert large < 25 * small + 0.05


# ----------------------------------------------------------------------------- coordinates


def test_qwen_resized_size_uses_smart_resize_in_width_height_order():
    assert B.qwen_resized_size(644, 420) == (644, 420)  # multiples of 28 stay
    assert B.qwen_resized_size(1288, 840, max_pixels=401408) == (784, 504)
    assert B.qwen_resized_size(1280, 960, max_pixels=401408) == (728, 532)
    assert B.qwen_resized_size(640, 354) == (644, 364)  # each side to the nearest 28
    assert B.qwen_resized_size(20, 20) == (56, 56)  # below min_pixels: scaled up
    w, h = B.qwen_resized_size(4000, 3000, max_pixels=B.QWEN_MAX_PIXELS)
    assert w % 28 == 0 and h % 28 == 0 and w * h <= B.QWEN_MAX_PIXELS and w > h


def test_qwen_conversions():
    box = B.qwen_to_original((392, 252, 784, 504), (1288, 840), (784, 504))
    assert box == pytest.approx((644, 420, 1288, 840))
    assert B.original_to_qwen((644, 420, 1288, 840), (1288, 840), (784, 504)) == pytest.approx(
        (392, 252, 784, 504)
    )


@given(
    st.integers(56, 4000),
    st.integers(56, 4000),
    st.tuples(*[st.floats(-1e4, 1e4, allow_nan=False)] * 4),
)
def test_qwen_round_trip(width, height, box):
    resized = B.qwen_resized_size(width, height, max_pixels=401408)
    there = B.original_to_qwen(box, (width, height), resized)
    back = B.qwen_to_original(there, (width, height), resized)
    assert back == pytest.approx(box, abs=1e-6)


def test_internvl_conversions():
    assert B.internvl_to_pixels((0, 500, 1000, 250), 640, 480) == (0, 240, 640, 120)
    assert B.pixels_to_internvl((0, 240, 640, 120), 640, 480) == (0, 500, 1000, 250)
    assert B.pixels_to_internvl((1, 1, 2, 2), 3000, 3000) == (0, 0, 1, 1)  # rounded ints
    assert all(isinstance(v, int) for v in B.pixels_to_internvl((3.3, 4, 5, 6), 7, 8))


@given(
    st.integers(1, 5000),
    st.integers(1, 5000),
    st.tuples(*[st.integers(0, 1000)] * 4),
    st.tuples(*[st.floats(0, 5000, allow_nan=False)] * 4),
)
def test_internvl_round_trips(width, height, norm, pixels):
    assert B.pixels_to_internvl(B.internvl_to_pixels(norm, width, height), width, height) == norm
    back = B.internvl_to_pixels(B.pixels_to_internvl(pixels, width, height), width, height)
    for got, want, side in zip(back, pixels, (width, height) * 2, strict=True):
        assert abs(got - want) <= side / 2000 + 1e-9


def test_normalize_clip_degenerate():
    assert B.normalize_box((10, 20, 0, 5)) == (0, 5, 10, 20)
    assert B.clip_box((-5, 20, 700, -3), 640, 480) == (0, 0, 640, 20)
    assert B.clip_box((10, 10, 20, 20), 640, 480) == (10, 10, 20, 20)
    assert B.is_degenerate((1, 1, 1, 5)) and B.is_degenerate((1, 1, 5, 1))
    assert B.is_degenerate((5, 1, 1, 5))  # negative width
    assert B.is_degenerate((0, 0, math.inf, 1)) and B.is_degenerate((0, 0, math.nan, 1))
    assert not B.is_degenerate((0, 0, 0.5, 0.5))


# ----------------------------------------------------------------------------- IoU, matching


def test_box_iou_exact_values():
    assert B.box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert B.box_iou((0, 0, 2, 1), (1, 0, 3, 1)) == pytest.approx(1 / 3)
    assert B.box_iou((0, 0, 10, 10), (2, 2, 4, 4)) == pytest.approx(0.04)
    assert B.box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0
    assert B.box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert B.box_iou((2, 1, 0, 0), (1, 0, 3, 1)) == pytest.approx(1 / 3)  # swapped corners


@pytest.mark.parametrize(
    "bad", [(4, 4, 4, 4), (0, 0, 0, 10), (0, 0, math.inf, 1), (math.nan, 0, 1, 1)]
)
def test_box_iou_degenerate_is_zero_not_nan(bad):
    assert B.box_iou(bad, bad) == 0.0
    assert B.box_iou(bad, (0, 0, 10, 10)) == 0.0


def test_iou_matrix_shape_and_values():
    m = B.iou_matrix([(0, 0, 2, 1), (5, 5, 6, 6)], [(1, 0, 3, 1), (0, 0, 2, 1), (9, 9, 9, 9)])
    assert tuple(m.shape) == (2, 3)
    assert m.flatten().tolist() == pytest.approx([1 / 3, 1.0, 0.0, 0.0, 0.0, 0.0])
    assert tuple(B.iou_matrix([], [(0, 0, 1, 1)]).shape) == (0, 1)
    assert tuple(B.iou_matrix([(0, 0, 1, 1)], []).shape) == (1, 0)


def test_match_boxes_is_hungarian_not_greedy():
    # Greedy takes the best pair first, pred 0 with gt 0 (IoU 2/3), leaving pred 1 with
    # gt 1 (IoU 0): total 2/3. The best total pairs pred 0 with gt 1 (3/7), pred 1 with gt 0.
    gts = [(0, 0, 10, 4), (6, 0, 16, 4)]
    preds = [(2, 0, 12, 4), (0, 0, 6, 4)]
    assert B.box_iou(preds[0], gts[0]) == pytest.approx(2 / 3)
    assert B.box_iou(preds[1], gts[1]) == 0.0
    pairs = B.match_boxes(preds, gts)
    assert [(p, g) for p, g, _ in pairs] == [(1, 0), (0, 1)]  # in gt order
    assert [iou for *_, iou in pairs] == pytest.approx([0.6, 3 / 7])
    assert B.match_boxes([], gts) == [] and B.match_boxes(preds, []) == []


def test_match_boxes_pairs_min_count_in_gt_order():
    gts = [(10, 10, 20, 20), (0, 0, 5, 5), (30, 30, 40, 40)]
    preds = [(0, 0, 5, 5), (30, 30, 40, 40)]
    assert B.match_boxes(preds, gts) == [(0, 1, 1.0), (1, 2, 1.0)]


def test_grounding_scores_values():
    gts = [(0, 0, 10, 10), (20, 0, 30, 10)]
    perfect = B.grounding_scores(gts, gts)
    assert perfect == {"mean_iou": 1.0, "precision": 1.0, "recall": 1.0}
    extra = B.grounding_scores(gts + [(50, 50, 60, 60)], gts)
    assert extra == pytest.approx({"mean_iou": 2 / 3, "precision": 2 / 3, "recall": 1.0})
    missing = B.grounding_scores(gts[:1], gts)
    assert missing == pytest.approx({"mean_iou": 0.5, "precision": 1.0, "recall": 0.5})
    # One box half-overlapping (IoU 1/3): below the 0.5 threshold, above 0.3.
    half = B.grounding_scores([(5, 0, 15, 10)], [(0, 0, 10, 10)])
    assert half == pytest.approx({"mean_iou": 1 / 3, "precision": 0.0, "recall": 0.0})
    low = B.grounding_scores([(5, 0, 15, 10)], [(0, 0, 10, 10)], threshold=0.3)
    assert low == pytest.approx({"mean_iou": 1 / 3, "precision": 1.0, "recall": 1.0})


def test_grounding_scores_empty_conventions():
    box = [(0, 0, 1, 1)]
    assert B.grounding_scores([], []) == {"mean_iou": 1.0, "precision": 1.0, "recall": 1.0}
    assert B.grounding_scores([], box) == {"mean_iou": 0.0, "precision": 0.0, "recall": 0.0}
    assert B.grounding_scores(box, []) == {"mean_iou": 0.0, "precision": 0.0, "recall": 1.0}
