"""JSON rule -> AST, rejecting anything that could not be evaluated later.

Validation is front-loaded so that evaluation on the hot path never meets a
surprise; every error names the path of the offending part because the API
returns it verbatim in a 422.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeGuard

from stream.rules.channels import CHANNELS
from stream.rules.model import (
    COMPARISON_OPS,
    MAX_WITHIN_DAYS,
    OPERATORS,
    All,
    AnyOf,
    Comparison,
    EventCond,
    Node,
    Not,
    ProfileCond,
    PropFilter,
    Reachable,
    RuleError,
    Scalar,
    SumCond,
)

MAX_DEPTH = 32
"""Deep nesting is never a real segment, and unbounded recursion would turn bad input into a 500."""

_NODE_KEYS = ("all", "any", "not", "profile", "event", "reachable")
_EVENT_KEYS = frozenset(("name", "where", "count", "sum", "within_days"))


def obj_at(obj: object, path: str, allowed: frozenset[str]) -> Mapping[str, object]:
    """Unknown keys are errors, not ignored, so a typo like `withn_days` cannot silently widen a rule."""
    if not isinstance(obj, dict):
        raise RuleError(path, f"expected an object, got {_type(obj)}")
    for key in obj:
        if key not in allowed:
            raise RuleError(f"{path}.{key}", f"unknown field; expected one of {', '.join(sorted(allowed))}")
    return obj


def _type(obj: object) -> str:
    return "null" if obj is None else type(obj).__name__


def _finite_number(value: object) -> TypeGuard[int | float]:
    """JSON allows NaN and Infinity in Python's parser; neither can be compared or stored canonically."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _scalar(value: object) -> TypeGuard[Scalar]:
    return isinstance(value, str | bool) or _finite_number(value)


def _name(obj: Mapping[str, object], key: str, path: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"{path}.{key}", f"must be a non-empty string, got {_type(value)}")
    return value


def _op(obj: Mapping[str, object], path: str, allowed: tuple[str, ...]) -> str:
    op = obj.get("op")
    if not isinstance(op, str) or op not in allowed:
        raise RuleError(f"{path}.op", f"unknown operator {op!r}; expected one of {', '.join(allowed)}")
    return op


def _operand(op: str, obj: Mapping[str, object], path: str) -> Scalar | tuple[Scalar, ...] | None:
    value, vpath = obj.get("value"), f"{path}.value"
    if op in ("exists", "not_exists"):
        if value is not None:
            raise RuleError(vpath, f"operator {op} takes no value")
        return None
    if value is None:
        raise RuleError(vpath, f"operator {op} needs a value")
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise RuleError(vpath, f"operator {op} needs a non-empty list, got {_type(value)}")
        for i, item in enumerate(value):
            if not _scalar(item):
                raise RuleError(f"{vpath}[{i}]", f"must be a string, number or boolean, got {_type(item)}")
        return tuple(value)
    if op == "contains":
        if not isinstance(value, str):
            raise RuleError(vpath, f"operator contains needs a string, got {_type(value)}")
        return value
    if op in ("eq", "neq"):
        if _scalar(value):
            return value
        raise RuleError(vpath, f"operator {op} needs a string, number or boolean, got {_type(value)}")
    if isinstance(value, str) or _finite_number(value):
        return value
    raise RuleError(vpath, f"operator {op} needs a number or a string, got {_type(value)}")


def _filter(obj: object, path: str) -> tuple[str, str, Scalar | tuple[Scalar, ...] | None]:
    body = obj_at(obj, path, frozenset(("prop", "op", "value")))
    prop = _name(body, "prop", path)
    op = _op(body, path, OPERATORS)
    return prop, op, _operand(op, body, path)


def _count(obj: object, path: str) -> Comparison:
    if obj is None:
        return Comparison("gte", 1)
    body = obj_at(obj, path, frozenset(("op", "value")))
    op = _op(body, path, COMPARISON_OPS)
    value = body.get("value")
    if not _finite_number(value) or value < 0 or (isinstance(value, float) and not value.is_integer()):
        raise RuleError(f"{path}.value", f"count needs a non-negative integer, got {value!r}")
    return Comparison(op, int(value))


def _sum(obj: object, path: str) -> SumCond | None:
    if obj is None:
        return None
    body = obj_at(obj, path, frozenset(("prop", "op", "value")))
    prop = _name(body, "prop", path)
    op = _op(body, path, COMPARISON_OPS)
    value = body.get("value")
    if not _finite_number(value):
        raise RuleError(f"{path}.value", f"sum needs a number, got {_type(value)}")
    return SumCond(prop, op, value)


def _within(value: object, path: str) -> float | None:
    if value is None:
        return None
    if not _finite_number(value) or not 0 < value <= MAX_WITHIN_DAYS:
        raise RuleError(path, f"must be a number of days in (0, {MAX_WITHIN_DAYS}], got {value!r}")
    return value


def _event(obj: object, path: str) -> EventCond:
    body = obj_at(obj, path, _EVENT_KEYS)
    name = _name(body, "name", path)
    where_obj = body.get("where")
    if where_obj is not None and not isinstance(where_obj, list):
        raise RuleError(f"{path}.where", f"expected a list of filters, got {_type(where_obj)}")
    where = tuple(PropFilter(*_filter(f, f"{path}.where[{i}]")) for i, f in enumerate(where_obj or ()))
    return EventCond(
        name=name,
        where=where,
        count=_count(body.get("count"), f"{path}.count"),
        sum=_sum(body.get("sum"), f"{path}.sum"),
        within_days=_within(body.get("within_days"), f"{path}.within_days"),
    )


def parse_rule(obj: object, path: str = "rule") -> Node:
    """Raises RuleError; the returned tree is safe to evaluate with no further checks."""
    return _node(obj, path, 0)


def _node(obj: object, path: str, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise RuleError(path, f"rule is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(obj, dict) or len(obj) != 1:
        got = _type(obj)
        if isinstance(obj, dict):
            got = f"keys {', '.join(map(str, obj))}" if obj else "an empty object"
        raise RuleError(path, f"expected an object with exactly one of {', '.join(_NODE_KEYS)}, got {got}")
    ((key, body),) = obj.items()
    sub = f"{path}.{key}"
    if key in ("all", "any"):
        if not isinstance(body, list) or not body:
            got = "an empty list" if isinstance(body, list) else _type(body)
            raise RuleError(sub, f"{key} needs a non-empty list of conditions, got {got}")
        children = tuple(_node(c, f"{sub}[{i}]", depth + 1) for i, c in enumerate(body))
        return All(children) if key == "all" else AnyOf(children)
    if key == "not":
        return Not(_node(body, sub, depth + 1))
    if key == "profile":
        return ProfileCond(*_filter(body, sub))
    if key == "event":
        return _event(body, sub)
    if key == "reachable":
        if not isinstance(body, str) or body not in CHANNELS:
            raise RuleError(sub, f"unknown channel {body!r}; expected one of {', '.join(CHANNELS)}")
        return Reachable(body)
    raise RuleError(sub, f"unknown condition; expected one of {', '.join(_NODE_KEYS)}")
