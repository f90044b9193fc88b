"""Checkers for notebook 01's exercises (the grounded output format)."""

from __future__ import annotations

from collections.abc import Callable

from grit_lite import format as fmt
from grit_lite.checks import check_cases
from grit_lite.examples import MALFORMED, REAL_STYLE

_COMPLETIONS = (
    [e.completion for e in REAL_STYLE]
    + list(MALFORMED.values())
    + [
        "<answer> yes </answer> trailing words",
        "<think> a </think><rethink> b </rethink><answer>   \n",
    ]
)


def check_build_prompt(fn: Callable[[str], str]) -> None:
    """The student's prompt must equal GRIT's byte for byte: spaces and newline included."""
    questions = ["How many zebras are there?", "Is the cat on the truck?", ""]
    check_cases(
        "build_prompt",
        fn,
        [(q,) for q in questions],
        fmt.build_prompt,
        hint="'Question: ' + question + GRIT_PROMPT_SUFFIX; the suffix already starts with a "
        "space and ends with a newline.",
    )


def check_extract_answer(fn: Callable[[str], str | None]) -> None:
    """Answer text after the first <answer>, up to </answer> or another <answer>, stripped."""
    check_cases(
        "extract_answer",
        fn,
        [(c,) for c in _COMPLETIONS],
        fmt.extract_answer,
        hint="Return None when '<answer>' is missing; otherwise take the text after the first "
        "'<answer>', cut it at '</answer>' or a second '<answer>' if present, and .strip() it.",
    )


def check_tags_in_order(fn: Callable[[str], bool]) -> None:
    """The four think/rethink tags each occur exactly once, in order."""
    check_cases(
        "tags_in_order",
        fn,
        [(c,) for c in _COMPLETIONS + ["</think><think></rethink><rethink>"]],
        lambda c: fmt.parse_completion(c).checks["tags_in_order"],
        hint="Count each tag with str.count (must be 1), then check that their str.find "
        "positions are increasing.",
    )
