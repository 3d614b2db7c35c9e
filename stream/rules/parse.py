"""JSON rule -> AST, rejecting anything that could not be evaluated later.

Validation is front-loaded so that evaluation on the hot path never meets a
surprise; every error names the path of the offending part because the API
returns it verbatim in a 422.
"""

from __future__ import annotations

from stream.rules.channels import CHANNELS
from stream.rules.fields import filter_fields, finite_number, obj_at, op_field, text_field, type_name
from stream.rules.model import (
    COMPARISON_OPS,
    MAX_WITHIN_DAYS,
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
    SumCond,
)

MAX_DEPTH = 32
"""Deep nesting is never a real segment, and unbounded recursion would turn bad input into a 500."""

_NODE_KEYS = ("all", "any", "not", "profile", "event", "reachable")
_EVENT_KEYS = frozenset(("name", "where", "count", "sum", "within_days"))


def _count(obj: object, path: str) -> Comparison:
    if obj is None:
        return Comparison("gte", 1)
    body = obj_at(obj, path, frozenset(("op", "value")))
    op = op_field(body, path, COMPARISON_OPS)
    value = body.get("value")
    if not finite_number(value) or value < 0 or (isinstance(value, float) and not value.is_integer()):
        raise RuleError(f"{path}.value", f"count needs a non-negative integer, got {value!r}")
    return Comparison(op, int(value))


def _sum(obj: object, path: str) -> SumCond | None:
    if obj is None:
        return None
    body = obj_at(obj, path, frozenset(("prop", "op", "value")))
    prop = text_field(body, "prop", path)
    op = op_field(body, path, COMPARISON_OPS)
    value = body.get("value")
    if not finite_number(value):
        raise RuleError(f"{path}.value", f"sum needs a number, got {type_name(value)}")
    return SumCond(prop, op, value)


def _within(value: object, path: str) -> float | None:
    if value is None:
        return None
    if not finite_number(value) or not 0 < value <= MAX_WITHIN_DAYS:
        raise RuleError(path, f"must be a number of days in (0, {MAX_WITHIN_DAYS}], got {value!r}")
    return value


def _event(obj: object, path: str) -> EventCond:
    body = obj_at(obj, path, _EVENT_KEYS)
    name = text_field(body, "name", path)
    where_obj = body.get("where")
    if where_obj is not None and not isinstance(where_obj, list):
        raise RuleError(f"{path}.where", f"expected a list of filters, got {type_name(where_obj)}")
    where = tuple(PropFilter(*filter_fields(f, f"{path}.where[{i}]")) for i, f in enumerate(where_obj or ()))
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
        got = f"keys {', '.join(map(str, obj))}" if isinstance(obj, dict) and obj else type_name(obj)
        raise RuleError(path, f"expected an object with exactly one of {', '.join(_NODE_KEYS)}, got {got}")
    ((key, body),) = obj.items()
    sub = f"{path}.{key}"
    if key in ("all", "any"):
        if not isinstance(body, list) or not body:
            raise RuleError(sub, f"{key} needs a non-empty list of conditions, got {type_name(body)}")
        children = tuple(_node(c, f"{sub}[{i}]", depth + 1) for i, c in enumerate(body))
        return All(children) if key == "all" else AnyOf(children)
    if key == "not":
        return Not(_node(body, sub, depth + 1))
    if key == "profile":
        return ProfileCond(*filter_fields(body, sub))
    if key == "event":
        return _event(body, sub)
    if key == "reachable":
        if not isinstance(body, str) or body not in CHANNELS:
            raise RuleError(sub, f"unknown channel {body!r}; expected one of {', '.join(CHANNELS)}")
        return Reachable(body)
    raise RuleError(sub, f"unknown condition; expected one of {', '.join(_NODE_KEYS)}")
