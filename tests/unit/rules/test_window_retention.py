"""Windowed count conditions keep only the entries that can still decide the comparison."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.rules.aggregate import Aggregate, fold, measure, prune
from stream.rules.evaluate import event_holds
from stream.rules.model import COMPARISON_OPS, Bounds, Comparison, Duration, EventCond

pytestmark = pytest.mark.unit

DAY = 86_400_000


def cond(op: str, value: int) -> EventCond:
    return EventCond(name="Viewed", where=(), count=Comparison(op, value), bounds=Bounds(within=Duration("days", 1)))


@settings(max_examples=300, deadline=None)
@given(
    op=st.sampled_from(COMPARISON_OPS),
    value=st.integers(0, 4),
    # (arrival step, event time offset from that step's now): late and future events included.
    events=st.lists(st.tuples(st.integers(0, 40), st.integers(-2 * DAY, DAY // 100)), max_size=40),
)
def test_a_pruned_aggregate_decides_like_the_full_history(op: str, value: int,
                                                          events: list[tuple[int, int]]) -> None:
    c = cond(op, value)
    full, kept = Aggregate(), Aggregate()
    step_ms = DAY // 8
    for step in range(48):
        now = 10 * DAY + step * step_ms
        for at, offset in events:
            if at == step:
                fold(c, full, now + offset, {})
                fold(c, kept, now + offset, {})
        prune(c, kept, now)
        assert event_holds(c, kept, now) == event_holds(c, full, now), (step, full.entries, kept.entries)
        # Never more than value+1 entries up to now (future-dated ones wait apart).
        assert sum(1 for ts, _ in kept.entries if ts <= now) <= value + 1


def test_a_heavy_user_keeps_a_handful_of_entries() -> None:
    c = cond("gte", 2)
    agg = Aggregate()
    now = 10 * DAY
    for i in range(10_000):
        fold(c, agg, now - i * 1000, {})
    prune(c, agg, now)
    assert len(agg.entries) == 3
    assert measure(c, agg, now).count == 3
    assert event_holds(c, agg, now)
