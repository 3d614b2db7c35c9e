"""Plain-language summary of a rule, for marketers reading the segment page.

It aims to be read, not parsed: defaults are left unsaid ("did Charged"
rather than "did Charged at least 1 time") and nested combinators get
parentheses only where the grouping would otherwise be ambiguous.
"""

from __future__ import annotations

from stream.rules.model import All, AnyOf, EventCond, Node, Not, ProfileCond, PropFilter, Reachable, Scalar

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


def _event(e: EventCond, negated: bool = False) -> str:
    n = int(e.count.value) if float(e.count.value).is_integer() else e.count.value
    default = e.count.op == "gte" and n == 1
    text = f"did not do {e.name}" if negated or _never(e) else f"did {e.name}"
    if e.where:
        text += " (" + " and ".join(_filter(f) for f in e.where) + ")"
    if not (negated or default or _never(e)):
        op = "fewer than" if e.count.op == "lt" else _AMOUNT_OPS.get(e.count.op, e.count.op)
        text += f" {op} {n} {'time' if n == 1 else 'times'}"
    if e.sum is not None:
        op = "less than" if e.sum.op == "lt" else _AMOUNT_OPS.get(e.sum.op, e.sum.op)
        text += f" with total {e.sum.prop} {op} {_value(e.sum.value)}"
    if e.within_days is not None:
        days = e.within_days
        text += " in the last day" if days == 1 else f" in the last {_value(days)} days"
    return text


def _grouped(node: Node) -> str:
    text = describe(node)
    if isinstance(node, All | AnyOf) and len(node.children) > 1:
        return f"({text})"
    return text


def describe(node: Node) -> str:
    if isinstance(node, All | AnyOf):
        joiner = ", and " if isinstance(node, All) else ", or "
        return joiner.join(_grouped(c) for c in node.children)
    if isinstance(node, Not):
        child = node.child
        plain = isinstance(child, EventCond) and child.sum is None
        if plain and isinstance(child, EventCond) and child.count.op == "gte" and child.count.value == 1:
            return _event(child, negated=True)
        if isinstance(child, Reachable):
            return f"not reachable on {child.channel}"
        return f"not ({describe(child)})"
    if isinstance(node, ProfileCond):
        return _filter(node)
    if isinstance(node, EventCond):
        return _event(node)
    return f"reachable on {node.channel}"
