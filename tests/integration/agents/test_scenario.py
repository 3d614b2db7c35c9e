"""Acceptance: a randomized workload ends with every segment equal to the oracle,
with the DLQ holding exactly the malformed messages, also across a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis

from stream.config import Settings
from stream.rules import parse_segment
from stream.state.keys import Keys
from stream.state.members import member_ids
from stream.wiring import Core
from tests.integration.conftest import Proc, eventually
from tests.integration.scenario import RULES, Scenario, expected_members, generate

pytestmark = pytest.mark.integration

USERS, EVENTS = 2000, 50_000
if os.environ.get("SCENARIO_SMALL"):  # a quick variant for debugging by hand
    USERS, EVENTS = 300, 5000


async def _create_segments(core: Core) -> dict[str, tuple[str, int, dict[str, object]]]:
    made: dict[str, tuple[str, int, dict[str, object]]] = {}
    for i, rule in enumerate(RULES):
        kind = "live" if i % 3 == 0 else "past_behavior"
        seg, _ = await core.catalog.create_segment(parse_segment({"name": f"seg {i}", "kind": kind, "rule": rule}))
        made[seg.id] = (kind, seg.created_at_ms, rule)
    return made


async def _produce(producer: AIOKafkaProducer, topic: str, records: list[tuple[str, bytes]]) -> None:
    for start in range(0, len(records), 5000):
        futures = [await producer.send(topic, value, key=key.encode()) for key, value in records[start:start + 5000]]
        await asyncio.gather(*futures)


async def _members(redis: Redis, keys: Keys, sids: list[str]) -> dict[str, set[str]]:
    return {sid: await member_ids(redis, keys, sid) for sid in sids}


async def _dlq_values(settings: Settings, expected: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(settings.topic_dlq, bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=None, enable_auto_commit=False)
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            values += [r.value for rs in batch.values() for r in rs if r.value is not None]
            if len(values) >= expected and not batch:
                break
        return values
    finally:
        await consumer.stop()


async def _run_scenario(settings: Settings, redis: Redis, core: Core, producer: AIOKafkaProducer,
                        start_worker: Callable[[Settings], Awaitable[Proc]], kill_midway: bool) -> None:
    keys = Keys(settings.key_prefix)
    worker = await start_worker(settings)
    segments = await _create_segments(core)
    created = max(c for _, c, _ in segments.values())
    now = int(time.time() * 1000)
    sc: Scenario = generate(seed=7 if kill_midway else 3, users=USERS, events=EVENTS, now_ms=now,
                            live_since_ms=created)
    t0 = time.monotonic()
    await _produce(producer, settings.topic_profiles, sc.profiles)
    half = len(sc.events) // 2
    await _produce(producer, settings.topic_events, sc.events[:half])
    if kill_midway:
        processed = lambda: redis.scard(keys.known(0))  # noqa: E731
        await eventually(processed, timeout=60, what="the worker to be mid-stream")
        worker.kill(signal.SIGKILL)
        await _produce(producer, settings.topic_events, sc.events[half:])
        await _produce(producer, settings.topic_events, [("bad", v) for _, v in sc.malformed])
        worker = await start_worker(settings)
    else:
        await _produce(producer, settings.topic_events, sc.events[half:])
        await _produce(producer, settings.topic_events, [("bad", v) for _, v in sc.malformed])

    sids = sorted(segments)

    async def matches() -> bool:
        expected = expected_members(sc, segments, int(time.time() * 1000))
        actual = await _members(redis, keys, sids)
        return all(actual[s] == expected[s] for s in sids)

    try:
        await eventually(matches, timeout=300, interval=2.0, what="membership to equal the oracle")
    except AssertionError:
        expected = expected_members(sc, segments, int(time.time() * 1000))
        actual = await _members(redis, keys, sids)
        diffs = {
            f"{s} rule {json.dumps(segments[s][2])} {segments[s][0]}": (
                len(actual[s] - expected[s]), len(expected[s] - actual[s]),
                sorted(actual[s] ^ expected[s])[:3])
            for s in sids if actual[s] != expected[s]
        }
        raise AssertionError(f"segments differ (extra, missing): {diffs}\n{worker.tail()}") from None
    elapsed = time.monotonic() - t0
    print(f"\n{len(sc.events) + len(sc.profiles)} messages settled in {elapsed:.1f}s "
          f"({(len(sc.events) + len(sc.profiles)) / elapsed:.0f} msg/s end to end)")
    assert any(len(m) for m in (await _members(redis, keys, sids)).values())

    dlq = await _dlq_values(settings, len(sc.malformed))
    assert Counter(dlq) == Counter(v for _, v in sc.malformed)


async def test_random_workload_matches_the_oracle(topics: Settings, redis: Redis, core: Core,
                                                  producer: AIOKafkaProducer,
                                                  start_worker: Callable[[Settings], Awaitable[Proc]]) -> None:
    await _run_scenario(topics, redis, core, producer, start_worker, kill_midway=False)


async def test_sigkill_midstream_loses_nothing_and_counts_nothing_twice(
        topics: Settings, redis: Redis, core: Core, producer: AIOKafkaProducer,
        start_worker: Callable[[Settings], Awaitable[Proc]]) -> None:
    await _run_scenario(topics, redis, core, producer, start_worker, kill_midway=True)
