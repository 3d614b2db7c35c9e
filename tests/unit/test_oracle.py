"""The brute-force oracle itself, on hand-worked examples of the rule language v2.

Each expectation here is worked out by hand from DESIGN.md "Segment rules"
(and the decisions written at the top of tests/oracle.py), not from the
product, so the property tests that compare the product with the oracle
stand on something checked independently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.rules.model import (
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
    PropFilter,
    Reachable,
    SequenceCond,
    Step,
)
from tests.oracle import (
    RawEvent,
    Value,
    _history,
    _sequence_holds,
    duration_ms,
    oracle_changes,
    oracle_member,
    oracle_next_change,
    sequence_exhaustive,
)

pytestmark = pytest.mark.unit

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T = 1_800_000_000_000
GTE1 = Comparison("gte", 1)


def mins(n: int) -> Duration:
    return Duration("minutes", n)


def hours(n: int) -> Duration:
    return Duration("hours", n)


def days(n: float) -> Duration:
    return Duration("days", n)


def ev(
    name: str,
    *,
    within: Duration | None = None,
    before: Duration | None = None,
    from_ms: int | None = None,
    to_ms: int | None = None,
    count: Comparison = GTE1,
    tests: tuple[AggTest, ...] = (),
    where: tuple[PropFilter, ...] = (),
) -> EventCond:
    return EventCond(name, where, count, tests, Bounds(within, before, from_ms, to_ms))


def seq(*names: str, max_span: Duration | None = None) -> SequenceCond:
    return SequenceCond(tuple(Step(n) for n in names), max_span)


def events(*items: tuple[str, int] | tuple[str, int, Mapping[str, Value]]) -> list[RawEvent]:
    out: list[RawEvent] = []
    for i, item in enumerate(items):
        props: Mapping[str, Value] = item[2] if len(item) == 3 else {}
        out.append((f"e{i}", item[0], item[1], props))
    return out


def member(
    rule: Node,
    evs: Sequence[RawEvent],
    now: int,
    *,
    kind: str = "past_behavior",
    created: int = 0,
    member_of: frozenset[str] = frozenset(),
) -> bool:
    return oracle_member(
        rule, kind=kind, created_at_ms=created, profile={}, subscriptions={}, events=evs, now_ms=now,
        member_of=member_of.__contains__,
    )


def changes(rule: Node, evs: Sequence[RawEvent], start: int, end: int, *, kind: str = "past_behavior",
            created: int = 0) -> list[tuple[int, bool]]:
    return oracle_changes(
        rule, kind=kind, created_at_ms=created, profile={}, subscriptions={}, events=evs, start_ms=start, end_ms=end,
    )


def next_change(rule: Node, evs: Sequence[RawEvent], now: int, until: int | None = None) -> int | None:
    return oracle_next_change(
        rule, kind="past_behavior", created_at_ms=0, profile={}, subscriptions={}, events=evs, now_ms=now,
        until_ms=until,
    )


def test_durations_are_whole_milliseconds() -> None:
    assert duration_ms(mins(30)) == 30 * MIN
    assert duration_ms(hours(2)) == 2 * HOUR
    assert duration_ms(days(90)) == 90 * DAY
    assert duration_ms(days(0.1)) == 8_640_000  # the legacy within_days fraction, rounded
    assert duration_ms(days(1 / 3)) == 28_800_000


# --- windows ---------------------------------------------------------------------


def test_thirty_minute_window() -> None:
    rule = ev("X", within=mins(30))
    evs = events(("X", T))
    assert not member(rule, evs, T - 1)  # not yet happened: within caps ts <= now
    assert member(rule, evs, T)
    assert member(rule, evs, T + 30 * MIN - 1)
    assert not member(rule, evs, T + 30 * MIN)  # now - W < ts is strict
    assert changes(rule, evs, T - DAY, T + DAY) == [(T, True), (T + 30 * MIN, False)]
    assert changes(rule, evs, T, T + DAY) == [(T + 30 * MIN, False)]  # start is exclusive
    assert changes(rule, evs, T - DAY, T + 30 * MIN - 1) == [(T, True)]  # end is inclusive
    assert next_change(rule, evs, T - 1) == T
    assert next_change(rule, evs, T) == T + 30 * MIN
    assert next_change(rule, evs, T, until=T + 30 * MIN - 1) is None
    assert next_change(rule, evs, T + 30 * MIN) is None


def test_hour_window_with_a_count() -> None:
    rule = ev("X", within=hours(1), count=Comparison("gte", 2))
    evs = events(("X", T), ("X", T + 30 * MIN), ("Y", T + 40 * MIN))
    assert not member(rule, evs, T + 30 * MIN - 1)
    assert member(rule, evs, T + 30 * MIN)
    assert member(rule, evs, T + HOUR - 1)
    assert not member(rule, evs, T + HOUR)
    assert changes(rule, evs, T - DAY, T + DAY) == [(T + 30 * MIN, True), (T + HOUR, False)]


def test_count_zero_in_a_window_enters_when_the_event_leaves() -> None:
    rule = ev("X", within=mins(30), count=Comparison("eq", 0))
    evs = events(("X", T))
    assert member(rule, evs, T - 1)
    assert changes(rule, evs, T - DAY, T + DAY) == [(T, False), (T + 30 * MIN, True)]


def test_within_ninety_days_before_forty_five() -> None:
    rule = ev("X", within=days(90), before=days(45))
    evs = events(("X", T))
    assert not member(rule, evs, T)
    assert not member(rule, evs, T + 45 * DAY - 1)
    assert member(rule, evs, T + 45 * DAY)  # ts <= now - B is closed
    assert member(rule, evs, T + 90 * DAY - 1)
    assert not member(rule, evs, T + 90 * DAY)
    assert changes(rule, evs, T - DAY, T + 365 * DAY) == [(T + 45 * DAY, True), (T + 90 * DAY, False)]
    assert next_change(rule, evs, T) == T + 45 * DAY


def test_before_alone_enters_and_stays() -> None:
    rule = ev("X", before=hours(1))
    evs = events(("X", T))
    assert not member(rule, evs, T + HOUR - 1)
    assert member(rule, evs, T + HOUR)
    assert member(rule, evs, T + 3650 * DAY)
    assert changes(rule, evs, T - DAY, T + 3650 * DAY) == [(T + HOUR, True)]


def test_unbounded_counts_future_events_at_once_and_never_changes() -> None:
    rule = ev("X")
    evs = events(("X", T + DAY))
    assert member(rule, evs, T)  # no within/before: no ts <= now
    assert not member(ev("X", within=days(7)), evs, T)
    assert changes(rule, evs, T - DAY, T + 10 * DAY) == []
    assert next_change(rule, evs, T) is None


def test_from_to_is_half_open_and_fixed() -> None:
    rule = ev("X", from_ms=T, to_ms=T + DAY)
    assert member(rule, events(("X", T)), 0)
    assert not member(rule, events(("X", T - 1)), T)
    assert not member(rule, events(("X", T + DAY)), T + 2 * DAY)
    assert member(rule, events(("X", T + DAY - 1)), T)  # no moving bound: no ts <= now
    assert changes(rule, events(("X", T)), T - DAY, T + 10 * DAY) == []
    windowed = ev("X", within=hours(1), from_ms=T, to_ms=T + DAY)
    evs = events(("X", T - MIN), ("X", T + 10 * MIN))
    assert changes(windowed, evs, T - DAY, T + DAY) == [(T + 10 * MIN, True), (T + 70 * MIN, False)]


def test_first_time_in_seven_days() -> None:
    rule = All((ev("X", within=days(7)), Not(ev("X", before=days(7)))))
    evs = events(("X", T))
    assert not member(rule, evs, T - 1)
    assert member(rule, evs, T)
    assert member(rule, evs, T + 7 * DAY - 1)
    assert not member(rule, evs, T + 7 * DAY)  # both halves flip at the same instant
    assert changes(rule, evs, T - DAY, T + 30 * DAY) == [(T, True), (T + 7 * DAY, False)]
    again = events(("X", T), ("X", T + 3 * DAY))
    assert member(rule, again, T + 3 * DAY)
    assert changes(rule, again, T - DAY, T + 30 * DAY) == [(T, True), (T + 7 * DAY, False)]
    old = events(("X", T - 10 * DAY), ("X", T))
    assert not member(rule, old, T)
    assert changes(rule, old, T - 20 * DAY, T + 30 * DAY) == [(T - 10 * DAY, True), (T - 3 * DAY, False)]


def test_horizon_and_redelivery() -> None:
    rule = ev("X", within=hours(1))
    evs = events(("X", T))
    assert not member(rule, evs, T, kind="live", created=T + 1)
    assert member(rule, evs, T, kind="live", created=T)
    assert member(rule, evs, T, kind="past_behavior", created=T + 1)
    redelivered: list[RawEvent] = [("e1", "X", T, {}), ("e1", "X", T + HOUR, {}), ("e1", "Y", T, {})]
    assert not member(rule, redelivered, T + HOUR)  # the first delivery is the event
    assert changes(rule, redelivered, T - DAY, T + DAY) == [(T, True), (T + HOUR, False)]
    assert changes(rule, evs, T - DAY, T + DAY, kind="live", created=T + 1) == []
    with pytest.raises(ValueError, match="custom_list"):
        member(rule, evs, T, kind="custom_list")


# --- aggregates ------------------------------------------------------------------


ANY_COUNT = Comparison("gte", 0)


def agg(kind: str, op: str, value: float, count: Comparison = GTE1) -> EventCond:
    return ev("C", count=count, tests=(AggTest(kind, "amount", op, value),))


AMOUNTS: list[Value | None] = [10, 2.5, "7", True, 10.0, "10", None]
"""Numbers 10, 2.5, 10.0; "7", True, "10" are not numbers; one event lacks the prop."""


def charged(values: Sequence[Value | None]) -> list[RawEvent]:
    return events(*(("C", T + i) if v is None else ("C", T + i, {"amount": v}) for i, v in enumerate(values)))


@pytest.mark.parametrize(
    ("kind", "op", "value", "expected"),
    [
        ("sum", "eq", 22.5, True),
        ("min", "eq", 2.5, True),
        ("min", "gt", 2.5, False),
        ("max", "eq", 10, True),
        ("max", "lt", 10, False),
        ("avg", "eq", 7.5, True),
        ("avg", "gte", 7.6, False),
        # 10 (== 10.0), 2.5, "7", True, "10"
        ("distinct", "eq", 5, True),
        ("distinct", "gt", 5, False),
    ],
)
def test_aggregates_over_mixed_props(kind: str, op: str, value: float, expected: bool) -> None:
    assert member(agg(kind, op, value), charged(AMOUNTS), T + DAY) is expected


def test_distinct_compares_by_family() -> None:
    assert member(agg("distinct", "eq", 3), charged([1, True, "1", 1.0, None]), T + DAY)
    assert member(agg("distinct", "eq", 2), charged([False, 0, 0.0, False]), T + DAY)
    assert member(agg("distinct", "eq", 0), charged([None, None]), T + DAY)
    assert member(agg("distinct", "eq", 0, ANY_COUNT), [], T)
    assert not member(agg("distinct", "eq", 0), [], T)  # the default count still applies


@pytest.mark.parametrize("kind", ["min", "max", "avg"])
def test_min_max_avg_without_a_number_are_false(kind: str) -> None:
    no_numbers: list[list[Value | None]] = [[], ["7", True, None], [float("inf")]]
    for values in no_numbers:
        evs = charged(values)
        for op, value in (("gte", -1e9), ("lte", 1e9), ("neq", 0), ("eq", 0)):
            assert not member(agg(kind, op, value, ANY_COUNT), evs, T + DAY), (kind, values, op)
        assert member(Not(agg(kind, "gte", -1e9, ANY_COUNT)), evs, T + DAY)
    assert member(agg(kind, "gte", 0), charged(["7", 1]), T + DAY)
    assert member(agg("sum", "eq", 0), charged(["7", True]), T + DAY)  # a sum of nothing is 0
    assert member(agg("sum", "eq", 0, ANY_COUNT), [], T)


def test_every_test_must_hold_and_only_counted_events_feed_them() -> None:
    both = ev("C", within=hours(1), tests=(AggTest("min", "amount", "gte", 2), AggTest("max", "amount", "lte", 5)))
    evs = events(("C", T, {"amount": 1}), ("C", T + 30 * MIN, {"amount": 3}), ("C", T + 40 * MIN, {"amount": 5}))
    assert not member(both, evs, T + 40 * MIN)  # min is 1
    assert member(both, evs, T + HOUR)  # the 1 has left the window
    assert changes(both, evs, T - DAY, T + DAY) == [(T + HOUR, True), (T + 100 * MIN, False)]
    filtered = EventCond("C", (PropFilter("amount", "gt", 2),), GTE1, (AggTest("avg", "amount", "eq", 4),))
    assert member(filtered, evs, T + HOUR)


# --- sequences -------------------------------------------------------------------


def test_sequence_with_a_one_hour_span() -> None:
    rule = seq("A", "B", max_span=hours(1))
    assert not member(rule, events(("A", T), ("B", T)), T + DAY)  # equal timestamps are not a sequence
    assert member(rule, events(("A", T), ("B", T + 1)), T + DAY)
    assert member(rule, events(("A", T), ("B", T + HOUR)), T + DAY)  # span == max_span
    assert not member(rule, events(("A", T), ("B", T + HOUR + 1)), T + DAY)
    assert not member(rule, events(("B", T), ("A", T + 1)), T + DAY)  # wrong order
    assert member(rule, events(("A", T), ("A", T + 30 * MIN), ("B", T + 70 * MIN)), T + DAY)  # the later A
    assert member(seq("A", "B"), events(("A", T), ("B", T + 30 * DAY)), T)  # no span, no bounds
    assert not member(seq("A", "A"), events(("A", T), ("A", T)), T)
    assert member(seq("A", "B", "A"), events(("A", T), ("B", T + 1), ("A", T + 2)), T)
    assert not member(seq("A", "B", "A"), events(("A", T), ("B", T + 1)), T)


def test_sequence_steps_filter_and_bounds_move() -> None:
    steps = (Step("A", (PropFilter("cat", "eq", "x"),)), Step("B"))
    rule = SequenceCond(steps, hours(1), Bounds(within=hours(2)))
    evs = events(("A", T, {"cat": "y"}), ("A", T + 10 * MIN, {"cat": "x"}), ("B", T + 30 * MIN))
    assert not member(rule, evs, T + 30 * MIN - 1)
    assert member(rule, evs, T + 30 * MIN)
    assert member(rule, evs, T + 130 * MIN - 1)
    assert not member(rule, evs, T + 130 * MIN)  # the first step left the window
    assert changes(rule, evs, T - DAY, T + DAY) == [(T + 30 * MIN, True), (T + 130 * MIN, False)]


def test_abandoned_cart() -> None:
    rule = All((ev("AddToCart", within=days(1), before=hours(1)),
                Not(seq("AddToCart", "Charged", max_span=hours(1)))))
    cart = events(("AddToCart", T))
    assert not member(rule, cart, T + HOUR - 1)
    assert member(rule, cart, T + HOUR)
    assert member(rule, cart, T + DAY - 1)
    assert not member(rule, cart, T + DAY)
    assert changes(rule, cart, T - DAY, T + 10 * DAY) == [(T + HOUR, True), (T + DAY, False)]
    bought = events(("AddToCart", T), ("Charged", T + 30 * MIN))
    assert not member(rule, bought, T + HOUR)
    assert changes(rule, bought, T - DAY, T + 10 * DAY) == []
    late = events(("AddToCart", T), ("Charged", T + 2 * HOUR))
    assert member(rule, late, T + 2 * HOUR)
    same = events(("AddToCart", T), ("Charged", T))
    assert changes(rule, same, T - DAY, T + 10 * DAY) == [(T + HOUR, True), (T + DAY, False)]


@st.composite
def small_sequences(draw: st.DrawFn) -> tuple[SequenceCond, list[RawEvent], int]:
    names = st.sampled_from(["A", "B", "C"])
    steps = tuple(Step(n) for n in draw(st.lists(names, min_size=2, max_size=4)))
    span = draw(st.sampled_from([None, mins(30), hours(1)]))
    within = draw(st.sampled_from([None, hours(1), hours(2)]))
    before = draw(st.sampled_from([None, mins(30)])) if within is not None else None
    evs: list[RawEvent] = [(f"e{i}", draw(names), T + draw(st.integers(0, 12)) * 15 * MIN, {})
                           for i in range(draw(st.integers(0, 8)))]
    return SequenceCond(steps, span, Bounds(within, before)), evs, T + draw(st.integers(0, 16)) * 15 * MIN


@settings(max_examples=300, deadline=None)
@given(small_sequences())
def test_sequence_search_matches_every_tuple(case: tuple[SequenceCond, list[RawEvent], int]) -> None:
    cond, evs, now = case
    history = _history("past_behavior", 0, evs)
    assert _sequence_holds(cond, history, now) == sequence_exhaustive(cond, history, now)


# --- in_segment and the rest ----------------------------------------------------------


def test_in_segment_asks_the_caller() -> None:
    rule = All((InSegment("s-1"), ev("X", within=hours(1))))
    evs = events(("X", T))
    assert member(rule, evs, T, member_of=frozenset({"s-1"}))
    assert not member(rule, evs, T, member_of=frozenset({"s-2"}))
    assert not member(rule, evs, T)  # default: no memberships
    assert member(Not(InSegment("s-1")), [], T)
    asked: list[str] = []

    def member_of(segment_id: str) -> bool:
        asked.append(segment_id)
        return True

    assert oracle_member(InSegment("s-9"), kind="live", created_at_ms=0, profile={}, subscriptions={}, events=[],
                         now_ms=T, member_of=member_of)
    assert asked == ["s-9"]
    assert oracle_changes(rule, kind="live", created_at_ms=0, profile={}, subscriptions={}, events=evs,
                          start_ms=T - DAY, end_ms=T + DAY, member_of=lambda s: s == "s-1") == [
        (T, True), (T + HOUR, False)]
    assert changes(rule, evs, T - DAY, T + DAY) == []


def test_profile_and_reachability_do_not_move_with_time() -> None:
    rule = AnyOf((Reachable("email"), ev("X", within=mins(30))))
    reach = oracle_member(rule, kind="live", created_at_ms=0, profile={"email": "a@b.c"}, subscriptions={},
                          events=events(("X", T)), now_ms=T + HOUR)
    assert reach
    assert oracle_changes(rule, kind="live", created_at_ms=0, profile={"email": "a@b.c"}, subscriptions={},
                          events=events(("X", T)), start_ms=T - DAY, end_ms=T + DAY) == []
