"""Exact recounts equal the oracle, report zero drift, and rebuild the estimate sample."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from stream.config import Settings
from stream.rules import CHANNELS, parse_segment, reachability
from stream.state.jobs import JobKind, JobStore
from stream.state.keys import Keys
from stream.state.members import member_count, member_ids
from stream.wiring import Core
from tests.integration.conftest import Proc, eventually
from tests.integration.scenario import RULES, Scenario, expected_members, generate

pytestmark = pytest.mark.integration


def final_profiles(sc: Scenario) -> dict[str, tuple[dict[str, Any], dict[str, bool], bool]]:
    """Last-write-wins profile, subscriptions and blacklist flag per user, from the raw log."""
    out: dict[str, tuple[dict[str, Any], dict[str, bool], bool]] = {}
    last: dict[str, int] = {}
    for uid, raw in sc.profiles:
        body = json.loads(raw)
        profile, subs, black = out.get(uid, ({}, {}, False))
        if body["ts"] >= last.get(uid, -1):
            last[uid] = body["ts"]
            profile = {**profile, **body.get("set", {})}
            for prop in body.get("unset", []):
                profile.pop(prop, None)
            subs = {**subs, **body.get("subscriptions", {})}
            black = body.get("blacklisted", black)
        out[uid] = (profile, subs, black)
    return out


async def _send(producer: AIOKafkaProducer, topic: str, records: list[tuple[str, bytes]]) -> None:
    futures = [await producer.send(topic, v, key=k.encode()) for k, v in records]
    await asyncio.gather(*futures)


async def test_recount_equals_the_oracle_with_zero_drift_during_ingestion(
        topics: Settings, redis: Redis, core: Core, producer: AIOKafkaProducer,
        start_worker: Callable[[Settings], Awaitable[Proc]]) -> None:
    settings, keys = topics, Keys(topics.key_prefix)
    jobs = JobStore(redis, keys)
    await start_worker(settings)
    chosen = [RULES[3], RULES[6], RULES[10], RULES[12]]
    made = [await core.catalog.create_segment(parse_segment({"name": f"r{i}", "kind": "past_behavior", "rule": r}))
            for i, r in enumerate(chosen)]
    segments = {seg.id: ("past_behavior", seg.created_at_ms, r) for (seg, _), r in zip(made, chosen, strict=True)}
    sc = generate(seed=21, users=600, events=12000, now_ms=int(time.time() * 1000), malformed=0)
    await _send(producer, settings.topic_profiles, sc.profiles)
    await _send(producer, settings.topic_events, sc.events[:6000])

    # Recount while the second half is still streaming in.
    feeder = asyncio.create_task(_send(producer, settings.topic_events, sc.events[6000:]))
    during = [await jobs.create(JobKind.RECOUNT, sid, settings.partitions) for sid in segments]
    again = await jobs.create(JobKind.RECOUNT, next(iter(segments)), settings.partitions)
    assert again == during[0], "two recounts of one segment at once share one job"
    await feeder

    for job_id in during:
        job = await eventually(lambda j=job_id: _finished(jobs, j), timeout=120, what="the recount during ingestion")
        assert job.result["drift"] == 0, job.result

    async def settled() -> bool:
        expected = expected_members(sc, segments, int(time.time() * 1000))
        actual = {sid: await member_ids(redis, keys, sid) for sid in segments}
        return actual == expected

    await eventually(settled, timeout=120, interval=1.0, what="live membership to equal the oracle")
    expected = expected_members(sc, segments, int(time.time() * 1000))
    people = final_profiles(sc)
    samples = core.samples
    for sid in segments:
        job_id = await jobs.create(JobKind.RECOUNT, sid, settings.partitions)
        job = await eventually(lambda j=job_id: _finished(jobs, j), timeout=120, what="the recount")
        result = job.result
        members = expected[sid]
        assert result["size"] == len(members)
        assert result["blacklisted"] == sum(1 for u in members if people.get(u, ({}, {}, False))[2])
        for channel in CHANNELS:
            want = sum(1 for u in members if reachability(*people.get(u, ({}, {}, False))[:2])[channel])
            assert result["reachability"][channel] == want, channel
        assert result["drift"] == 0
        assert result["users_scanned"] == len({u for u, _ in sc.profiles} | {u for u, _ in sc.events})
        size, reach = await samples.estimate(sid)   # below nominal entries: exact
        assert (size.estimate, size.lower_95, size.upper_95) == (len(members),) * 3
        assert reach["email"].estimate == result["reachability"]["email"]
        exact = json.loads(await redis.get(keys.exact(sid)) or "{}")
        assert exact["size"] == len(members)



async def test_deleting_a_segment_leaves_no_per_user_orphans(
        topics: Settings, redis: Redis, core: Core, producer: AIOKafkaProducer,
        start_worker: Callable[[Settings], Awaitable[Proc]]) -> None:
    settings, keys = topics, Keys(topics.key_prefix)
    jobs = JobStore(redis, keys)
    await start_worker(settings)
    seg, _ = await core.catalog.create_segment(parse_segment(
        {"name": "gone", "kind": "past_behavior", "rule": {"event": {"name": "Viewed", "within_days": 30}}}))
    sc = generate(seed=5, users=200, events=2000, now_ms=int(time.time() * 1000), malformed=0)
    await _send(producer, settings.topic_profiles, sc.profiles)
    await _send(producer, settings.topic_events, sc.events)
    await eventually(lambda: member_count(redis, keys, seg.id), timeout=60, what="members")
    users = {u for u, _ in sc.profiles} | {u for u, _ in sc.events}

    async def all_seen() -> bool:
        return sum([await redis.scard(keys.known(p)) for p in range(settings.partitions)]) == len(users)

    await eventually(all_seen, timeout=60, what="every user to be processed")
    job_id = await core.catalog.delete_segment(seg.id)
    assert job_id is not None
    job = await eventually(lambda: _finished(jobs, job_id), timeout=60, what="the cleanup job")
    assert job.result["users"] == len(users) and job.result["cleaned"] > 0
    for uid in users:
        fields = await redis.hgetall(keys.user(uid))
        assert f"a:{seg.id}" not in fields and f"bf:{seg.id}" not in fields, uid
        assert seg.id not in json.loads(fields.get("m", "[]")), uid
    assert not [k async for k in redis.scan_iter(match=f"{settings.key_prefix}*{seg.id}*")]


async def _finished(jobs: JobStore, job_id: str) -> Any:
    job = await jobs.get(job_id)
    assert job is not None and job.status != "failed", job
    return job if job.status == "done" else None
