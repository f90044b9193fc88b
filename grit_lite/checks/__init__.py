"""Checkers for the notebooks' exercises.

An exercise cell defines a function whose body sits between ``### BEGIN SOLUTION`` and
``### END SOLUTION``; the cell after it calls a checker from ``grit_lite.checks.<topic>``.
A checker runs the student's function on cases whose answers come from the reference
implementation in the topic module, prints one line saying passed or failed with tiered
hints, and raises ``AssertionError`` on failure so that an autograder (or nbval) sees a red
cell.

Hints come in tiers: the first points at the idea, the next ones come nearer the code, and
none of them is the code itself. A checker passes them as a tuple; each failure prints them
numbered, so a student reads the first and looks further only when stuck.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any


class ExerciseFailed(AssertionError):
    """Raised by a checker when the student's function is wrong or unfinished."""


def _close(a: Any, b: Any, tol: float) -> bool:
    """Compare nested results, with a tolerance for floats (and tensors, via ``tolist``)."""
    if hasattr(a, "tolist") and not isinstance(a, (str, bytes)):
        a = a.tolist()
    if hasattr(b, "tolist") and not isinstance(b, (str, bytes)):
        b = b.tolist()
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b, strict=True))
    return a == b


def format_hints(hint: str | Sequence[str]) -> str:
    """The hint lines a failed check prints: ``Hint 1: ...``, ``Hint 2: ...``, indented."""
    tiers = [hint] if isinstance(hint, str) else list(hint)
    if len(tiers) == 1:
        return f"  Hint: {tiers[0]}"
    return "\n".join(f"  Hint {i}: {text}" for i, text in enumerate(tiers, 1))


def check_cases(
    name: str,
    student: Callable[..., Any],
    cases: Iterable[Sequence[Any]],
    expected: Callable[..., Any],
    hint: str | Sequence[str],
    tol: float = 1e-6,
) -> None:
    """Run ``student(*case)`` for every case and compare with ``expected(*case)``.

    Prints ``PASSED`` or ``FAILED`` with the first failing case and the hints (one string,
    or tiers from the idea to nearer the code); raises :class:`ExerciseFailed` on failure
    so the check cell turns red.
    """
    cases = list(cases)
    hint = format_hints(hint)
    for case in cases:
        want = expected(*case)
        try:
            got = student(*case)
        except NotImplementedError:
            message = f"FAILED {name}: not implemented yet. Replace `raise NotImplementedError`."
            print(f"{message}\n{hint}")
            raise ExerciseFailed(message) from None
        except Exception as err:  # noqa: BLE001 - any student error is a failed check
            message = f"FAILED {name}: raised {type(err).__name__}: {err} on input {case!r}"
            print(f"{message}\n{hint}")
            raise ExerciseFailed(message) from None
        if not _close(got, want, tol):
            message = f"FAILED {name}: on input {case!r} expected {want!r}, got {got!r}"
            print(f"{message}\n{hint}")
            raise ExerciseFailed(message)
    print(f"PASSED {name}: {len(cases)} cases match the reference.")
