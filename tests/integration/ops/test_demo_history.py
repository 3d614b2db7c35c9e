"""`stream demo --days N`: a history lived by the engine, exact against the oracle, then skipped by a worker.

Three days and 300 users keep it fast. The abandoned-cart segment (a day's
window, entered an hour after the add) moves by time all through the history,
on the demo's hourly timer rounds and on the touches between them; users whose
window edge fell in the seconds between the demo's last round and the
oracle's instant are excused (`moved_by_time`). The history is different at
every time of day it runs (sign-ups and the last partial hour follow the
clock). Run at 48 half-hour offsets of a faked clock, this check found two
engine bugs: 61 of 94 runs had memberships the oracle disagreed with before a
touch applied the window changes no timer had (`stream.membership.catch_up`),
and a worker started afterwards moved the trend by an exit and an entry that
the stale-outbox replay counted again (`stream.engine.commit.net_replay`).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from stream.config import Settings
from stream.demo import DEMO_SEGMENTS
from stream.state.keys import Keys
from stream.state.members import member_ids
from stream.state.trend import build_trend, read_trend
from tests.integration.conftest import ROOT, Proc, eventually, settings_env
from tests.integration.scenario import Scenario, expected_members, read_topic

pytestmark = pytest.mark.integration

DAYS = 3


SLACK_MS = 15_000


def moved_by_time(sc: Scenario, ruled: dict[str, tuple[str, int, dict[str, Any]]], t0: int,
                  t1: int) -> dict[str, set[str]]:
    """Per segment, the users whose oracle membership differs between t0 and t1 (time alone)."""
    at0, at1 = expected_members(sc, ruled, t0), expected_members(sc, ruled, t1)
    return {sid: at0[sid] ^ at1[sid] for sid in ruled}


async def snapshot(redis: Redis, keys: Keys, sids: list[str]) -> dict[str, tuple[set[str], dict[str, int]]]:
    out = {}
    for sid in sids:
        counters, _ = await read_trend(redis, keys, sid)
        out[sid] = (await member_ids(redis, keys, sid), counters)
    return out


async def caught_up(settings: Settings) -> bool:
    """The worker's group has committed everything the demo produced."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.app_id)
    finally:
        await admin.close()
    ends = {}
    for topic in (settings.topic_events, settings.topic_profiles):
        for record in await read_topic(settings, topic):
            tp = TopicPartition(topic, record.partition)
            ends[tp] = max(ends.get(tp, 0), record.offset + 1)
    return all(tp in committed and committed[tp].offset >= end for tp, end in ends.items())


async def test_demo_history_is_exact_and_a_worker_started_after_it_changes_nothing(
        topics: Settings, redis: Redis, start_worker: Callable[..., Awaitable[Proc]]) -> None:
    settings = topics
    keys = Keys(settings.key_prefix)
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "stream.cli", "demo", "--days", str(DAYS),
                                                    "--users", "300"], env=settings_env(settings), cwd=ROOT,
                                   capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    now_ms = int(time.time() * 1000)
    definitions = {sid: json.loads(raw) for sid, raw in (await redis.hgetall(keys.segments)).items()}
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=DAYS)
    assert {d["created_at_ms"] for d in definitions.values()} == {int(start.timestamp() * 1000)}
    ruled = {sid: (d["kind"], d["created_at_ms"], d["rule"]) for sid, d in definitions.items() if d.get("rule")}
    assert len(definitions) == len(DEMO_SEGMENTS)
    assert len(ruled) == sum(1 for body in DEMO_SEGMENTS if body.get("rule"))

    # Membership now is what the oracle makes of every message the demo produced.
    events = [(r.key.decode(), r.value) for r in await read_topic(settings, settings.topic_events)]
    profiles = [(r.key.decode(), r.value) for r in await read_topic(settings, settings.topic_profiles)]
    assert len(profiles) == 300 and len(events) > 300 * DAYS
    sc = Scenario(events=events, profiles=profiles)
    want = expected_members(sc, ruled, now_ms)
    before = await snapshot(redis, keys, sorted(definitions))
    # The demo fired its last timers an instant before it exited; a window edge falling since then
    # (an hour-long rule has dozens an hour) is not the demo's to apply, so those users are excused.
    late = moved_by_time(sc, ruled, now_ms - SLACK_MS, now_ms)
    for sid in ruled:
        assert before[sid][0] ^ want[sid] <= late[sid], sid
    assert any(want.values())

    # The trend has a point for every full day since creation, moved by the engine on those days.
    lively = 0
    for sid in ruled:
        counters, size = await read_trend(redis, keys, sid)
        assert size == len(before[sid][0])
        points, today = build_trend(counters, size, start.date(), datetime.now(UTC).date())
        assert [p.date for p in points] == [(start.date() + timedelta(days=d)).isoformat() for d in range(1, DAYS)]
        assert today.size == size
        active_days = {k.split(":", 1)[1] for k, v in counters.items() if v}
        lively = max(lively, len(active_days))
    assert lively >= DAYS, "some segment moved on every day of the history"

    # A worker started afterwards skips what the demo applied: nothing moves.
    await start_worker(settings)
    await eventually(lambda: caught_up(settings), timeout=120, interval=0.5, what="the worker to catch up")
    after = await snapshot(redis, keys, sorted(definitions))
    # Only the worker's own timers may have moved anyone since: users whose window edge came meanwhile.
    moved = moved_by_time(sc, ruled, now_ms - SLACK_MS, int(time.time() * 1000))
    for sid in sorted(definitions):
        assert after[sid][0] ^ before[sid][0] <= moved.get(sid, set()), sid
        if not moved.get(sid):
            assert after[sid] == before[sid], sid
