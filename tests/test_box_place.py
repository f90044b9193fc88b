"""The opt-in box-place reward (``--rewards grit+iou``): exact values, worked by hand."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grit_lite import rewards, train

GT = [10.0, 10.0, 50.0, 50.0]  # 40 x 40 = 1600 px


def _said(*boxes: list[float], answer: str = "1") -> str:
    listed = ", ".join(json.dumps({"bbox_2d": [int(v) for v in b]}) for b in boxes)
    return f"<think>[{listed}]</think> <rethink>so</rethink> <answer>{answer}</answer>"


@pytest.mark.parametrize(
    ("boxes", "truth", "expected"),
    [
        ([GT], [GT], 1.0),
        # shifted 20 px: intersection 20 x 40 = 800, union 1600 + 1600 - 800 = 2400
        ([[30, 10, 70, 50]], [GT], 1 / 3),
        ([GT], [GT, [100, 100, 140, 140]], 0.5),  # a missing box counts as IoU 0
        ([GT, [200, 200, 220, 220]], [GT], 0.5),  # an extra box costs as much
        ([GT] * 4, [GT], 0.25),  # four copies of the right box: one matches
        ([], [GT], 0.0),  # objects exist, no box drawn
    ],
)
def test_matched_iou_over_the_larger_count(boxes, truth, expected):
    text = _said(*boxes) if boxes else "<think>none</think> <rethink>so</rethink> <answer>1"
    assert rewards.box_place_score(text, truth, (224, 224), (224, 224)) == pytest.approx(expected)


def test_boxes_are_read_in_the_pixels_the_model_saw():
    half = _said([5, 5, 25, 25])  # the model saw the 224 px image at 112 px
    assert rewards.box_place_score(half, [GT], (224, 224), (112, 112)) == pytest.approx(1.0)
    assert rewards.box_place_score(half, [GT], (224, 224), (224, 224)) == pytest.approx(
        (15 * 15) / (1600 + 400 - 225)
    )


def test_only_think_boxes_count():
    text = '<think>look</think> <rethink>[{"bbox_2d": [10, 10, 50, 50]}]</rethink> <answer>1'
    assert rewards.box_place_score(text, [GT], (224, 224), (224, 224)) == 0.0


def test_trl_signature_and_answer_zero_questions():
    reward = rewards.make_box_place_reward()
    completions = [_said(GT), _said(answer="0"), _said(GT, answer="0"), _said(GT)]
    out = reward(
        completions,
        bboxs=[[GT], [], [], []],
        width=[224] * 4,
        height=[224] * 4,
        answer=["1", "0", "0", "yes"],
        dataset=["tallyqa", "tallyqa", "tallyqa", "vsr"],
    )
    # boxed right; nothing to box and none drawn; a box where there is nothing; no annotation
    assert out == [pytest.approx(1.0), 1.0, 0.0, 0.0]
    assert rewards.REWARD_MAX["box_place_reward"] == 1.0


def test_the_reward_set_adds_it_to_grits_six():
    fns = train.reward_functions("grit+iou")
    assert fns[:6] == list(rewards.GRIT_REWARDS)
    assert len(fns) == 7 and fns[6].__name__ == "box_place_reward"
    with pytest.raises(train.TrainError, match="grit\\+iou"):
        train.reward_functions("iou")


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), w=st.integers(-5, 3000), h=st.integers(-5, 3000))
def test_total_on_any_string(text, w, h):
    value = rewards.box_place_score(text, [GT], (w, h))
    assert 0.0 <= value <= 1.0
    out = rewards.box_place_reward([text], bboxs=[[GT]], width=[w], height=[h])
    assert len(out) == 1 and 0.0 <= out[0] <= 1.0
