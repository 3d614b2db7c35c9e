"""Property tests: incremental aggregates versus the brute-force oracle, over random rules and streams.

The harness plays the worker's part (dedupe by event_id, the kind's lower
bound, fold, prune at each tick) and checks membership against
`tests.oracle.oracle_member` at every tick, plus the exactness of
`next_change_ms` between ticks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.rules import (
    CHANNELS,
    COMPARISON_OPS,
    MS_PER_DAY,
    OPERATORS,
    Aggregate,
    All,
    AnyOf,
    Comparison,
    EventCond,
    Node,
    Not,
    ProfileCond,
    PropFilter,
    Reachable,
    Scalar,
    SumCond,
    aggregates_from_json,
    aggregates_to_json,
    describe,
    evaluate,
    event_conditions,
    event_matches,
    fold,
    new_aggregate,
    next_change_ms,
    parse_rule,
    prune,
    reachability,
    rule_to_json,
    window_ms,
    window_stats,
)
from tests.oracle import oracle_member

pytestmark = pytest.mark.unit

DAY = MS_PER_DAY
GRID = DAY // 4
T0 = 1_800_000_000_000

# --- rule strategies -----------------------------------------------------------

strings = st.sampled_from(["", "a", "b", "ab", "Pune", "3"])
numbers = st.one_of(st.integers(-2, 5), st.sampled_from([0.5, 1.5, 2.0, -0.5]))
scalars: st.SearchStrategy[Scalar] = st.one_of(strings, numbers, st.booleans())


@st.composite
def operand(draw: st.DrawFn, op: str) -> Scalar | tuple[Scalar, ...] | None:
    if op in ("exists", "not_exists"):
        return None
    if op in ("in", "not_in"):
        return tuple(draw(st.lists(scalars, min_size=1, max_size=3)))
    if op == "contains":
        return draw(strings)
    if op in ("eq", "neq"):
        return draw(scalars)
    return draw(st.one_of(strings, numbers))


@st.composite
def profile_conds(draw: st.DrawFn) -> ProfileCond:
    op = draw(st.sampled_from(OPERATORS))
    prop = draw(st.sampled_from(["city", "age", "vip", "email", "missing"]))
    return ProfileCond(prop, op, draw(operand(op)))


@st.composite
def prop_filters(draw: st.DrawFn) -> PropFilter:
    op = draw(st.sampled_from(OPERATORS))
    return PropFilter(draw(st.sampled_from(["cat", "amount", "flag"])), op, draw(operand(op)))


WINDOWS = [None, 1, 2, 0.5, 0.25, 3, 1 / 3, 0.1]


@st.composite
def event_conds(draw: st.DrawFn, windowed: bool = False) -> EventCond:
    count = Comparison(draw(st.sampled_from(COMPARISON_OPS)), draw(st.integers(0, 3)))
    if draw(st.integers(0, 3)) == 0:
        count = Comparison("gte", 1)
    total = None
    if draw(st.booleans()):
        value = draw(st.integers(-4, 12)) / 2
        total = SumCond("amount", draw(st.sampled_from(COMPARISON_OPS)), value)
    return EventCond(
        name=draw(st.sampled_from(["A", "B", "C"])),
        where=tuple(draw(st.lists(prop_filters(), max_size=2))) if draw(st.booleans()) else (),
        count=count,
        sum=total,
        within_days=draw(st.sampled_from(WINDOWS[1:] if windowed else WINDOWS)),
    )


leaves = st.one_of(
    profile_conds(),
    event_conds(),
    event_conds(),
    event_conds(),
    st.sampled_from(CHANNELS).map(Reachable),
)


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    kids = st.lists(children, min_size=1, max_size=3).map(tuple)
    return st.one_of(kids.map(All), kids.map(AnyOf), children.map(Not))


rules: st.SearchStrategy[Node] = st.recursive(leaves, _extend, max_leaves=7)
window_rules: st.SearchStrategy[Node] = st.recursive(event_conds(windowed=True), _extend, max_leaves=4)
"""Only windowed event conditions: dense in the boundary cases that `rules` reaches less often."""

# --- user strategies ---------------------------------------------------------------

identities = st.sampled_from(["", " ", "id-1", "x@y.z"])
profiles = st.fixed_dictionaries(
    {},
    optional={
        "city": st.one_of(strings, numbers),
        "age": st.one_of(numbers, strings, st.booleans()),
        "vip": st.one_of(st.booleans(), numbers),
        "email": identities,
        "phone": identities,
        "push_token": identities,
        "web_push_token": identities,
    },
)
subscriptions = st.dictionaries(st.sampled_from(CHANNELS), st.booleans(), max_size=5)


def event_props(rule: Node) -> st.SearchStrategy[dict[str, Scalar]]:
    """Props biased towards the rule's own filter values, so filters pass often enough to matter."""
    hints: list[Scalar] = []
    for cond in event_conditions(rule):
        for f in cond.where:
            hints.extend(f.value if isinstance(f.value, tuple) else () if f.value is None else (f.value,))
    hinted = st.sampled_from(hints) if hints else scalars
    return st.fixed_dictionaries(
        {},
        optional={
            "cat": st.one_of(strings, hinted, hinted),
            "amount": st.one_of(numbers, numbers, hinted, strings, st.booleans()),
            "flag": st.one_of(st.booleans(), hinted),
        },
    )


@dataclass
class Tick:
    advance_ms: int


RawEvent = tuple[str, str, int, Mapping[str, Scalar]]


@st.composite
def event_at(draw: st.DrawFn, rule: Node) -> RawEvent:
    ts = T0 + draw(st.integers(-6, 16)) * GRID + draw(st.sampled_from([0, 0, 0, 1, 2, -1, 3_600_000]))
    event_id = f"e{draw(st.integers(0, 24))}"
    names = sorted({c.name for c in event_conditions(rule)} | {"D"})
    return (event_id, draw(st.sampled_from(names)), ts, draw(event_props(rule)))


ticks = st.builds(
    Tick,
    st.one_of(
        st.integers(0, 2).map(lambda k: k * GRID),
        st.integers(0, 2).map(lambda k: k * GRID),
        st.sampled_from([1, 1, 2, 3_600_000, 2 * DAY]),
    ),
)


@st.composite
def streams(draw: st.DrawFn, rule: Node) -> list[RawEvent | Tick]:
    items: st.SearchStrategy[RawEvent | Tick] = st.one_of(event_at(rule), event_at(rule), ticks)
    steps = draw(st.lists(items, min_size=4, max_size=30))
    if draw(st.booleans()) and steps:
        repeat = [s for s in steps if not isinstance(s, Tick)]
        if repeat:
            steps.insert(draw(st.integers(0, len(steps))), draw(st.sampled_from(repeat)))  # exact redelivery
    steps.append(Tick(draw(st.integers(0, 2)) * GRID))
    return steps


# --- harness --------------------------------------------------------------------


@dataclass
class User:
    rule: Node
    kind: str
    created_at: int
    profile: Mapping[str, Scalar]
    subscriptions: Mapping[str, bool]
    delivered: list[RawEvent]

    def oracle(self, now: int) -> bool:
        return oracle_member(
            self.rule,
            kind=self.kind,
            created_at_ms=self.created_at,
            profile=self.profile,
            subscriptions=self.subscriptions,
            events=self.delivered,
            now_ms=now,
        )

    def window_content(self, now: int) -> list[list[tuple[int, str]]]:
        """Which events each windowed condition counts at `now`, recomputed from the raw stream."""
        seen: set[str] = set()
        counted: list[RawEvent] = []
        for event in self.delivered:
            if event[0] not in seen:
                seen.add(event[0])
                if self.kind == "past_behavior" or event[2] >= self.created_at:
                    counted.append(event)
        out = []
        for cond in event_conditions(self.rule):
            if cond.within_days is None:
                continue
            width = window_ms(cond.within_days)
            hits = [(ts, eid) for eid, name, ts, props in counted if event_matches(cond, name, props)]
            out.append(sorted(h for h in hits if now - width < h[0] <= now))
        return out


@settings(max_examples=300, deadline=None)
@given(
    rule=st.one_of(rules, window_rules),
    kind=st.sampled_from(["live", "past_behavior"]),
    created_offset=st.integers(-4, 8),
    profile=profiles,
    subs=subscriptions,
    data=st.data(),
)
def test_incremental_evaluation_matches_oracle(
    rule: Node,
    kind: str,
    created_offset: int,
    profile: Mapping[str, Scalar],
    subs: Mapping[str, bool],
    data: st.DataObject,
) -> None:
    steps = data.draw(streams(rule), label="steps")
    user = User(rule, kind, T0 + created_offset * GRID, profile, subs, [])
    conds = event_conditions(rule)
    reach = reachability(profile, subs)
    aggs: list[Aggregate] = [new_aggregate() for _ in conds]
    seen: set[str] = set()
    now = T0
    for step in steps:
        if not isinstance(step, Tick):
            user.delivered.append(step)
            event_id, name, ts, props = step
            if event_id in seen:
                continue
            seen.add(event_id)
            if kind == "live" and ts < user.created_at:
                continue
            for cond, agg in zip(conds, aggs, strict=True):
                if event_matches(cond, name, props):
                    fold(cond, agg, ts, props)
            continue
        now += step.advance_ms
        for cond, agg in zip(conds, aggs, strict=True):
            prune(cond, agg, now)
        aggs = aggregates_from_json(aggregates_to_json(aggs))
        verdict = evaluate(rule, profile, reach, aggs, now)
        assert verdict == user.oracle(now)
        check_window_counts(user, aggs, now)
        check_next_change(user, aggs, reach, now, verdict)


def capped_counts(user: User, now: int) -> list[int]:
    """A condition without a sum compares its count with v, so it keeps only the v+1 newest entries:
    counts agree up to v+1, which decides the comparison either way."""
    conds = [c for c in event_conditions(user.rule) if c.within_days]
    return [len(hits) if c.sum is not None else min(len(hits), int(c.count.value) + 1)
            for c, hits in zip(conds, user.window_content(now), strict=True)]


def check_window_counts(user: User, aggs: list[Aggregate], now: int) -> None:
    windowed = [(c, a) for c, a in zip(event_conditions(user.rule), aggs, strict=True) if c.within_days]
    counts = [window_stats(c, a, now)[0] if c.sum is not None else min(window_stats(c, a, now)[0],
                                                                         int(c.count.value) + 1)
              for c, a in windowed]
    assert counts == capped_counts(user, now)


def check_next_change(user: User, aggs: list[Aggregate], reach: Mapping[str, bool], now: int, verdict: bool) -> None:
    change = next_change_ms(user.rule, aggs, now)
    content = capped_counts(user, now)
    if change is None:
        assert all(not c for c in content)
        for later in (now + 1, now + 4 * DAY, now + 3650 * DAY):
            assert capped_counts(user, later) == content
            assert evaluate(user.rule, user.profile, reach, aggs, later) == verdict
        return
    assert change > now
    assert user.window_content(change) != user.window_content(change - 1), "reported change is not a change"
    for t in sorted({now + 1, (now + change) // 2, change - 1}):
        if now < t < change:
            assert capped_counts(user, t) == content
            check_window_counts(user, aggs, t)
            assert evaluate(user.rule, user.profile, reach, aggs, t) == verdict
            assert user.oracle(t) == verdict
    assert evaluate(user.rule, user.profile, reach, aggs, change) == user.oracle(change)
    check_window_counts(user, aggs, change)


@settings(max_examples=300, deadline=None)
@given(rule=rules)
def test_canonical_json_round_trips(rule: Node) -> None:
    data = rule_to_json(rule)
    text = json.dumps(data, sort_keys=True)
    again = parse_rule(json.loads(text))
    assert again == rule
    assert json.dumps(rule_to_json(again), sort_keys=True) == text
    assert describe(rule)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(
            Aggregate,
            count=st.integers(0, 10**12),
            total=st.floats(allow_nan=False, allow_infinity=False),
            entries=st.lists(
                st.tuples(st.integers(-(2**62), 2**62), st.floats(allow_nan=False, allow_infinity=False)),
            ).map(sorted),
        ),
        max_size=4,
    )
)
def test_aggregate_storage_round_trips(aggs: list[Aggregate]) -> None:
    assert aggregates_from_json(aggregates_to_json(aggs)) == aggs
