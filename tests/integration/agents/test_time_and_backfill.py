"""Time moves membership (window exits, "did not" entries) and past_behavior backfill."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from stream.config import Settings
from stream.rules import parse_segment
from stream.segments import Segment
from stream.state.jobs import JobStore
from stream.state.keys import Keys
from stream.state.members import member_ids
from stream.wiring import Core
from tests.integration.conftest import Proc, eventually, produce_json
from tests.integration.scenario import expected_members, generate

pytestmark = pytest.mark.integration
DAY_MS = 86_400_000


async def _segment(core: Core, kind: str, rule: dict[str, Any]) -> tuple[Segment, str | None]:
    return await core.catalog.create_segment(parse_segment({"name": "t", "kind": kind, "rule": rule}))


async def _job_done(settings: Settings, redis: Redis, job_id: str) -> bool:
    job = await JobStore(redis, Keys(settings.key_prefix)).get(job_id)
    assert job is not None and job.status != "failed", job
    return job.status == "done"


async def test_window_exit_and_did_not_entry_happen_on_time(
        topics: Settings, redis: Redis, core: Core, producer: AIOKafkaProducer,
        start_worker: Callable[[Settings], Awaitable[Proc]]) -> None:
    settings, keys = topics, Keys(topics.key_prefix)
    await start_worker(settings)
    did = await _segment(core, "past_behavior", {"event": {"name": "Viewed", "within_days": 1}})
    did_not = await _segment(core, "past_behavior",
                             {"not": {"event": {"name": "Viewed", "within_days": 1}}})
    for _, job in (did, did_not):
        assert job is not None
        await eventually(lambda job=job: _job_done(settings, redis, job), timeout=60, what="backfill")
    now = int(time.time() * 1000)
    # Each user's only event leaves the one-day window a few seconds from now.
    due = {f"w-{i}": now + 6000 + 1500 * i for i in range(4)}
    await produce_json(producer, settings.topic_events, [
        {"event_id": f"ev-{uid}", "user_id": uid, "name": "Viewed", "ts": at - DAY_MS} for uid, at in due.items()])

    async def all_in() -> bool:
        return await member_ids(redis, keys, did[0].id) == set(due)

    await eventually(all_in, timeout=30, what="users to enter the window segment")
    assert not await member_ids(redis, keys, did_not[0].id) & set(due)

    left: dict[str, float] = {}
    entered: dict[str, float] = {}

    async def watch() -> bool:
        inside = await member_ids(redis, keys, did[0].id)
        outside = await member_ids(redis, keys, did_not[0].id)
        t = time.time() * 1000
        for uid in due:
            if uid not in inside:
                left.setdefault(uid, t)
            if uid in outside:
                entered.setdefault(uid, t)
        return len(left) == len(due) and len(entered) == len(due)

    await eventually(watch, timeout=60, interval=0.05, what="window exits")
    for uid, at in due.items():
        assert at <= left[uid] <= at + 5000, f"{uid} left {left[uid] - at:.0f} ms after its due time"
        assert at <= entered[uid] <= at + 5000, f"{uid} entered 'did not' {entered[uid] - at:.0f} ms after due"


async def test_past_behavior_backfill_matches_the_oracle_while_events_keep_coming(
        topics: Settings, redis: Redis, core: Core, producer: AIOKafkaProducer,
        start_worker: Callable[[Settings], Awaitable[Proc]]) -> None:
    settings, keys = topics, Keys(topics.key_prefix)
    await start_worker(settings)
    now = int(time.time() * 1000)
    sc = generate(seed=11, users=400, events=8000, now_ms=now, malformed=0)
    history, tail = sc.events[:6000], sc.events[6000:]
    for key, value in sc.profiles:
        await producer.send(settings.topic_profiles, value, key=key.encode())
    for key, value in history:
        await producer.send(settings.topic_events, value, key=key.encode())
    await producer.flush()

    async def history_seen() -> bool:
        counts = [await redis.scard(keys.known(p)) for p in range(settings.partitions)]
        return sum(counts) >= len({k for k, _ in history} | {k for k, _ in sc.profiles})

    await eventually(history_seen, timeout=120, what="the history to be processed")
    rules = [
        {"event": {"name": "Charged", "count": {"op": "gte", "value": 2}, "within_days": 30}},
        {"not": {"event": {"name": "Uninstalled"}}},
        {"event": {"name": "Viewed", "sum": {"prop": "amount", "op": "gte", "value": 300}}},
    ]

    async def keep_producing() -> None:  # events straddle the handover: each must count once
        for key, value in tail:
            await producer.send(settings.topic_events, value, key=key.encode())
            await asyncio.sleep(0.0005)
        await producer.flush()

    feeder = asyncio.create_task(keep_producing())
    made = [await _segment(core, "past_behavior", r) for r in rules]
    await feeder
    for _, job in made:
        assert job is not None
        await eventually(lambda job=job: _job_done(settings, redis, job), timeout=120, what="backfill to finish")
    job = await JobStore(redis, keys).get(made[0][1] or "")
    assert job is not None and job.progress == 1.0 and job.result and job.result["events_read"] > 0

    segments = {seg.id: ("past_behavior", seg.created_at_ms, rule) for (seg, _), rule in zip(made, rules, strict=True)}

    async def matches() -> bool:
        expected = expected_members(sc, segments, int(time.time() * 1000))
        actual = {sid: await member_ids(redis, keys, sid) for sid in segments}
        return actual == expected

    await eventually(matches, timeout=120, interval=1.0, what="backfilled segments to equal the oracle")

    # A wave of "did X" segments (no profile test, false without events) visits only the users
    # the scan found events of; the loud "did not" one above had to visit every known user.
    known = sum([await redis.scard(keys.known(p)) for p in range(settings.partitions)])
    loud = await JobStore(redis, keys).get(made[1][1] or "")
    assert loud is not None and loud.result and loud.result["users"] >= known
    quiet_rules = [
        {"event": {"name": "Searched", "within_days": 60, "where": [{"prop": "q", "op": "eq", "value": "lego"},
                                                                     {"prop": "amount", "op": "gt", "value": 300}]}},
        {"all": [{"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
                 {"event": {"name": "Charged", "where": [{"prop": "category", "op": "eq", "value": "shoes"},
                                                         {"prop": "amount", "op": "gt", "value": 350}]}}]},
    ]
    quiet = [await _segment(core, "past_behavior", r) for r in quiet_rules]
    assert quiet[0][1] == quiet[1][1], "created together, they share one job"
    await eventually(lambda: _job_done(settings, redis, quiet[0][1] or ""), timeout=120, what="the quiet backfill")
    job = await JobStore(redis, keys).get(quiet[0][1] or "")
    assert job is not None and job.result is not None
    assert 0 < job.result["users"] < known / 2, job.result
    segments = {seg.id: ("past_behavior", seg.created_at_ms, rule) for (seg, _), rule in zip(quiet, quiet_rules,
                                                                                              strict=True)}
    await eventually(matches, timeout=60, interval=1.0, what="the quiet segments to equal the oracle")
