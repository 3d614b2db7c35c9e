"""Brute-force reference for segment membership, straight from the raw event list.

Written apart from `stream.rules` on purpose (its own operators, reachability,
durations, windows, aggregates and sequence search; only the AST types are
shared) so that a test comparing the two catches a bug in either. It is slow
and stateless: every call re-reads the whole history. Integration tests use
it to check what the workers wrote.

The contract it implements (DESIGN.md "Segment rules", with the decisions
taken where the design is silent):

- An event_id's first delivery is the event; later ones are ignored. `live`
  counts events with `ts >= created_at`, `past_behavior` every event.
- Time bounds at `now`: `within W` is `now - W < ts <= now`; `before B` is
  `ts <= now - B` (with both, `now - W < ts <= now - B`); `from`/`to` is
  `from <= ts < to`. With neither `within` nor `before` there is no
  `ts <= now` restriction: a future-dated event counts at once.
- `event`: the counted events have the name, pass every `where` filter and
  are in the horizon and the bounds. `count` compares their number; `sum` is
  the fsum of the finite numbers (bools are not numbers, anything else adds
  0); `min`/`max`/`avg` run over the finite numbers and are false when there
  are none; `distinct` counts the distinct values of the prop by family
  (bool, number, string: 1 == 1.0, while "1", 1 and True all differ).
- `sequence`: counted events e1..ek, ei matching step i, with strictly
  increasing ts and `ek.ts - e1.ts <= max_span` when given.
- `in_segment`: whatever the caller's `member_of(segment_id)` says (held
  fixed over the instants one call looks at).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

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
    SequenceCond,
)

Value = str | int | float | bool
RawEvent = tuple[str, str, int, Mapping[str, Value]]
MemberOf = Callable[[str], bool]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
UNIT_MS = {"minutes": MINUTE_MS, "hours": HOUR_MS, "days": DAY_MS}
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


def duration_ms(duration: Duration) -> int:
    """Whole milliseconds, like event timestamps: round(amount * unit)."""
    return round(duration.amount * UNIT_MS[duration.unit])


def _number(props: Mapping[str, Value], prop: str) -> float | None:
    """The prop when it is a finite number (a bool is not a number), else None."""
    value = props.get(prop)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        return None
    return value


def _in_bounds(bounds: Bounds, ts: int, now_ms: int) -> bool:
    if bounds.from_ms is not None and ts < bounds.from_ms:
        return False
    if bounds.to_ms is not None and ts >= bounds.to_ms:
        return False
    if bounds.within is None and bounds.before is None:
        return True  # no moving bound: no `ts <= now` either
    upper = now_ms - (0 if bounds.before is None else duration_ms(bounds.before))
    if ts > upper:
        return False
    return bounds.within is None or now_ms - duration_ms(bounds.within) < ts


History = Sequence[tuple[str, int, Mapping[str, Value]]]


def _passes(name: str, where: tuple[PropFilter, ...], ev_name: str, props: Mapping[str, Value]) -> bool:
    return ev_name == name and all(oracle_compare(f.op, props.get(f.prop), f.value) for f in where)


def _distinct_key(value: object) -> tuple[str, object] | None:
    tag = _tag(value)
    return None if tag is None else (tag, value)  # 1 == 1.0 and hash alike, so they collapse


def _test_holds(test: AggTest, hits: list[Mapping[str, Value]]) -> bool:
    if test.kind == "sum":
        total = math.fsum(v for v in (_number(p, test.prop) for p in hits) if v is not None)
        return oracle_compare(test.op, total, test.value)
    if test.kind == "distinct":
        keys = {k for k in (_distinct_key(p.get(test.prop)) for p in hits) if k is not None}
        return oracle_compare(test.op, len(keys), test.value)
    values = [v for v in (_number(p, test.prop) for p in hits) if v is not None]
    if not values:
        return False
    if test.kind == "min":
        return oracle_compare(test.op, min(values), test.value)
    if test.kind == "max":
        return oracle_compare(test.op, max(values), test.value)
    assert test.kind == "avg", test.kind
    return oracle_compare(test.op, math.fsum(values) / len(values), test.value)


def _event_holds(cond: EventCond, history: History, now_ms: int) -> bool:
    hits = [
        props
        for name, ts, props in history
        if _passes(cond.name, cond.where, name, props) and _in_bounds(cond.bounds, ts, now_ms)
    ]
    if not oracle_compare(cond.count.op, len(hits), cond.count.value):
        return False
    return all(_test_holds(t, hits) for t in cond.tests)


def _sequence_holds(cond: SequenceCond, history: History, now_ms: int) -> bool:
    """For each first step, the earliest match of every next step with a later ts is the best
    completion (it leaves the most room for the steps after it and the smallest span)."""
    candidates = [
        sorted(ts for name, ts, props in history
               if _passes(step.name, step.where, name, props) and _in_bounds(cond.bounds, ts, now_ms))
        for step in cond.steps
    ]
    span = None if cond.max_span is None else duration_ms(cond.max_span)
    for first in candidates[0]:
        last: int | None = first
        for later in candidates[1:]:
            assert last is not None
            last = next((ts for ts in later if ts > last), None)
            if last is None:
                break
        if last is not None and (span is None or last - first <= span):
            return True
    return False


def sequence_exhaustive(cond: SequenceCond, history: History, now_ms: int) -> bool:
    """The same question by trying every tuple of events (exponential: small histories only).
    Tests use it to check the greedy search above."""
    per_step = [
        [ts for name, ts, props in history
         if _passes(step.name, step.where, name, props) and _in_bounds(cond.bounds, ts, now_ms)]
        for step in cond.steps
    ]
    span = None if cond.max_span is None else duration_ms(cond.max_span)
    for combo in itertools.product(*per_step):
        if all(a < b for a, b in itertools.pairwise(combo)) and (span is None or combo[-1] - combo[0] <= span):
            return True
    return False


def _history(kind: str, created_at_ms: int, events: Iterable[RawEvent]) -> list[tuple[str, int, Mapping[str, Value]]]:
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
    return history


def _no_memberships(segment_id: str) -> bool:
    return False


def _holds(
    node: Node,
    profile: Mapping[str, Value],
    subscriptions: Mapping[str, bool],
    history: History,
    now_ms: int,
    member_of: MemberOf,
) -> bool:
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
        if isinstance(n, SequenceCond):
            return _sequence_holds(n, history, now_ms)
        if isinstance(n, InSegment):
            return bool(member_of(n.segment_id))
        assert isinstance(n, Reachable), n
        identity = profile.get(IDENTITY[n.channel])
        return isinstance(identity, str) and identity.strip() != "" and subscriptions.get(n.channel) is not False

    return holds(node)


def oracle_member(
    node: Node,
    *,
    kind: str,
    created_at_ms: int,
    profile: Mapping[str, Value],
    subscriptions: Mapping[str, bool],
    events: Iterable[RawEvent],
    now_ms: int,
    member_of: MemberOf = _no_memberships,
) -> bool:
    """Membership by the rule at `now_ms`, from the raw deliveries (event_id, name, ts, props)."""
    history = _history(kind, created_at_ms, events)
    return _holds(node, profile, subscriptions, history, now_ms, member_of)


def _moving_bounds(node: Node) -> list[Bounds]:
    if isinstance(node, All | AnyOf):
        return [b for c in node.children for b in _moving_bounds(c)]
    if isinstance(node, Not):
        return _moving_bounds(node.child)
    if isinstance(node, EventCond | SequenceCond):
        b = node.bounds
        return [b] if b.within is not None or b.before is not None else []
    return []


def _candidates(node: Node, history: History) -> set[int]:
    """Where an event's place in a moving range can change: it enters at ts + B (ts without
    `before`) and leaves at ts + W. Nothing else in a rule depends on now."""
    out: set[int] = set()
    for bounds in _moving_bounds(node):
        shifts = [0 if bounds.before is None else duration_ms(bounds.before)]
        if bounds.within is not None:
            shifts.append(duration_ms(bounds.within))
        for _name, ts, _props in history:
            out.update(ts + s for s in shifts)
    return out


def _changes(node: Node, profile: Mapping[str, Value], subscriptions: Mapping[str, bool], history: History,
             member_of: MemberOf, after_ms: int, until_ms: int | None) -> Iterator[tuple[int, bool]]:
    """(t, membership from t on) at each candidate in (after_ms, until_ms] where it differs from t - 1."""
    for t in sorted(c for c in _candidates(node, history) if after_ms < c and (until_ms is None or c <= until_ms)):
        at = _holds(node, profile, subscriptions, history, t, member_of)
        if _holds(node, profile, subscriptions, history, t - 1, member_of) != at:
            yield t, at


def oracle_changes(
    node: Node,
    *,
    kind: str,
    created_at_ms: int,
    profile: Mapping[str, Value],
    subscriptions: Mapping[str, bool],
    events: Iterable[RawEvent],
    start_ms: int,
    end_ms: int,
    member_of: MemberOf = _no_memberships,
) -> list[tuple[int, bool]]:
    """Every instant t in (start_ms, end_ms] where membership with no new event differs from t - 1,
    with the membership from t on, in order.

    Each event's place in each range is constant on [c, c') between consecutive candidates
    (ranges are closed at ts + B and open at ts + W), so comparing c - 1 with c at every
    candidate c finds every change and nothing else.
    """
    history = _history(kind, created_at_ms, events)
    return list(_changes(node, profile, subscriptions, history, member_of, start_ms, end_ms))


def oracle_next_change(
    node: Node,
    *,
    kind: str,
    created_at_ms: int,
    profile: Mapping[str, Value],
    subscriptions: Mapping[str, bool],
    events: Iterable[RawEvent],
    now_ms: int,
    until_ms: int | None = None,
    member_of: MemberOf = _no_memberships,
) -> int | None:
    """The first instant after now_ms (up to until_ms; None: no limit) where membership changes
    with no new event, or None when it never does."""
    history = _history(kind, created_at_ms, events)
    found = next(_changes(node, profile, subscriptions, history, member_of, now_ms, until_ms), None)
    return None if found is None else found[0]
