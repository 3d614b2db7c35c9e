"""Operator semantics shared by profile conditions, event filters, counts and sums.

Types are kept apart on purpose: JSON producers are sloppy (`"30"` vs `30`,
`true` vs `1`), and silently coercing would make segments depend on which
SDK sent the data. Booleans are therefore never numbers, and ordering only
exists between two numbers or two strings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeGuard

from stream.rules.model import Scalar


def is_number(value: object) -> TypeGuard[int | float]:
    """`bool` subclasses `int`, so a plain isinstance check would let `True` count as 1."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "str"
    return "other"


def _equal(actual: Scalar, expected: object) -> bool:
    kind = _kind(actual)
    return kind != "other" and kind == _kind(expected) and actual == expected


def _ordered(op: str, actual: Scalar, expected: object) -> bool:
    kind = _kind(actual)
    if kind not in ("number", "str") or kind != _kind(expected):
        return False
    # Both sides are the same orderable kind here; the ignores only tell mypy so.
    if op == "gt":
        return actual > expected  # type: ignore[operator]
    if op == "gte":
        return actual >= expected  # type: ignore[operator]
    if op == "lt":
        return actual < expected  # type: ignore[operator]
    return actual <= expected  # type: ignore[operator]


def _members(expected: object) -> Sequence[object]:
    if isinstance(expected, list | tuple):
        return expected
    raise ValueError(f"in/not_in need a list, got {type(expected).__name__}")


def compare(op: str, actual: Scalar | None, expected: object) -> bool:
    """Missing means "no opinion": only `not_exists` can be true on a missing property.

    That includes `neq`, so "city is not Pune" does not match users with no
    city at all; a rule that wants them says `not_exists` explicitly.
    """
    if op == "not_exists":
        return actual is None
    if op == "exists":
        return actual is not None
    if op not in _KNOWN:
        raise ValueError(f"unknown operator {op!r}")
    if actual is None:
        return False
    if op == "eq":
        return _equal(actual, expected)
    if op == "neq":
        return not _equal(actual, expected)
    if op == "in":
        return any(_equal(actual, item) for item in _members(expected))
    if op == "not_in":
        return not any(_equal(actual, item) for item in _members(expected))
    if op == "contains":
        return isinstance(actual, str) and isinstance(expected, str) and expected in actual
    return _ordered(op, actual, expected)


_KNOWN = frozenset(("eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in", "contains"))


def comparator(op: str, expected: object) -> Callable[[Scalar | None], bool]:
    """`compare` with the operator and expected value bound, for compiled rules.

    The common profile tests on text, `eq`, `neq` and `in` a list of texts, become one
    type test and one comparison (or a set lookup) instead of `compare`'s dispatch and two
    kind tests per call (~0.6 µs of a recount's ~10 µs per user); anything else calls
    `compare` itself. Same answers as `compare`: a text only ever equals a text."""
    if type(expected) is str and op in ("eq", "neq"):
        text = expected
        if op == "eq":
            return lambda actual: isinstance(actual, str) and actual == text
        return lambda actual: actual is not None and not (isinstance(actual, str) and actual == text)
    if op == "in" and isinstance(expected, list | tuple) and expected and all(type(e) is str for e in expected):
        texts = frozenset(expected)
        return lambda actual: isinstance(actual, str) and actual in texts
    return lambda actual: compare(op, actual, expected)
