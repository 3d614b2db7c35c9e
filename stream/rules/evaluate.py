"""Membership from a user's profile, reachability and aggregates at a given instant.

Event conditions are identified by their position in a pre-order walk, not
by value: two equal conditions in one rule get two aggregates, and the
numbering depends only on the rule's shape, so it is stable across workers
and restarts as long as the stored rule is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from stream.rules.aggregate import Aggregate, next_window_change, window_stats
from stream.rules.model import All, AnyOf, EventCond, Node, Not, ProfileCond, Scalar
from stream.rules.ops import compare


def _walk(node: Node) -> Iterator[EventCond]:
    if isinstance(node, EventCond):
        yield node
    elif isinstance(node, All | AnyOf):
        for child in node.children:
            yield from _walk(child)
    elif isinstance(node, Not):
        yield from _walk(node.child)


def event_conditions(node: Node) -> tuple[EventCond, ...]:
    return tuple(_walk(node))


def event_holds(cond: EventCond, agg: Aggregate, now_ms: int) -> bool:
    count, total = window_stats(cond, agg, now_ms)
    if not compare(cond.count.op, count, cond.count.value):
        return False
    return cond.sum is None or compare(cond.sum.op, total, cond.sum.value)


def _check(conds: Sequence[EventCond], aggs: Sequence[Aggregate]) -> None:
    """A length mismatch means state written for another version of the rule; failing beats misreading it."""
    if len(aggs) != len(conds):
        raise ValueError(f"rule has {len(conds)} event conditions but {len(aggs)} aggregates were given")


def evaluate(
    node: Node,
    profile: Mapping[str, Scalar],
    reach: Mapping[str, bool],
    aggs: Sequence[Aggregate],
    now_ms: int,
) -> bool:
    _check(event_conditions(node), aggs)
    return _Evaluator(profile, reach, aggs, now_ms).run(node)


class _Evaluator:
    """Walks every child, never short-circuiting, so the pre-order counter always lines up with aggs."""

    __slots__ = ("aggs", "next_index", "now_ms", "profile", "reach")

    def __init__(
        self, profile: Mapping[str, Scalar], reach: Mapping[str, bool], aggs: Sequence[Aggregate], now_ms: int
    ) -> None:
        self.profile, self.reach, self.aggs, self.now_ms = profile, reach, aggs, now_ms
        self.next_index = 0

    def run(self, node: Node) -> bool:
        if isinstance(node, All):
            return all([self.run(c) for c in node.children])
        if isinstance(node, AnyOf):
            return any([self.run(c) for c in node.children])
        if isinstance(node, Not):
            return not self.run(node.child)
        if isinstance(node, ProfileCond):
            return compare(node.op, self.profile.get(node.prop), node.value)
        if isinstance(node, EventCond):
            agg = self.aggs[self.next_index]
            self.next_index += 1
            return event_holds(node, agg, self.now_ms)
        return bool(self.reach.get(node.channel, False))


Compiled = Callable[[Mapping[str, Scalar], Mapping[str, bool], Sequence[Aggregate], int], bool]


def compile_rule(node: Node) -> Compiled:
    """The rule as nested closures deciding exactly what `evaluate` decides.

    Each event condition is bound to its aggregate's pre-order index when
    compiled, so there is no per-node type dispatch at run time and `all`/`any`
    may stop early (the walking evaluator may not: its counter must see every
    node). Segments compile their rule once; `evaluate` stays the reference.
    """
    index = iter(range(1 << 30))

    def build(n: Node) -> Compiled:
        if isinstance(n, All):
            parts = [build(c) for c in n.children]
            return lambda p, r, a, t: all(f(p, r, a, t) for f in parts)
        if isinstance(n, AnyOf):
            parts = [build(c) for c in n.children]
            return lambda p, r, a, t: any(f(p, r, a, t) for f in parts)
        if isinstance(n, Not):
            inner = build(n.child)
            return lambda p, r, a, t: not inner(p, r, a, t)
        if isinstance(n, ProfileCond):
            op, prop, value = n.op, n.prop, n.value
            return lambda p, r, a, t: compare(op, p.get(prop), value)
        if isinstance(n, EventCond):
            at, cond = next(index), n
            return lambda p, r, a, t: event_holds(cond, a[at], t)
        channel = n.channel
        return lambda p, r, a, t: bool(r.get(channel, False))

    return build(node)


def next_change_ms(node: Node, aggs: Sequence[Aggregate], now_ms: int,
                   conds: Sequence[EventCond] | None = None) -> int | None:
    """When a timer must look at this user again even if no event arrives.

    Reports window-content changes, not verdict changes: a change that does
    not flip membership costs one needless re-evaluation, while predicting
    flips would duplicate the evaluator for little gain.
    """
    if conds is None:
        conds = event_conditions(node)
    _check(conds, aggs)
    times = [t for c, a in zip(conds, aggs, strict=True) if (t := next_window_change(c, a, now_ms)) is not None]
    return min(times, default=None)
