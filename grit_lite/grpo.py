"""GRPO-GR's objective, from scratch in plain torch.

GRPO (Group Relative Policy Optimization) is PPO without a value model. For each prompt
we sample a *group* of G completions, score each with rule-based rewards, and use the
reward relative to the group as the advantage of every token of that completion:

    A_i = (r_i - mean(r_group)) / (std(r_group) + eps)

The loss per completion token t is the clipped PPO surrogate plus a KL penalty towards a
frozen reference model:

    loss_t = -( min(ratio_t * A, clip(ratio_t, 1 - eps_low, 1 + eps_high) * A)
                - beta * KL_k3(t) )

and the per-token losses are averaged in one of several ways (``loss_type``). Everything
here works on tensors of shape ``(batch, completion_length)`` with a 0/1 ``mask`` that
marks the real (non-padding) completion tokens; rows come in consecutive groups of G
completions of the same prompt, the layout TRL's ``GRPOTrainer`` uses. The formulas and
names follow TRL 1.16's ``GRPOTrainer`` so that ``tests/test_trl_parity.py`` can check
that this file and TRL compute the same number.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

LOSS_TYPES = ("grpo", "bnpo", "dapo", "dr_grpo")


def group_advantages(
    rewards: torch.Tensor | Sequence[float],
    group_size: int,
    eps: float = 1e-4,
    scale: bool = True,
) -> torch.Tensor:
    """Advantages from rewards, normalised within each group of ``group_size`` completions.

    Why: PPO needs a baseline to tell "better than expected" from "worse". GRPO uses the
    mean reward of the other samples of the *same prompt* instead of a learned value
    model, so a completion is pushed up exactly when it beat its siblings. Dividing by
    the group's standard deviation (unbiased, n - 1, as ``torch.std`` and TRL do) makes
    every prompt contribute on the same scale; ``eps`` (1e-4, TRL's value) keeps a group
    whose rewards are all equal at advantage 0 instead of 0 / 0. ``scale=False`` skips
    the division (Dr. GRPO, TRL's ``scale_rewards="none"``): the std scaling up-weights
    prompts that are almost always solved or almost never, a difficulty bias.

    ``rewards`` is flat, ``(num_prompts * group_size,)``, with each prompt's completions
    consecutive; the result has the same shape. A group of size 1 has no spread, so its
    advantage is 0.
    """
    rewards = torch.as_tensor(rewards)
    if not rewards.is_floating_point():
        rewards = rewards.float()
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be flat (1-D), got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"{rewards.numel()} rewards cannot be split into groups of {group_size}: the number "
            "of rewards must be a multiple of group_size (num_prompts * num_generations)."
        )
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(dim=1, keepdim=True)
    advantages = grouped - mean
    if scale:
        if group_size > 1:
            std = grouped.std(dim=1, keepdim=True)  # unbiased: divides by n - 1
        else:
            std = torch.zeros_like(mean)
        advantages = advantages / (std + eps)
    return advantages.view(-1)


def completion_logprobs(
    logits: torch.Tensor, completion_ids: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Log-probability of each completion token under the model, ``(batch, completion_len)``.

    ``logits`` are the model's output for the whole ``prompt + completion`` sequence,
    ``(batch, seq_len, vocab)``, and ``completion_ids`` are its last ``completion_len``
    tokens. A causal LM's logits at position ``p`` predict the token at ``p + 1``, so the
    token at position ``p`` is scored by the logits one position *earlier*: the completion
    occupying positions ``seq_len - C .. seq_len - 1`` is scored by the logits at
    ``seq_len - C - 1 .. seq_len - 2``. The last position's logits (the token after the
    sequence) are not used.

    The logits are divided by the sampling ``temperature`` before the softmax, as TRL
    does: the policy that generated the completions is ``softmax(logits / T)``, so that
    is the distribution whose log-probabilities the ratio and the KL must use.
    """
    length = completion_ids.size(1)
    scored = logits[:, -length - 1 : -1, :].float() / temperature
    logp = F.log_softmax(scored, dim=-1)
    return logp.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of KL(policy || reference): ``exp(d) - d - 1`` with ``d = ref - logp``.

    Why "k3" (Schulman's third estimator): the naive ``logp - ref`` is unbiased for the
    KL of tokens sampled from the policy but is negative half the time, so it is noisy.
    ``exp(d) - d - 1`` has the same expectation (``E[exp(d)] = 1`` under the policy) and
    is never negative, because ``exp(d) >= 1 + d``; it is 0 exactly when the two models
    agree on the token. Its gradient pulls ``logp`` towards ``ref_logp``.
    """
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def importance_ratio(logp: torch.Tensor, old_logp: torch.Tensor) -> torch.Tensor:
    """``pi_theta / pi_old`` per token, computed as ``exp(logp - old_logp)``.

    PPO reuses a batch for several updates; the ratio corrects for the policy having
    moved since the batch was sampled. GRIT makes one update per generation batch, so
    ``old_logp`` *is* ``logp.detach()``: the ratio is exactly 1 in value, yet its gradient
    is ``d logp`` -- the REINFORCE gradient ``A * grad log pi``.
    """
    return torch.exp(logp - old_logp)


def clipped_surrogate(
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
) -> torch.Tensor:
    """PPO's pessimistic objective ``min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A)``.

    The clip removes the incentive to move a token's probability further once the ratio
    left ``[1 - eps_low, 1 + eps_high]`` in the direction the advantage favours (above
    ``1 + eps_high`` for A > 0, below ``1 - eps_low`` for A < 0): there the clipped term is
    the smaller one and it is constant, so its gradient is 0. With ratio == 1 (GRIT's one
    update per batch) ``clip(1) == 1``, both terms are equal and clipping never binds.
    ``epsilon_high`` defaults to ``epsilon_low`` (DAPO's "clip higher" sets it larger).
    """
    epsilon_high = epsilon_low if epsilon_high is None else epsilon_high
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    return torch.min(ratio * advantages, clipped * advantages)


def aggregate(
    per_token_loss: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
) -> torch.Tensor:
    """Reduce ``(batch, length)`` per-token losses to a scalar, the way TRL's ``loss_type`` does.

    - ``grpo``: mean over each completion's tokens, then mean over completions (GRIT's
      choice). Every completion weighs the same, so each token of a long completion
      weighs less: a long wrong answer is punished less per token than a short one.
    - ``bnpo`` / ``dapo``: sum over all tokens of the batch / number of tokens. Every
      token weighs the same. (TRL's ``dapo`` divides by the token count of the whole
      generation batch across processes and accumulation steps; on one process with one
      step per generation batch, as here, that is the same number as ``bnpo``.)
    - ``dr_grpo``: sum / (batch * max_completion_length), a constant denominator, so no
      length weighting at all (Dr. GRPO). TRL uses the config's ``max_completion_length``;
      by default we use the padded length ``mask.size(1)``.
    """
    mask = mask.to(per_token_loss.dtype)
    masked = per_token_loss * mask
    if loss_type == "grpo":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type in ("bnpo", "dapo"):
        return masked.sum() / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        length = mask.size(1) if max_completion_length is None else max_completion_length
        return masked.sum() / (mask.size(0) * length)
    raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {LOSS_TYPES}")


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    beta: float = 0.01,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
) -> torch.Tensor:
    """The GRPO loss to minimise, a scalar.

    Per token: ``-(min(ratio * A, clip(ratio) * A) - beta * KL_k3)``, then
    :func:`aggregate` by ``loss_type``. Shapes: ``logp``, ``old_logp``, ``ref_logp`` and
    ``mask`` are ``(batch, length)``; ``advantages`` is ``(batch,)`` (one per completion,
    shared by all its tokens). ``old_logp=None`` means "sampled by the current policy"
    (GRIT): it becomes ``logp.detach()`` and the ratio is 1. ``ref_logp`` may be None
    only when ``beta == 0`` (no reference model, TRL's default).
    """
    if old_logp is None:
        old_logp = logp.detach()
    ratio = importance_ratio(logp, old_logp)
    per_token_loss = -clipped_surrogate(ratio, advantages.unsqueeze(-1), epsilon, epsilon_high)
    if beta != 0.0:
        if ref_logp is None:
            raise ValueError("beta != 0 needs ref_logp, the reference model's log-probabilities")
        per_token_loss = per_token_loss + beta * kl_k3(logp, ref_logp)
    return aggregate(per_token_loss, mask, loss_type, max_completion_length)


@torch.no_grad()
def grpo_metrics(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
) -> dict[str, float]:
    """What to log next to the loss: mean KL to the reference and how often clipping binds.

    ``clip_fraction`` counts tokens where the clipped term is the smaller one *and*
    differs from the unclipped one (it is 0 whenever the ratio is 1, i.e. in GRIT).
    """
    old_logp = logp if old_logp is None else old_logp
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    mask = mask.to(logp.dtype)
    tokens = mask.sum().clamp(min=1.0)
    ratio = importance_ratio(logp, old_logp)
    adv = advantages.unsqueeze(-1)
    binds = ((ratio > 1 + epsilon_high) & (adv > 0)) | ((ratio < 1 - epsilon) & (adv < 0))
    metrics = {"clip_fraction": float((binds * mask).sum() / tokens)}
    if ref_logp is not None:
        metrics["kl"] = float((kl_k3(logp, ref_logp) * mask).sum() / tokens)
    return metrics
