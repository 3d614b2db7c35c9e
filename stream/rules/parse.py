"""JSON rule -> AST, rejecting anything that could not be evaluated later.

Validation is front-loaded so that evaluation on the hot path never meets a
surprise; every error names the path of the offending part because the API
returns it verbatim in a 422.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from stream.rules.channels import CHANNELS
from stream.rules.fields import filter_fields, finite_number, obj_at, op_field, text_field, type_name
from stream.rules.model import (
    AGG_KINDS,
    COMPARISON_OPS,
    MAX_STEPS,
    MAX_WITHIN_DAYS,
    MIN_STEPS,
    MS_PER_DAY,
    UNITS,
    AggTest,
    All,
    AnyOf,
    Bounds,
    Comparison,
    Duration,
    EventCond,
    InSegment,
    Node,
    Not,
    ProfileCond,
    PropFilter,
    Reachable,
    RuleError,
    SequenceCond,
    Step,
)

MAX_DEPTH = 32
"""Deep nesting is never a real segment, and unbounded recursion would turn bad input into a 500."""

_NODE_KEYS = ("all", "any", "not", "profile", "event", "sequence", "in_segment", "reachable")
_BOUND_KEYS = frozenset(("within_days", "within", "before", "from", "to"))
_EVENT_KEYS = frozenset(("name", "where", "count", *AGG_KINDS)) | _BOUND_KEYS
_SEQUENCE_KEYS = frozenset(("steps", "max_span")) | _BOUND_KEYS
_MAX_MS = MAX_WITHIN_DAYS * MS_PER_DAY


def _count(obj: object, path: str) -> Comparison:
    if obj is None:
        return Comparison("gte", 1)
    body = obj_at(obj, path, frozenset(("op", "value")))
    op = op_field(body, path, COMPARISON_OPS)
    return Comparison(op, _whole(body.get("value"), f"{path}.value", "count"))


def _whole(value: object, path: str, what: str) -> int:
    if not finite_number(value) or value < 0 or (isinstance(value, float) and not value.is_integer()):
        raise RuleError(path, f"{what} needs a non-negative integer, got {value!r}")
    return int(value)


def _test(kind: str, obj: object, path: str) -> AggTest:
    body = obj_at(obj, path, frozenset(("prop", "op", "value")))
    prop = text_field(body, "prop", path)
    op = op_field(body, path, COMPARISON_OPS)
    value = body.get("value")
    if kind == "distinct":
        return AggTest(kind, prop, op, _whole(value, f"{path}.value", "distinct"))
    if not finite_number(value):
        raise RuleError(f"{path}.value", f"{kind} needs a number, got {type_name(value)}")
    return AggTest(kind, prop, op, value)


def _within_days(value: object, path: str) -> Duration:
    if not finite_number(value) or not 0 < value <= MAX_WITHIN_DAYS:
        raise RuleError(path, f"must be a number of days in (0, {MAX_WITHIN_DAYS}], got {value!r}")
    return Duration("days", value)


def _duration(obj: object, path: str) -> Duration:
    """`{"minutes": m}`, `{"hours": h}` or `{"days": d}`: one unit, a positive integer."""
    units = ", ".join(UNITS)
    if not isinstance(obj, dict) or len(obj) != 1:
        raise RuleError(path, f"expected an object with exactly one of {units}, got {type_name(obj)}")
    ((unit, amount),) = obj.items()
    if unit not in UNITS:
        raise RuleError(f"{path}.{unit}", f"unknown unit; expected one of {units}")
    if not finite_number(amount) or amount <= 0 or (isinstance(amount, float) and not amount.is_integer()):
        raise RuleError(f"{path}.{unit}", f"must be a positive integer, got {amount!r}")
    duration = Duration(unit, int(amount))
    if duration.ms > _MAX_MS:
        raise RuleError(f"{path}.{unit}", f"must be at most {MAX_WITHIN_DAYS} days, got {amount} {unit}")
    return duration


def _instant(value: object, path: str) -> int:
    if not isinstance(value, str):
        raise RuleError(path, f"expected an ISO-8601 instant with a zone, got {type_name(value)}")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RuleError(path, f"not an ISO-8601 instant: {value!r}") from None
    if at.tzinfo is None:
        raise RuleError(path, f"needs a zone (Z or +hh:mm): {value!r}")
    return int(at.timestamp() * 1000)


def _bounds(body: Mapping[str, object], path: str) -> Bounds:
    within: Duration | None = None
    if body.get("within_days") is not None:
        if body.get("within") is not None:
            raise RuleError(f"{path}.within_days", "give within or within_days, not both")
        within = _within_days(body["within_days"], f"{path}.within_days")
    elif body.get("within") is not None:
        within = _duration(body["within"], f"{path}.within")
    before = _duration(body["before"], f"{path}.before") if body.get("before") is not None else None
    if within is not None and before is not None and before.ms >= within.ms:
        raise RuleError(f"{path}.before", "must be shorter than within, or the range holds no instant")
    from_ms = _instant(body["from"], f"{path}.from") if body.get("from") is not None else None
    to_ms = _instant(body["to"], f"{path}.to") if body.get("to") is not None else None
    if from_ms is not None and to_ms is not None and to_ms <= from_ms:
        raise RuleError(f"{path}.to", "must be after from")
    return Bounds(within, before, from_ms, to_ms)


def _where(body: Mapping[str, object], path: str) -> tuple[PropFilter, ...]:
    where_obj = body.get("where")
    if where_obj is not None and not isinstance(where_obj, list):
        raise RuleError(f"{path}.where", f"expected a list of filters, got {type_name(where_obj)}")
    return tuple(PropFilter(*filter_fields(f, f"{path}.where[{i}]")) for i, f in enumerate(where_obj or ()))


def _event(obj: object, path: str) -> EventCond:
    body = obj_at(obj, path, _EVENT_KEYS)
    tests = tuple(_test(k, body[k], f"{path}.{k}") for k in AGG_KINDS if body.get(k) is not None)
    return EventCond(
        name=text_field(body, "name", path),
        where=_where(body, path),
        count=_count(body.get("count"), f"{path}.count"),
        tests=tests,
        bounds=_bounds(body, path),
    )


def _sequence(obj: object, path: str) -> SequenceCond:
    body = obj_at(obj, path, _SEQUENCE_KEYS)
    raw = body.get("steps")
    if not isinstance(raw, list) or not MIN_STEPS <= len(raw) <= MAX_STEPS:
        got = f"{len(raw)} steps" if isinstance(raw, list) else type_name(raw)
        raise RuleError(f"{path}.steps", f"a sequence needs {MIN_STEPS} to {MAX_STEPS} steps, got {got}")
    steps = []
    for i, step in enumerate(raw):
        sub = f"{path}.steps[{i}]"
        fields = obj_at(step, sub, frozenset(("name", "where")))
        steps.append(Step(text_field(fields, "name", sub), _where(fields, sub)))
    span = body.get("max_span")
    return SequenceCond(
        steps=tuple(steps),
        max_span=_duration(span, f"{path}.max_span") if span is not None else None,
        bounds=_bounds(body, path),
    )


def parse_rule(obj: object, path: str = "rule") -> Node:
    """Raises RuleError; the returned tree is safe to evaluate with no further checks.

    Whether an `in_segment` id exists (and forms no cycle) needs the catalog,
    so the API checks that with `stream.rules.check_references`."""
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
    if key == "sequence":
        return _sequence(body, sub)
    if key == "in_segment":
        if not isinstance(body, str) or not body.strip():
            raise RuleError(sub, f"expected a segment id, got {type_name(body)}")
        return InSegment(body)
    if key == "reachable":
        if not isinstance(body, str) or body not in CHANNELS:
            raise RuleError(sub, f"unknown channel {body!r}; expected one of {', '.join(CHANNELS)}")
        return Reachable(body)
    raise RuleError(sub, f"unknown condition; expected one of {', '.join(_NODE_KEYS)}")
