"""Plain-language summary of a rule, for marketers reading the segment page.

It aims to be read, not parsed: defaults are left unsaid ("did Charged"
rather than "did Charged at least 1 time") and nested combinators get
parentheses only where the grouping would otherwise be ambiguous.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from stream.rules.model import (
    AggTest,
    All,
    AnyOf,
    Bounds,
    Duration,
    EventCond,
    InSegment,
    Node,
    Not,
    ProfileCond,
    PropFilter,
    Reachable,
    Scalar,
    SequenceCond,
)

_PROFILE_OPS = {
    "eq": "is",
    "neq": "is not",
    "gt": "is greater than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "contains",
}
_AMOUNT_OPS = {
    "eq": "exactly",
    "neq": "other than",
    "gt": "more than",
    "gte": "at least",
    "lt": "fewer than",
    "lte": "at most",
}


def _value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if value == "":
        return '""'
    return str(value)


def _filter(f: ProfileCond | PropFilter) -> str:
    if f.op == "exists":
        return f"{f.prop} is set"
    if f.op == "not_exists":
        return f"{f.prop} is not set"
    if isinstance(f.value, tuple):
        shown = ", ".join(_value(v) for v in f.value)
    else:
        shown = _value(f.value) if f.value is not None else ""
    return f"{f.prop} {_PROFILE_OPS.get(f.op, f.op)} {shown}"


def _never(e: EventCond) -> bool:
    """Count conditions that can only hold at zero read better as "did not do"."""
    n = e.count.value
    return (e.count.op, n) in (("eq", 0), ("lt", 1), ("lte", 0))


def _duration(d: Duration) -> str:
    unit = d.unit[:-1] if d.amount == 1 else d.unit
    return f"{_value(d.amount)} {unit}"


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _bounds(b: Bounds) -> str:
    parts = []
    if b.within is not None and b.before is not None:
        parts.append(f"between {_duration(b.within)} and {_duration(b.before)} ago")
    elif b.within is not None:
        w = b.within
        parts.append("in the last " + (w.unit[:-1] if w.amount == 1 else _duration(w)))
    elif b.before is not None:
        parts.append(f"more than {_duration(b.before)} ago")
    if b.from_ms is not None and b.to_ms is not None:
        parts.append(f"from {_day(b.from_ms)} to {_day(b.to_ms)}")
    elif b.from_ms is not None:
        parts.append(f"since {_day(b.from_ms)}")
    elif b.to_ms is not None:
        parts.append(f"before {_day(b.to_ms)}")
    return "".join(" " + p for p in parts)


_TEST_WORDS = {"sum": "total", "min": "smallest", "max": "largest", "avg": "average"}


def _test(t: AggTest) -> str:
    op = "less than" if t.op == "lt" else _AMOUNT_OPS.get(t.op, t.op)
    if t.kind == "distinct":
        n = int(t.value)
        return f"{op} {n} different {t.prop} {'value' if n == 1 else 'values'}"
    return f"{_TEST_WORDS[t.kind]} {t.prop} {op} {_value(t.value)}"


def _event(e: EventCond, negated: bool = False) -> str:
    n = int(e.count.value) if float(e.count.value).is_integer() else e.count.value
    default = e.count.op == "gte" and n == 1
    text = f"did not do {e.name}" if negated or _never(e) else f"did {e.name}"
    if e.where:
        text += " (" + " and ".join(_filter(f) for f in e.where) + ")"
    if not (negated or default or _never(e)):
        op = "fewer than" if e.count.op == "lt" else _AMOUNT_OPS.get(e.count.op, e.count.op)
        text += f" {op} {n} {'time' if n == 1 else 'times'}"
    if e.tests:
        text += " with " + " and ".join(_test(t) for t in e.tests)
    return text + _bounds(e.bounds)


def _sequence(q: SequenceCond) -> str:
    steps = []
    for step in q.steps:
        text = step.name
        if step.where:
            text += " (" + " and ".join(_filter(f) for f in step.where) + ")"
        steps.append(text)
    text = "did " + ", then ".join(steps)
    if q.max_span is not None:
        text += f" within {_duration(q.max_span)}"
    return text + _bounds(q.bounds)


def _grouped(node: Node, names: Mapping[str, str]) -> str:
    text = describe(node, names)
    if isinstance(node, All | AnyOf) and len(node.children) > 1:
        return f"({text})"
    return text


def describe(node: Node, names: Mapping[str, str] | None = None) -> str:
    """`names` maps segment ids to names, for `in_segment` ("in segment VIP")."""
    names = names or {}
    if isinstance(node, All | AnyOf):
        joiner = ", and " if isinstance(node, All) else ", or "
        return joiner.join(_grouped(c, names) for c in node.children)
    if isinstance(node, Not):
        child = node.child
        plain = isinstance(child, EventCond) and not child.tests
        if plain and isinstance(child, EventCond) and child.count.op == "gte" and child.count.value == 1:
            return _event(child, negated=True)
        if isinstance(child, Reachable):
            return f"not reachable on {child.channel}"
        if isinstance(child, InSegment):
            return f"not in segment {names.get(child.segment_id, child.segment_id)}"
        return f"not ({describe(child, names)})"
    if isinstance(node, ProfileCond):
        return _filter(node)
    if isinstance(node, EventCond):
        return _event(node)
    if isinstance(node, SequenceCond):
        return _sequence(node)
    if isinstance(node, InSegment):
        return f"in segment {names.get(node.segment_id, node.segment_id)}"
    return f"reachable on {node.channel}"
