"""Trend reconstruction: sizes walked back from the current size, exact without midnight snapshots."""

from __future__ import annotations

from datetime import date

import pytest

from stream.state.trend import DayPoint, build_trend

pytestmark = pytest.mark.unit

CREATED = date(2026, 11, 1)
TODAY = date(2026, 11, 5)


def test_points_cover_full_days_after_creation_until_yesterday() -> None:
    counters = {"e:2026-11-01": 10, "e:2026-11-02": 5, "x:2026-11-02": 1, "e:2026-11-03": 2,
                "x:2026-11-04": 3, "e:2026-11-05": 4, "x:2026-11-05": 1}
    # truth: 10 end of 1st, 14 end of 2nd, 16 end of 3rd, 13 end of 4th, 16 now
    points, today = build_trend(counters, 16, CREATED, TODAY)
    assert points == [DayPoint("2026-11-02", 14, 5, 1), DayPoint("2026-11-03", 16, 2, 0),
                      DayPoint("2026-11-04", 13, 0, 3)]
    assert today == DayPoint("2026-11-05", 16, 4, 1)


def test_a_missed_midnight_changes_nothing() -> None:
    """No worker ran over the night of the 3rd: the counters still hold each transition's own day."""
    counters = {"e:2026-11-02": 3, "e:2026-11-04": 2, "x:2026-11-04": 1}
    points, _ = build_trend(counters, 4, CREATED, TODAY)
    assert [(p.date, p.size) for p in points] == [("2026-11-02", 3), ("2026-11-03", 3), ("2026-11-04", 4)]


def test_days_with_no_change_are_still_points() -> None:
    points, today = build_trend({}, 7, CREATED, TODAY)
    assert [p.size for p in points] == [7, 7, 7]
    assert [p.entered + p.exited for p in points] == [0, 0, 0]
    assert today == DayPoint("2026-11-05", 7, 0, 0)


@pytest.mark.parametrize("created", [TODAY, date(2026, 11, 4)])
def test_no_full_day_yet_means_no_points(created: date) -> None:
    points, today = build_trend({"e:2026-11-05": 2}, 2, created, TODAY)
    assert points == []
    assert today.entered == 2


def test_counters_dated_after_today_are_part_of_the_current_size() -> None:
    """A worker whose clock runs ahead dates a transition tomorrow; it is already in SCARD."""
    points, today = build_trend({"e:2026-11-06": 2, "e:2026-11-04": 1}, 3, CREATED, TODAY)
    assert [p.size for p in points] == [0, 0, 1]
    assert today.size == 3


def test_garbage_fields_are_ignored_and_sizes_never_negative() -> None:
    points, _ = build_trend({"bogus": 5, "e:not-a-day": 1, "x:2026-11-04": 9}, 0, CREATED, TODAY)
    assert [p.size for p in points] == [9, 9, 0]
    points, _ = build_trend({"e:2026-11-04": 9}, 0, CREATED, TODAY)
    assert [p.size for p in points] == [0, 0, 0]
