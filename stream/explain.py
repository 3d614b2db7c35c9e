"""Why one user is in or out of a segment, and when time alone will change that.

The rule tree is walked with the user's stored state (profile, aggregates,
memberships) at an instant, and every node reports its value, a plain summary
and, for `event` and `sequence`, the evidence: the count, each aggregate's
value, the range's bounds, the chain found. `next_change_at` is predicted, not
guessed: the candidate instants are the ones the timers use (an entry entering
or leaving a range, in this segment or in any segment it uses through
`in_segment`), and the rule is decided again at each until the verdict flips,
so "leaves on …" is the instant the worker's timer will move the user.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any

from stream.membership import UserState, aggregates_for
from stream.rules import (
    AggTest,
    All,
    AnyOf,
    Bounds,
    EventCond,
    InSegment,
    Node,
    Not,
    ProfileCond,
    SequenceCond,
    compare,
    describe,
    iso_ms,
    measure,
    next_change_ms,
    reachability,
)
from stream.segments import Segment, SegmentIndex

MAX_STEPS = 10_000
"""Change points looked at before giving up on a flip (each is one decision of the closure)."""


def explain_user(user: UserState, seg: Segment, index: SegmentIndex, now_ms: int) -> dict[str, Any]:
    """`{"member", "matches", "next_change_at", "rule"}`: `member` is the stored membership,
    `matches` the rule's verdict now (they differ only until a timer or event catches up)."""
    member = seg.id in user.members
    if seg.rule is None:
        return {"member": member, "matches": member, "next_change_at": None, "rule": None}
    closure = _closure(seg.id, index)
    members = _members_at(user, closure, index, now_ms)
    names = {sid: s.name for sid, s in index.segments.items()}
    walker = _Walker(user, seg, members, now_ms, names)
    tree = walker.node(seg.rule)
    flip = _next_flip(user, seg, closure, index, now_ms, bool(tree["value"]))
    return {"member": member, "matches": tree["value"], "next_change_at": None if flip is None else iso_ms(flip),
            "rule": tree}


def _closure(sid: str, index: SegmentIndex) -> list[str]:
    """The segment and every segment it uses, directly or not, inner first."""
    found: set[str] = set()
    stack = [sid]
    while stack:
        at = stack.pop()
        if at in found or at not in index.segments:
            continue
        found.add(at)
        stack.extend(index.uses.get(at, ()))
    return index.in_order(found)


def _members_at(user: UserState, closure: list[str], index: SegmentIndex, at_ms: int) -> set[str]:
    """Memberships as the rules decide them at `at_ms`, inner segments first; lists as stored."""
    members = set(user.members)
    reach = reachability(user.profile, user.subscriptions)
    for sid in closure:
        seg = index.segments[sid]
        if seg.decide is None:
            continue
        if seg.decide(user.profile, reach, aggregates_for(user, seg), at_ms, members):
            members.add(sid)
        else:
            members.discard(sid)
    return members


def _next_flip(user: UserState, seg: Segment, closure: list[str], index: SegmentIndex, now_ms: int,
               now_value: bool) -> int | None:
    at = now_ms
    for _ in range(MAX_STEPS):
        candidates = [t for sid in closure if (s := index.segments[sid]).rule is not None
                      and (t := next_change_ms(s.rule, aggregates_for(user, s), at, s.conditions)) is not None]
        if not candidates:
            return None
        at = min(candidates)
        if (seg.id in _members_at(user, closure, index, at)) != now_value:
            return at
    return None


class _Walker:
    def __init__(self, user: UserState, seg: Segment, members: AbstractSet[str], now_ms: int,
                 names: dict[str, str]) -> None:
        self.user, self.members, self.now_ms, self.names = user, members, now_ms, names
        self.aggs = aggregates_for(user, seg)
        self.reach = reachability(user.profile, user.subscriptions)
        self.next_index = 0

    def node(self, n: Node) -> dict[str, Any]:
        out: dict[str, Any] = {"type": _type(n), "summary": describe(n, self.names)}
        if isinstance(n, All | AnyOf):
            children = [self.node(c) for c in n.children]
            values = [bool(c["value"]) for c in children]
            out["value"] = all(values) if isinstance(n, All) else any(values)
            out["children"] = children
        elif isinstance(n, Not):
            child = self.node(n.child)
            out["value"] = not child["value"]
            out["children"] = [child]
        elif isinstance(n, ProfileCond):
            actual = self.user.profile.get(n.prop)
            out["value"] = compare(n.op, actual, n.value)
            out["actual"] = actual
        elif isinstance(n, EventCond | SequenceCond):
            out.update(self._stateful(n))
        elif isinstance(n, InSegment):
            out["value"] = n.segment_id in self.members
            out["segment_id"] = n.segment_id
        else:
            out["value"] = bool(self.reach.get(n.channel, False))
        return out

    def _stateful(self, cond: EventCond | SequenceCond) -> dict[str, Any]:
        agg = self.aggs[self.next_index]
        self.next_index += 1
        m = measure(cond, agg, self.now_ms)
        out: dict[str, Any] = {"count": m.count, "window": _window(cond.bounds, self.now_ms)}
        if isinstance(cond, SequenceCond):
            out["value"] = m.count > 0
            out["found"] = None if m.found is None else [iso_ms(t) for t in m.found]
            return out
        value = compare(cond.count.op, m.count, cond.count.value)
        for test, got in zip(cond.tests, m.values, strict=True):
            out[test.kind] = got
            value = value and _test_holds(test, got)
        out["value"] = value
        return out


def _test_holds(test: AggTest, got: float | int | None) -> bool:
    return got is not None and compare(test.op, got, test.value)


def _window(bounds: Bounds, now_ms: int) -> dict[str, str | None]:
    """The range of event times that count now: `from` inclusive of `from_ms` or exclusive of
    now - within (whichever is later), `to` up to now - before (or `to_ms`, exclusive)."""
    lower = [b for b in (bounds.from_ms, None if bounds.within_ms is None else now_ms - bounds.within_ms)
             if b is not None]
    upper = [b for b in (bounds.to_ms, now_ms - bounds.before_ms if bounds.moving else None) if b is not None]
    return {"from": iso_ms(max(lower)) if lower else None, "to": iso_ms(min(upper)) if upper else None}


def _type(n: Node) -> str:
    return {All: "all", AnyOf: "any", Not: "not", ProfileCond: "profile", EventCond: "event",
            SequenceCond: "sequence", InSegment: "in_segment"}.get(type(n), "reachable")
