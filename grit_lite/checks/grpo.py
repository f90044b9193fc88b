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
