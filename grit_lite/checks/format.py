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
        hint=(
            "Print build_prompt('How many zebras are there?') from section 1 and compare it with "
            "yours: the prompt is a fixed label, the question, then GRIT's suffix.",
            "The label is the word Question, a colon and a space; the suffix is a constant "
            "in grit_lite.format that already starts with a space and ends with a newline, "
            "so nothing goes between the question and it.",
        ),
    )


def check_extract_answer(fn: Callable[[str], str | None]) -> None:
    """Answer text after the first <answer>, up to </answer> or another <answer>, stripped."""
    check_cases(
        "extract_answer",
        fn,
        [(c,) for c in _COMPLETIONS],
        fmt.extract_answer,
        hint=(
            "The answer starts right after the first <answer> tag and ends at whichever "
            "comes first: </answer>, another <answer>, or the end of the text.",
            "str.find gives the first tag's position (-1: no answer, return None); "
            "str.split(stop, 1)[0] cuts at a stop tag when it is there; strip the result.",
        ),
    )


def check_tags_in_order(fn: Callable[[str], bool]) -> None:
    """The four think/rethink tags each occur exactly once, in order."""
    check_cases(
        "tags_in_order",
        fn,
        [(c,) for c in _COMPLETIONS + ["</think><think></rethink><rethink>"]],
        lambda c: fmt.parse_completion(c).checks["tags_in_order"],
        hint=(
            "Two conditions: each of the four tags appears exactly once, and their "
            "positions in the text increase in the order think, /think, rethink, /rethink.",
            "str.count tells how often a tag occurs; str.find where it is; a list of "
            "positions is in order when it equals its sorted copy.",
        ),
    )
