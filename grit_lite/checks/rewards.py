"""Checkers for notebook 03's exercises (the format rewards of the official release)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from grit_lite import rewards
from grit_lite.checks import check_cases
from grit_lite.examples import MALFORMED, REAL_STYLE

# Real-style and malformed completions, plus the cases where the official quirks bite:
# a stray tag after the rethink, a repeated think block, thinking split by a newline only,
# trailing punctuation, two characters without a space, duplicated answers.
_COMPLETIONS = (
    [e.completion for e in REAL_STYLE]
    + list(MALFORMED.values())
    + [
        "<think>x</think><rethink> ok </rethink><answer> 0 </answer>",
        "<think> a b </think><rethink> c </rethink><think>",
        "<think> a </think><think> b c </think><rethink> r </rethink>",
        "</think><think> a b <rethink></rethink>",
        "<think>two\ncats</think><rethink>r</rethink>",
        "<think>cat!</think><rethink>r</rethink>",
        "<think>ab</think><rethink></rethink>",
        "<think>a,b</think><rethink></rethink>",
        "<answer><answer><answer>",
        "<ANSWER> 7 </answer>",
        "answer: 7",
    ]
)


def check_think_rethink_format(fn: Callable[[str], float]) -> None:
    """The student's think/rethink format reward for one string, in [0, 0.5]."""
    check_cases(
        "think_rethink_format",
        fn,
        [(c,) for c in _COMPLETIONS],
        rewards.think_rethink_format_score,
        hint=(
            "Five points: one per tag found while walking the four tags in order over what "
            "is left of the text, one for a think part of more than one word; the reward "
            "is points / 5 x 0.5.",
            "After a tag is found, what is left is the text after its LAST occurrence "
            "(str.rsplit). The word test: the think content after the last <think>, up to "
            "</think>, stripped, with >= 2 characters and >= 2 pieces when split on a "
            "single space after non-alphanumerics became spaces.",
        ),
    )


def check_answer_format(fn: Callable[[str], float]) -> None:
    """The student's answer format reward for one string, in [0, 0.5]."""
    check_cases(
        "answer_format",
        fn,
        [(c,) for c in _COMPLETIONS],
        rewards.answer_format_score,
        hint=(
            "Two halves of 0.25: one for having an answer tag, one for having exactly one.",
            "The tag is '<answer>' exactly (case matters); str.count tells how many there "
            "are. The closing tag plays no part.",
        ),
    )


# Notebook 03's reward hacks: name -> (completion, answer, dataset).
HACKS = {
    "answer format": ("<answer>", "yes", "vsr"),
    "think/rethink": ("<think> a b </think><rethink></rethink>", "yes", "vsr"),
    "grounded (vsr)": ("0, 0, 0, 0 <rethink>", "yes", "vsr"),
    "grounded (count)": ("0,0,0,0 " * 3 + "<rethink>", "3", "tallyqa"),
    "repetition": ("", "yes", "vsr"),
    "bare guess": ("<answer> yes", "yes", "vsr"),
    "accuracy (hedge)": ("<answer> yes and no", "yes", "vsr"),
    "everything": (
        "<think> I see 0, 0, 0, 0 </think><rethink></rethink><answer> yes and no",
        "yes",
        "vsr",
    ),
}


def clean_losers(hacks: dict[str, tuple[str, str, str]]) -> list[str]:
    """Reference for notebook 03's experiment: the hacks whose total falls when
    ``rewards.CLEAN_REWARDS`` replace GRIT's, in the order given."""

    def totals(funcs: Any) -> list[float]:
        rows = rewards.reward_table(
            [c for c, _, _ in hacks.values()],
            funcs,
            answer=[a for _, a, _ in hacks.values()],
            dataset=[d for _, _, d in hacks.values()],
        )
        return [row["total"] for row in rows]

    official, clean = totals(rewards.GRIT_REWARDS), totals(rewards.CLEAN_REWARDS)
    return [n for n, o, c in zip(hacks, official, clean, strict=True) if c < o - 1e-9]


def check_clean_losers(fn: Callable[[dict[str, tuple[str, str, str]]], list[str]]) -> None:
    """The student's list of hacks that the clean rewards pay less, on two galleries."""
    more = dict(HACKS)
    more["box in a preamble"] = ("(1, 2, 3, 4) <think> x </think><rethink>", "1", "tallyqa")
    more["stray think"] = ("<think> a b </think><rethink> c </rethink><think>", "", "vsr")
    check_cases(
        "clean_losers",
        fn,
        [(HACKS,), (more,)],
        clean_losers,
        hint=(
            "Score the same completions twice, once with GRIT's rewards and once with the "
            "clean ones, and keep the names whose total went down.",
            "rewards.reward_table(completions, rewards.CLEAN_REWARDS, answer=[...], "
            "dataset=[...]) gives one row per completion with a 'total'; compare it with the "
            "default (GRIT's) table, keeping the hacks' order.",
        ),
    )
