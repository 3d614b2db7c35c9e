"""Brute-force reference for segment membership, straight from the raw event list.

Written apart from `stream.rules` on purpose (its own operators, reachability
and windows; only the AST types are shared) so that a test comparing the two
catches a bug in either. It is slow and stateless: every call re-reads the
whole history. Integration tests use it to check what the workers wrote.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from stream.rules.model import All, AnyOf, EventCond, Node, Not, ProfileCond, Reachable

Value = str | int | float | bool
RawEvent = tuple[str, str, int, Mapping[str, Value]]

DAY_MS = 86_400_000
IDENTITY = {
    "email": "email",
    "sms": "phone",
    "whatsapp": "phone",
    "push": "push_token",
    "web_push": "web_push_token",
}


def _tag(value: object) -> str | None:
    """Which family a value belongs to; values of different families never compare."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    if isinstance(value, str):
        return "str"
    return None


def _same(a: object, b: object) -> bool:
    return _tag(a) is not None and _tag(a) == _tag(b) and a == b


def oracle_compare(op: str, actual: object, expected: object) -> bool:
    if op in ("exists", "not_exists"):
        return (actual is None) == (op == "not_exists")
    if actual is None:
        return False
    if op in ("eq", "neq"):
        return _same(actual, expected) == (op == "eq")
    if op in ("in", "not_in"):
        assert isinstance(expected, list | tuple)
        found = [item for item in expected if _same(actual, item)]
        return bool(found) == (op == "in")
    if op == "contains":
        return type(actual) is str and type(expected) is str and actual.find(expected) >= 0
    if _tag(actual) not in ("num", "str") or _tag(actual) != _tag(expected):
        return False
    a, b = actual, expected
    return bool({"lt": a < b, "lte": a <= b, "gt": b < a, "gte": b <= a}[op])  # type: ignore[operator]


def _amount(props: Mapping[str, Value], prop: str) -> float:
    value = props.get(prop)
    if _tag(value) != "num" or not math.isfinite(value):  # type: ignore[arg-type]
        return 0.0
    return float(value)  # type: ignore[arg-type]


def _event_holds(cond: EventCond, history: list[tuple[str, int, Mapping[str, Value]]], now_ms: int) -> bool:
    hits = []
    for name, ts, props in history:
        if name != cond.name:
            continue
        if not all(oracle_compare(f.op, props.get(f.prop), f.value) for f in cond.where):
            continue
        if cond.within_days is not None:
            width = round(cond.within_days * DAY_MS)
            if not (now_ms - width < ts <= now_ms):
                continue
        hits.append(props)
    if not oracle_compare(cond.count.op, len(hits), cond.count.value):
        return False
    if cond.sum is None:
        return True
    total = math.fsum(_amount(p, cond.sum.prop) for p in hits)
    return oracle_compare(cond.sum.op, total, cond.sum.value)


def oracle_member(
    node: Node,
    *,
    kind: str,
    created_at_ms: int,
    profile: Mapping[str, Value],
    subscriptions: Mapping[str, bool],
    events: Iterable[RawEvent],
    now_ms: int,
) -> bool:
    """An event_id's first delivery is the event; later ones are redeliveries, whatever they carry."""
    if kind not in ("live", "past_behavior"):
        raise ValueError(f"kind {kind!r} has no rule to evaluate")
    seen: set[str] = set()
    history = []
    for event_id, name, ts, props in events:
        if event_id in seen:
            continue
        seen.add(event_id)
        if kind == "past_behavior" or ts >= created_at_ms:
            history.append((name, ts, props))

    def holds(n: Node) -> bool:
        if isinstance(n, All):
            return all(holds(c) for c in n.children)
        if isinstance(n, AnyOf):
            return any(holds(c) for c in n.children)
        if isinstance(n, Not):
            return not holds(n.child)
        if isinstance(n, ProfileCond):
            return oracle_compare(n.op, profile.get(n.prop), n.value)
        if isinstance(n, EventCond):
            return _event_holds(n, history, now_ms)
        assert isinstance(n, Reachable)
        identity = profile.get(IDENTITY[n.channel])
        return isinstance(identity, str) and identity.strip() != "" and subscriptions.get(n.channel) is not False

    return holds(node)
