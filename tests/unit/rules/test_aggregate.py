"""Aggregates, windows and evaluation on hand-picked cases, boundaries first."""

from __future__ import annotations

import math

import pytest

from stream.rules import (
    MS_PER_DAY,
    Aggregate,
    EventCond,
    aggregates_from_json,
    aggregates_to_json,
    evaluate,
    event_conditions,
    event_matches,
    fold,
    measure,
    new_aggregate,
    next_change_ms,
    parse_rule,
    prune,
    window_ms,
)

pytestmark = pytest.mark.unit

DAY = MS_PER_DAY
T0 = 1_800_000_000_000


def window_stats(c: EventCond, agg: Aggregate, now: int) -> tuple[int, float]:
    """(count, sum) as v1 reported them: the count and the sum test's value (0 without one)."""
    m = measure(c, agg, now)
    return m.count, float(m.values[0]) if m.values and m.values[0] is not None else 0.0


def cond(**kw: object) -> EventCond:
    node = parse_rule({"event": {"name": "Charged", **kw}})
    assert isinstance(node, EventCond)
    return node


def test_event_matches_name_and_filters() -> None:
    c = cond(
        where=[
            {"prop": "category", "op": "eq", "value": "shoes"},
            {"prop": "amount", "op": "gt", "value": 10},
        ]
    )
    assert event_matches(c, "Charged", {"category": "shoes", "amount": 11})
    assert not event_matches(c, "charged", {"category": "shoes", "amount": 11})
    assert not event_matches(c, "Charged", {"category": "shoes", "amount": 10})
    assert not event_matches(c, "Charged", {"category": "shoes"})
    assert not event_matches(c, "Charged", {"category": "shoes", "amount": "11"})
    assert event_matches(cond(), "Charged", {})


def test_non_windowed_fold_counts_and_sums_numbers_only() -> None:
    c = cond(sum={"prop": "amount", "op": "gte", "value": 0})
    agg = new_aggregate()
    for props in (
        {"amount": 10},
        {"amount": 2.5},
        {"amount": True},
        {"amount": "7"},
        {},
        {"amount": float("nan")},
    ):
        fold(c, agg, T0, props)
    assert (agg.count, math.fsum(agg.total), agg.entries) == (6, 12.5, [])
    assert window_stats(c, agg, T0 - 10 * DAY) == (6, 12.5)


def test_fold_without_sum_adds_zero() -> None:
    agg = new_aggregate()
    fold(cond(), agg, T0, {"amount": 5})
    assert (agg.count, math.fsum(agg.total)) == (1, 0.0)


def test_windowed_fold_keeps_entries_sorted() -> None:
    c = cond(within_days=1, sum={"prop": "v", "op": "gte", "value": 0})
    agg = new_aggregate()
    for ts, v in ((T0 + 5, 1), (T0, 2), (T0 + 3, 3), (T0, 4)):
        fold(c, agg, ts, {"v": v})
    assert agg.entries == [(T0, 2.0), (T0, 4.0), (T0 + 3, 3.0), (T0 + 5, 1.0)]
    assert (agg.count, agg.total) == (0, [])


def test_window_boundaries_are_open_below_closed_above() -> None:
    c = cond(within_days=1, sum={"prop": "v", "op": "gte", "value": 0})
    agg = new_aggregate()
    fold(c, agg, T0, {"v": 5})
    assert window_stats(c, agg, T0 - 1) == (0, 0.0)  # future: not yet counted
    assert window_stats(c, agg, T0) == (1, 5.0)  # ts <= now
    assert window_stats(c, agg, T0 + DAY - 1) == (1, 5.0)
    assert window_stats(c, agg, T0 + DAY) == (0, 0.0)  # now - D < ts fails at equality


def test_prune_drops_only_what_can_never_count_again() -> None:
    c = cond(within_days=1)
    agg = new_aggregate()
    for ts in (T0, T0 + 1, T0 + 2 * DAY):
        fold(c, agg, ts, {})
    prune(c, agg, T0 + DAY - 1)
    assert [ts for ts, _ in agg.entries] == [T0, T0 + 1, T0 + 2 * DAY]
    prune(c, agg, T0 + DAY)
    assert [ts for ts, _ in agg.entries] == [T0 + 1, T0 + 2 * DAY]
    prune(c, agg, T0 + 10 * DAY)
    assert agg.entries == []


def test_prune_ignores_non_windowed() -> None:
    c = cond()
    agg = Aggregate(count=3, total=[1.0])
    prune(c, agg, T0 + 100 * DAY)
    assert (agg.count, agg.total) == (3, [1.0])


def test_fractional_days_round_to_milliseconds() -> None:
    assert window_ms(0.1) == 8_640_000
    assert window_ms(1 / 3) == 28_800_000
    assert window_ms(30) == 30 * DAY
    assert window_ms(3650) == 3650 * DAY


def test_next_change_reports_exits_and_future_entries() -> None:
    node = parse_rule({"all": [{"event": {"name": "A", "within_days": 1}}, {"event": {"name": "B"}}]})
    a, b = new_aggregate(), new_aggregate()
    assert next_change_ms(node, [a, b], T0) is None
    fold(event_conditions(node)[1], b, T0, {})
    assert next_change_ms(node, [a, b], T0) is None  # non-windowed never changes by itself
    fold(event_conditions(node)[0], a, T0 - 100, {})
    assert next_change_ms(node, [a, b], T0) == T0 - 100 + DAY
    fold(event_conditions(node)[0], a, T0 + 50, {})  # future event enters first
    assert next_change_ms(node, [a, b], T0) == T0 + 50
    assert next_change_ms(node, [a, b], T0 + 50) == T0 - 100 + DAY
    assert next_change_ms(node, [a, b], T0 - 100 + DAY) == T0 + 50 + DAY
    assert next_change_ms(node, [a, b], T0 + 50 + DAY) is None


def test_next_change_ignores_expired_entries_even_unpruned() -> None:
    node = parse_rule({"event": {"name": "A", "within_days": 1}})
    agg = Aggregate(entries=[(T0 - 5 * DAY, 0.0)])
    assert next_change_ms(node, [agg], T0) is None


def test_evaluate_design_example() -> None:
    node = parse_rule(
        {
            "all": [
                {"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
                {"event": {"name": "Charged", "count": {"op": "gte", "value": 2}, "within_days": 30}},
                {"not": {"event": {"name": "Uninstalled", "within_days": 7}}},
            ]
        }
    )
    charged, uninstalled = event_conditions(node)
    aggs = [new_aggregate(), new_aggregate()]
    profile = {"city": "Pune"}
    fold(charged, aggs[0], T0, {})
    assert not evaluate(node, profile, {}, aggs, T0)
    fold(charged, aggs[0], T0 + 1000, {})
    assert evaluate(node, profile, {}, aggs, T0 + 1000)
    assert not evaluate(node, {"city": "Delhi"}, {}, aggs, T0 + 1000)
    fold(uninstalled, aggs[1], T0 + 2000, {})
    assert not evaluate(node, profile, {}, aggs, T0 + 2000)
    assert evaluate(node, profile, {}, aggs, T0 + 2000 + 7 * DAY)  # uninstall aged out
    assert not evaluate(node, profile, {}, aggs, T0 + 30 * DAY)  # first charge aged out


def test_evaluate_maps_equal_conditions_to_their_own_aggregates() -> None:
    node = parse_rule({"all": [{"event": {"name": "A"}}, {"not": {"event": {"name": "A"}}}]})
    first, second = event_conditions(node)
    assert first == second
    assert evaluate(node, {}, {}, [Aggregate(count=1), Aggregate(count=0)], T0)
    assert not evaluate(node, {}, {}, [Aggregate(count=1), Aggregate(count=1)], T0)


def test_evaluate_does_not_short_circuit_the_numbering() -> None:
    node = parse_rule({"any": [{"reachable": "email"}, {"event": {"name": "A"}}, {"event": {"name": "B"}}]})
    only_b = [Aggregate(count=0), Aggregate(count=1)]
    assert evaluate(node, {}, {"email": True}, only_b, T0)
    assert evaluate(node, {}, {"email": False}, only_b, T0)
    assert not evaluate(node, {}, {}, [new_aggregate(), new_aggregate()], T0)


@pytest.mark.parametrize(
    "rule",
    [
        {"all": [{"any": [{"reachable": "email"}, {"event": {"name": "A"}}]}, {"event": {"name": "B"}}]},
        {"any": [{"all": [{"not": {"reachable": "email"}}, {"event": {"name": "A"}}]}, {"event": {"name": "B"}}]},
    ],
)
def test_short_circuit_inside_a_subtree_keeps_later_indices(rule: object) -> None:
    """B must read its own aggregate even when A's subtree is decided before A is looked at."""
    node = parse_rule(rule)
    assert evaluate(node, {}, {"email": True}, [Aggregate(count=0), Aggregate(count=1)], T0)
    assert not evaluate(node, {}, {"email": True}, [Aggregate(count=1), Aggregate(count=0)], T0)


def test_sum_and_count_must_both_hold() -> None:
    node = parse_rule(
        {
            "event": {
                "name": "A",
                "count": {"op": "gte", "value": 2},
                "sum": {"prop": "v", "op": "gt", "value": 10},
            }
        }
    )
    assert not evaluate(node, {}, {}, [Aggregate(count=1, total=[50.0])], T0)
    assert not evaluate(node, {}, {}, [Aggregate(count=3, total=[10.0])], T0)
    assert evaluate(node, {}, {}, [Aggregate(count=2, total=[10.5])], T0)


def test_did_not_do_holds_with_no_events() -> None:
    node = parse_rule({"not": {"event": {"name": "A", "within_days": 7}}})
    assert evaluate(node, {}, {}, [new_aggregate()], T0)


def test_aggregate_count_mismatch_is_an_error() -> None:
    node = parse_rule({"event": {"name": "A"}})
    with pytest.raises(ValueError, match="1 event conditions but 2"):
        evaluate(node, {}, {}, [new_aggregate(), new_aggregate()], T0)
    with pytest.raises(ValueError, match="1 event conditions but 0"):
        next_change_ms(node, [], T0)


def test_event_conditions_pre_order() -> None:
    node = parse_rule(
        {
            "any": [
                {"all": [{"event": {"name": "A"}}, {"not": {"event": {"name": "B"}}}]},
                {"profile": {"prop": "x", "op": "exists"}},
                {"event": {"name": "C"}},
            ]
        }
    )
    assert [c.name for c in event_conditions(node)] == ["A", "B", "C"]
    assert event_conditions(parse_rule({"reachable": "sms"})) == ()


# --- storage ------------------------------------------------------------------


def test_storage_is_compact() -> None:
    aggs = [
        Aggregate(count=3, total=[12.0]),
        Aggregate(entries=[(T0, 0.0), (T0 + 1500, 2.5), (T0 + 1500, 0.0)]),
        new_aggregate(),
    ]
    text = aggregates_to_json(aggs)
    assert text == f"[[3,12],[0,0,{T0},0,1500,2.5,0,0],[0,0]]"
    assert aggregates_from_json(text) == aggs


def test_storage_round_trips_awkward_floats() -> None:
    aggs = [Aggregate(count=1, total=[0.1 + 0.2]), Aggregate(entries=[(-5, 1e300), (7, -0.0), (9, 2.0**60)])]
    assert aggregates_from_json(aggregates_to_json(aggs)) == aggs


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        "[1]",
        "[[1]]",
        "[[1,2,3]]",
        "[[-1,0]]",
        "[[1.5,0]]",
        '[["1",0]]',
        "[[0,0,5,0,-1,0]]",
        "[[0,0,5.5,0]]",
        "[[true,0]]",
    ],
)
def test_storage_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="aggregates"):
        aggregates_from_json(text)
