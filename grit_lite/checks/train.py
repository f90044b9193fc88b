"""Checkers for notebook 06's exercises (the batch shape of a run and dead groups)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

from grit_lite import train
from grit_lite.checks import check_cases


def _split(completions: int, world_size: int, max_per_device: int) -> tuple[int, int]:
    preset = dataclasses.replace(
        train.PRESETS["qwen2.5-vl-3b"],
        completions_per_step=completions,
        max_per_device=max_per_device,
    )
    return train.batch_split(preset, world_size)


def check_batch_split(fn: Callable[[int, int, int], tuple[int, int]]) -> None:
    """``fn(completions_per_step, world_size, max_per_device)`` -> (per-device batch, accum)."""
    cases = [(8, 1, 4), (8, 8, 4), (8, 2, 4), (8, 4, 1), (16, 1, 16), (16, 2, 3), (12, 1, 5)]
    check_cases(
        "batch_split",
        fn,
        cases,
        _split,
        hint=(
            "The completions of one step are shared out between the processes; each "
            "process runs its share in equal micro-batches that fit in memory.",
            "A process's share is completions // world_size. Take the largest per-device "
            "batch <= max_per_device that divides the share evenly; the accumulation steps "
            "are how many such batches make the share.",
        ),
    )


def zero_std_fraction(rewards: Sequence[float], group_size: int) -> float:
    """Reference: the fraction of groups whose rewards are all equal (no GRPO signal)."""
    groups = [rewards[i : i + group_size] for i in range(0, len(rewards), group_size)]
    return sum(max(g) - min(g) < 1e-9 for g in groups) / len(groups)


def check_zero_std_fraction(fn: Callable[[Sequence[float], int], float]) -> None:
    """``fn(rewards, group_size)``: TRL's ``frac_reward_zero_std`` for one step's rewards."""
    cases = [
        ([0.5, 0.5, 0.5, 0.5], 4),
        ([0.5, 0.5, 0.5, 0.6], 4),
        ([1.0, 1.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0], 4),
        ([0.1, 0.2, 0.3, 0.3, 0.3, 0.3], 2),
        ([3.0], 1),
    ]
    check_cases(
        "zero_std_fraction",
        fn,
        cases,
        zero_std_fraction,
        hint=(
            "A group teaches nothing when all its completions scored the same; count such groups.",
            "Cut the flat list into consecutive slices of group_size; a slice is dead when "
            "its max equals its min. Return dead slices / all slices.",
        ),
    )


@functools.cache
def sampled_think_rewards(group_size: int, groups: int = 3, seed: int = 0) -> tuple[float, ...]:
    """The think/rethink reward of ``groups`` groups of ``group_size`` completions, sampled
    at temperature 1 from the shipped tiny model for one training triplet, as a run's
    rollouts are: the numbers GRPO would turn into advantages (seeded, so repeatable)."""
    import torch
    from transformers.utils import logging as hf_logging

    from grit_lite import data, rewards, tiny
    from grit_lite.format import build_prompt

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar left in the notebook
    model, processor = tiny.load_tiny(tiny.SHIPPED)
    if bars_were_on:
        hf_logging.enable_progress_bar()
    record, image = data.train_split()[0]
    n = group_size * groups
    torch.manual_seed(seed)
    texts = tiny.generate(model, processor, [build_prompt(record.question)] * n, [image] * n,
                          max_new_tokens=128, batch=n, sample=True)  # fmt: skip
    return tuple(rewards.think_rethink_format_reward(texts))


GROUP_SIZES = (2, 4, 16)  # 4 is GRIT's G, 16 the tiny preset's


def _dead_groups() -> tuple[dict[int, float], int]:
    dead = {g: zero_std_fraction(sampled_think_rewards(g), g) for g in GROUP_SIZES}
    return dead, min(GROUP_SIZES, key=lambda g: (dead[g], -g))  # a tie goes to the larger G


def check_dead_groups(fn: Callable[[], tuple[dict[int, float], int]]) -> None:
    """``fn()`` -> ({G: dead-group fraction} for G = 2, 4, 16; the G with the fewest dead
    groups), then the fractions measured, so the answer is seen and not only judged."""
    check_cases(
        "dead_groups",
        fn,
        [()],
        _dead_groups,
        hint=(
            "A group teaches nothing when all its rewards are equal; measure it for every G "
            "before you answer.",
            "{g: zero_std_fraction(sampled_think_rewards(g), g) for g in (2, 4, 16)}; the "
            "second value is the G whose fraction is smallest.",
        ),
    )
    dead, _ = _dead_groups()
    groups = len(sampled_think_rewards(GROUP_SIZES[0])) // GROUP_SIZES[0]
    shares = ", ".join(f"G = {g}: {dead[g]:.0%}" for g in GROUP_SIZES)
    print(f"dead groups among {groups} sampled groups of each size: {shares}")
