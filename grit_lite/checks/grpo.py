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
        hint="View the rewards as (num_groups, group_size) with .view(-1, group_size); subtract "
        "each row's mean and divide by (row std + 1e-4), where std is the unbiased one "
        "(n - 1 in the denominator, torch's default .std(dim=1, keepdim=True)); flatten back "
        "with .view(-1).",
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
        hint="With d = ref_logp - logp (reference minus policy, in that order), return "
        "torch.exp(d) - d - 1 elementwise. It is 0 where the two agree and never negative.",
        tol=1e-5,
    )
