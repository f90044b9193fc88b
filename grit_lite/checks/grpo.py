"""Checkers for notebook 04's exercises (group advantages and the k3 KL estimator)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from grit_lite import grpo
from grit_lite.checks import check_cases


def _advantage_cases() -> list[tuple[torch.Tensor, int]]:
    generator = torch.Generator().manual_seed(0)
    return [
        (torch.tensor([1.0, 0.0, 0.0, 0.0]), 4),  # one success out of four
        (torch.tensor([1.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5]), 4),  # second group all equal
        (torch.tensor([0.2, 4.1, 1.0, 2.5, 3.0, 0.0]), 3),
        (torch.tensor([1.0, 2.0]), 2),
        (4.1 * torch.rand(16, generator=generator), 8),
    ]


def check_group_advantages(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """The student's ``fn(rewards, group_size)``: flat rewards in, flat advantages out."""
    check_cases(
        "group_advantages",
        fn,
        _advantage_cases(),
        grpo.group_advantages,
        hint=(
            "Each prompt's completions are compared only with each other: centre and scale "
            "every group of group_size consecutive rewards on its own.",
            "Reshape the flat tensor into one row per group, take each row's mean and "
            "unbiased std (torch's default), compute (r - mean) / (std + 1e-4) with "
            "keepdim so shapes broadcast, and flatten the result back.",
        ),
        tol=1e-5,
    )


def _kl_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    logp = -3 * torch.rand(2, 5, generator=generator)
    ref = -3 * torch.rand(2, 5, generator=generator)
    half, quarter = torch.tensor(0.5).log(), torch.tensor(0.25).log()
    return [
        (torch.tensor([-1.0, -2.0, -0.1]), torch.tensor([-1.0, -2.0, -0.1])),  # same model: 0
        (torch.stack([half, quarter]), torch.stack([quarter, half])),
        (logp, ref),  # (batch, length), as in the loss
    ]


def check_kl_k3(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """The student's ``fn(logp, ref_logp)``: the per-token k3 KL estimate, same shape."""
    check_cases(
        "kl_k3",
        fn,
        _kl_cases(),
        grpo.kl_k3,
        hint=(
            "k3 is a function of the log-ratio between the reference and the policy for "
            "each token; it is 0 where they agree and never negative.",
            "Take d as reference log-prob minus policy log-prob (that order), then apply "
            "the formula of section 4 elementwise with torch operations.",
        ),
        tol=1e-5,
    )


# The toy policy of notebook 04, section 6: six whole "completions" with fixed rewards.
TOY_REWARDS = (0.0, 0.5, 1.0, 2.1, 3.1, 4.1)
TOY_INITIAL = (2.0, 1.5, 1.0, 0.0, -0.5, -1.0)  # prefers the bad completions


def toy_grpo(
    lr: float = 0.1,
    steps: int = 100,
    beta: float = 0.01,
    group_size: int = 4,
    prompts: int = 2,
    seed: int = 0,
) -> tuple[list[float], list[float]]:
    """Notebook 04's toy GRPO run with one knob changed: train six logits with
    :func:`grit_lite.grpo.grpo_loss` (``prompts`` x ``group_size`` samples a step, Adam).

    Returns the expected reward before each step and the final policy's probabilities.
    A fraction of a second on a CPU.
    """
    rewards = torch.tensor(TOY_REWARDS)
    initial = torch.tensor(TOY_INITIAL)
    logits = torch.nn.Parameter(initial.clone())
    optimizer = torch.optim.Adam([logits], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    expected = []
    for _ in range(steps):
        policy = torch.softmax(logits, dim=-1)
        expected.append((policy * rewards).sum().item())
        picks = torch.multinomial(
            policy.detach(), prompts * group_size, replacement=True, generator=generator
        )
        advantages = grpo.group_advantages(rewards[picks], group_size)
        logp = torch.log_softmax(logits, dim=-1)[picks].unsqueeze(1)
        ref_logp = torch.log_softmax(initial, dim=-1)[picks].unsqueeze(1)
        loss = grpo.grpo_loss(logp, None, ref_logp, advantages, torch.ones_like(logp), beta=beta)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return expected, torch.softmax(logits, dim=-1).detach().tolist()


def _toy_preferred(lr: float, group_size: int) -> tuple[int, float]:
    expected, policy = toy_grpo(lr=lr, group_size=group_size)
    return max(range(len(policy)), key=policy.__getitem__), round(expected[-1], 2)


def check_toy_experiment(fn: Callable[[float, int], tuple[int, float]]) -> None:
    """The student runs the toy policy with a changed learning rate and group size and
    reports which completion it ends up preferring and its last expected reward."""
    check_cases(
        "toy_experiment",
        fn,
        [(0.1, 4), (0.3, 4), (0.03, 4), (0.3, 8), (0.1, 2)],
        _toy_preferred,
        hint=(
            "Run the experiment with the knobs you are given, then read two things off "
            "it: the completion the final policy puts the most probability on, and the "
            "expected reward at the last step.",
            "toy_grpo(lr=..., group_size=...) returns (expected rewards per step, final "
            "policy). The preferred completion is the index of the largest probability; "
            "round the last expected reward to 2 decimals.",
        ),
        tol=1e-9,
    )
