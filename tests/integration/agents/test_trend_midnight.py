"""Trend days across a simulated midnight, one of them passed with the worker stopped.

Drives the real engine over the real Redis with a manual clock (stream.testing),
so two midnights take milliseconds instead of days.
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from stream.config import Settings
from stream.rules import parse_segment
from stream.state.members import member_count
from stream.state.trend import build_trend, local_day, read_trend
from stream.testing import EngineHarness, ms, utc
from stream.wiring import Core

pytestmark = pytest.mark.integration


def viewed(uid: str, at_ms: int) -> dict[str, object]:
    return {"event_id": f"{uid}-{at_ms}", "user_id": uid, "name": "Viewed", "ts": at_ms}


async def test_trend_is_exact_across_midnights_even_with_the_worker_down(topics: Settings, redis: Redis,
                                                                         core: Core) -> None:
    settings = topics
    h = EngineHarness.create(core.store, settings)
    keys = core.keys
    try:
        eng = h.engine
        created = utc(2026, 11, 20, 10, 0, 0)
        seg, _ = await core.catalog.create_segment(parse_segment(
            {"name": "viewed today", "kind": "past_behavior", "rule": {"event": {"name": "Viewed", "within_days": 1}}}),
            created_ms=ms(created))

        h.clock.set(utc(2026, 11, 20, 23, 59, 50))   # day 0, ten seconds to midnight
        await h.send_events(viewed("a", ms(h.clock.time())), viewed("b", ms(h.clock.time())))
        h.clock.set(utc(2026, 11, 21, 0, 0, 10))     # day 1
        await h.send_events(viewed("c", ms(h.clock.time())))
        assert await member_count(redis, keys, seg.id) == 3

        # The worker is down from here until day 2 00:30: a and b left at day 1 23:59:50,
        # c at day 2 00:00:10; nobody ticks the timers in between.
        h.clock.set(utc(2026, 11, 22, 0, 30, 0))
        assert await h.tick() == 3
        assert await member_count(redis, keys, seg.id) == 0

        h.clock.set(utc(2026, 11, 23, 12, 0, 0))     # day 3: look at the trend
        counters, size = await read_trend(redis, keys, seg.id)
        zone = eng.committer.zone
        points, today = build_trend(counters, size, local_day(seg.created_at_ms, zone),
                                    local_day(ms(h.clock.time()), zone))
        assert [(p.date, p.size, p.entered, p.exited) for p in points] == [
            ("2026-11-21", 1, 1, 2),  # c entered; a and b left at 23:59:50 although nobody was up
            ("2026-11-22", 0, 0, 1),  # c left at 00:00:10, noticed at 00:30
        ]
        assert (today.date, today.size, today.entered, today.exited) == ("2026-11-23", 0, 0, 0)
        # Day 0 is the creation day: not a full day, so not a point; its entries are in the counters.
        assert counters["e:2026-11-20"] == 2
        published = [c for _, c in h.outputs.changes]
        assert len(published) == 6  # three entries, three exits
    finally:
        h.clock.set(utc(2026, 11, 23, 12, 0, 0))
