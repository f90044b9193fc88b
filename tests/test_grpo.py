"""grit_lite.grpo against values derived by hand (parity with TRL: test_trl_parity.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from grit_lite.checks import ExerciseFailed
from grit_lite.checks.grpo import check_group_advantages, check_kl_k3
from grit_lite.grpo import (
    aggregate,
    clipped_surrogate,
    completion_logprobs,
    group_advantages,
    grpo_loss,
    grpo_metrics,
    importance_ratio,
    kl_k3,
)

# ---------------------------------------------------------------- group advantages


def test_one_success_in_four() -> None:
    # mean 0.25; deviations .75, -.25, -.25, -.25; unbiased variance (.5625 + 3 * .0625) / 3
    # = .25, std .5; so A = deviation / (0.5 + 1e-4) = deviation / 0.5001.
    advantages = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4)
    expected = [0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001]
    assert advantages.tolist() == pytest.approx(expected, abs=1e-6)
    assert advantages[0].item() == pytest.approx(1.49970006, abs=1e-6)


def test_without_std_scaling_advantages_are_centred_rewards() -> None:
    advantages = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4, scale=False)
    assert advantages.tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25], abs=1e-7)


def test_groups_are_consecutive_and_independent() -> None:
    # group 1 as above; group 2 all equal -> exactly zero (0 / (0 + eps)), not NaN
    advantages = group_advantages([1.0, 0.0, 0.0, 0.0, 3.0, 3.0, 3.0, 3.0], 4)
    assert advantages.shape == (8,)
    assert advantages[:4].tolist() == pytest.approx([1.4997, -0.4999, -0.4999, -0.4999], abs=1e-4)
    assert advantages[4:].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_two_rewards_per_group() -> None:
    # [0, 2]: mean 1, unbiased std sqrt(2) -> -+1 / (sqrt(2) + 1e-4)
    advantages = group_advantages(torch.tensor([0.0, 2.0]), 2)
    expected = 1 / (math.sqrt(2) + 1e-4)
    assert advantages.tolist() == pytest.approx([-expected, expected], abs=1e-6)


def test_integer_rewards_and_group_of_one() -> None:
    assert group_advantages(torch.tensor([1, 0]), 2).dtype == torch.float32
    assert group_advantages(torch.tensor([5.0, 1.0]), 1).tolist() == [0.0, 0.0]


@pytest.mark.parametrize(("n", "group_size"), [(5, 4), (3, 2), (4, 0)])
def test_rewards_must_fill_whole_groups(n: int, group_size: int) -> None:
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_advantages(torch.zeros(n), group_size)


# ------------------------------------------------------------------ log-probabilities


def test_completion_logprobs_use_the_previous_position() -> None:
    # sequence: prompt [0], completion [1, 0]; vocab of 2. Logits at position 0 predict
    # the token at position 1, position 1 predicts position 2; position 2 is unused.
    logits = torch.tensor([[[0.0, math.log(3)], [math.log(4), 0.0], [100.0, -100.0]]])
    logp = completion_logprobs(logits, torch.tensor([[1, 0]]))
    assert logp.shape == (1, 2)
    assert logp.flatten().tolist() == pytest.approx([math.log(3 / 4), math.log(4 / 5)], abs=1e-6)


def test_completion_logprobs_divide_by_temperature() -> None:
    logits = torch.tensor([[[0.0, math.log(3)], [math.log(4), 0.0], [100.0, -100.0]]])
    logp = completion_logprobs(logits, torch.tensor([[1, 0]]), temperature=2.0)
    # softmax([0, log 3] / 2)[1] = sqrt(3) / (1 + sqrt(3)); softmax([log 2, 0])[0] = 2 / 3
    root3 = math.sqrt(3)
    expected = [math.log(root3 / (1 + root3)), math.log(2 / 3)]
    assert logp.flatten().tolist() == pytest.approx(expected, abs=1e-6)


# ------------------------------------------------------------------------------- KL


def test_kl_k3_is_zero_when_models_agree_and_positive_otherwise() -> None:
    logp = torch.tensor([-0.1, -1.0, -3.0])
    assert kl_k3(logp, logp).tolist() == [0.0, 0.0, 0.0]
    other = torch.tensor([-0.5, -0.2, -3.5])
    assert (kl_k3(logp, other) > 0).all()
    # log 0.5 vs log 0.25: d = log 0.5, exp(d) - d - 1 = 0.5 + log 2 - 1
    value = kl_k3(torch.tensor(math.log(0.5)), torch.tensor(math.log(0.25)))
    assert value.item() == pytest.approx(math.log(2) - 0.5, abs=1e-6)


def test_kl_k3_averages_to_the_exact_kl() -> None:
    # Weighted by the policy's probabilities, k3 sums to KL(p || ref) exactly.
    p, ref = torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert (p * kl_k3(p.log(), ref.log())).sum().item() == pytest.approx(expected, abs=1e-6)


# ------------------------------------------------------------------ ratio and clipping


def test_clip_binds_above_one_plus_epsilon_for_positive_advantage() -> None:
    logp = torch.tensor([math.log(1.5)], requires_grad=True)
    ratio = importance_ratio(logp, torch.tensor([0.0]))
    objective = clipped_surrogate(ratio, torch.tensor([1.0]), epsilon_low=0.2)
    assert objective.item() == pytest.approx(1.2)  # clip(1.5) * 1, not 1.5
    (grad,) = torch.autograd.grad(objective.sum(), logp)
    assert grad.item() == 0.0  # no incentive to push further


def test_clip_does_not_bind_in_the_harmful_direction() -> None:
    ratio = torch.tensor([1.5, 0.5, 0.5])
    advantages = torch.tensor([-1.0, -1.0, 1.0])
    # ratio 1.5 with A < 0: the unclipped -1.5 is smaller (pessimistic); ratio 0.5 with
    # A < 0: clipped -0.8 binds; ratio 0.5 with A > 0: unclipped 0.5.
    objective = clipped_surrogate(ratio, advantages, epsilon_low=0.2)
    assert objective.tolist() == pytest.approx([-1.5, -0.8, 0.5])
    assert clipped_surrogate(torch.tensor([1.25]), torch.tensor([1.0]), 0.2, 0.28).item() == (
        pytest.approx(1.25)
    )  # DAPO's clip-higher: 1.25 < 1 + 0.28


def test_one_update_per_batch_means_ratio_one_and_reinforce_gradient() -> None:
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    ratio = importance_ratio(logp, logp.detach())
    assert ratio.tolist() == [[1.0, 1.0]]
    loss = grpo_loss(logp, None, None, torch.tensor([3.0]), torch.ones(1, 2), beta=0.0)
    (grad,) = torch.autograd.grad(loss, logp)
    assert grad.tolist() == [[-1.5, -1.5]]  # -A / length: REINFORCE, clipping inert
    assert grpo_metrics(logp, None, None, torch.tensor([3.0]), torch.ones(1, 2)) == {
        "clip_fraction": 0.0
    }


# ---------------------------------------------------------------------- aggregation

# Two completions of lengths 1 and 3, padded to 3.
MASK = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])


def test_aggregations_of_per_token_losses() -> None:
    per_token = torch.tensor([[2.0, 9.0, 9.0], [1.0, 1.0, 1.0]])  # 9s are padding
    assert aggregate(per_token, MASK, "grpo").item() == pytest.approx((2 / 1 + 3 / 3) / 2)  # 1.5
    assert aggregate(per_token, MASK, "bnpo").item() == pytest.approx((2 + 3) / 4)  # 1.25
    assert aggregate(per_token, MASK, "dapo").item() == pytest.approx(1.25)
    assert aggregate(per_token, MASK, "dr_grpo", 4).item() == pytest.approx(5 / (2 * 4))
    assert aggregate(per_token, MASK, "dr_grpo").item() == pytest.approx(5 / (2 * 3))
    with pytest.raises(ValueError, match="unknown loss_type"):
        aggregate(per_token, MASK, "ppo")


@pytest.mark.parametrize(
    ("loss_type", "short", "long"),
    [
        ("grpo", -1 / 2, 1 / 6),  # per sequence: 1/len, then 1/batch
        ("bnpo", -1 / 4, 1 / 4),  # every token 1/4 (4 tokens)
        ("dr_grpo", -1 / 8, 1 / 8),  # every token 1/(2 * max_completion_length 4)
    ],
)
def test_length_bias_of_the_gradient(loss_type: str, short: float, long: float) -> None:
    # A short good completion (A = +1) and a long bad one (A = -1). With "grpo" each token
    # of the long one is pushed down 3 times less than the short one's token is pushed up.
    logp = torch.full((2, 3), -1.0, requires_grad=True)
    advantages = torch.tensor([1.0, -1.0])
    loss = grpo_loss(
        logp, None, None, advantages, MASK, 0.0, loss_type=loss_type, max_completion_length=4
    )
    (grad,) = torch.autograd.grad(loss, logp)
    assert grad.flatten().tolist() == pytest.approx([short, 0, 0, long, long, long])


def test_grpo_loss_adds_beta_times_kl() -> None:
    # one token, ratio 1, A = 2, KL_k3(log .5, log .25) = log 2 - 0.5
    logp = torch.tensor([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]])
    loss = grpo_loss(logp, None, ref, torch.tensor([2.0]), torch.ones(1, 1), beta=0.1)
    assert loss.item() == pytest.approx(-2.0 + 0.1 * (math.log(2) - 0.5), abs=1e-6)
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(logp, None, None, torch.tensor([2.0]), torch.ones(1, 1), beta=0.1)


def test_grpo_loss_clips_off_policy_tokens() -> None:
    # old probability 0.5, new 0.9: ratio 1.8, A = 1 -> objective clip(1.8) = 1.2; the
    # second token (ratio 1) gives 1; grpo mean over 2 tokens: -(1.2 + 1) / 2.
    logp = torch.tensor([[math.log(0.9), -1.0]])
    old = torch.tensor([[math.log(0.5), -1.0]])
    loss = grpo_loss(logp, old, None, torch.tensor([1.0]), torch.ones(1, 2), beta=0.0)
    assert loss.item() == pytest.approx(-1.1, abs=1e-6)
    metrics = grpo_metrics(logp, old, None, torch.tensor([1.0]), torch.ones(1, 2))
    assert metrics["clip_fraction"] == pytest.approx(0.5)


# ------------------------------------------------------------------------- checkers


def test_checkers_pass_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    check_group_advantages(lambda rewards, group_size: group_advantages(rewards, group_size))
    check_kl_k3(kl_k3)
    assert capsys.readouterr().out.count("PASSED") == 2


def _biased_std(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    grouped = rewards.view(-1, group_size)
    centred = grouped - grouped.mean(1, keepdim=True)
    return (centred / (grouped.std(1, unbiased=False, keepdim=True) + 1e-4)).view(-1)


def _no_eps(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    grouped = rewards.view(-1, group_size)
    return ((grouped - grouped.mean(1, keepdim=True)) / grouped.std(1, keepdim=True)).view(-1)


@pytest.mark.parametrize("wrong", [_biased_std, _no_eps, lambda r, g: r - r.mean()])
def test_group_advantages_checker_catches_mistakes(wrong: Callable[..., torch.Tensor]) -> None:
    with pytest.raises(ExerciseFailed):
        check_group_advantages(wrong)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda logp, ref: logp - ref,  # k1: unbiased but can be negative
        lambda logp, ref: torch.exp(logp - ref) - (logp - ref) - 1,  # sign of d flipped
    ],
)
def test_kl_checker_catches_mistakes(wrong: Callable[..., torch.Tensor]) -> None:
    with pytest.raises(ExerciseFailed):
        check_kl_k3(wrong)


def test_checker_reports_unfinished_exercise(capsys: pytest.CaptureFixture[str]) -> None:
    def unfinished(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    with pytest.raises(ExerciseFailed):
        check_kl_k3(unfinished)
    assert "not implemented" in capsys.readouterr().out
