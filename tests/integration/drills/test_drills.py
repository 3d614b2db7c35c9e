"""The five durability drills on the real stack, each checked against the independent oracle.

Each drill streams a seeded random workload (profiles, events with duplicate
ids, malformed messages) into 22 segments of every condition kind, injects
its fault mid-stream, and then asserts:
- membership of every segment equals the brute-force oracle;
- the DLQ holds exactly the malformed input (replays may repeat a letter,
  never add a good message);
- every segment's trend counters net to its size (nothing counted twice);
- an exact recount equals the oracle with zero drift;
- `segment-changes` ends on the right change for every (segment, user).
Convergence times go to var/test/drills.json (the note reports them).
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from stream.config import Settings
from stream.kafkaio.topics import create_topics
from stream.rules import parse_segment
from stream.state.client import connect
from stream.state.heartbeats import read_heartbeats
from stream.state.jobs import JobKind, JobStatus
from stream.state.keys import Keys
from stream.state.members import member_ids
from stream.wiring import Core
from tests.integration.conftest import ROOT, Proc, eventually, settings_env
from tests.integration.drills.conftest import KafkaProc, RedisProc
from tests.integration.scenario import RULES, Scenario, expected_members, generate, read_topic

pytestmark = pytest.mark.integration

USERS, EVENTS = 700, 14_000
RESULTS = ROOT / "var" / "test" / "drills.json"
Segments = dict[str, tuple[str, int, dict[str, Any]]]


@dataclass
class Ctx:
    settings: Settings
    redis: Redis
    core: Core
    producer: AIOKafkaProducer
    worker: Proc
    sc: Scenario
    segments: Segments
    # Wall-clock ms from just before a copy of Redis was taken to just after it was restored.
    restored_between: tuple[int, int] | None = None


def record(name: str, **figures: Any) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    found = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    found[name] = figures
    RESULTS.write_text(json.dumps(found, indent=2))


async def send(producer: AIOKafkaProducer, topic: str, records: list[tuple[str, bytes]]) -> None:
    for start in range(0, len(records), 5000):
        futures = [await producer.send(topic, v, key=k.encode()) for k, v in records[start:start + 5000]]
        await asyncio.gather(*futures)


async def make_segments(core: Core) -> Segments:
    made: Segments = {}
    for i, rule in enumerate(RULES):
        kind = "live" if i % 3 == 0 else "past_behavior"
        seg, _ = await core.catalog.create_segment(parse_segment({"name": f"drill {i}", "kind": kind, "rule": rule}))
        made[seg.id] = (kind, seg.created_at_ms, rule)
    return made


async def members(redis: Redis, keys: Keys, sids: list[str]) -> dict[str, set[str]]:
    return {sid: await member_ids(redis, keys, sid) for sid in sids}


async def converge(ctx: Ctx, timeout: float = 300) -> float:
    """Seconds until every segment equals the oracle."""
    started = time.monotonic()
    keys, sids = ctx.core.keys, sorted(ctx.segments)

    async def matches() -> bool:
        assert ctx.worker.alive(), f"worker died:\n{ctx.worker.tail()}"
        want = expected_members(ctx.sc, ctx.segments, int(time.time() * 1000))
        got = await members(ctx.redis, keys, sids)
        return all(got[s] == want[s] for s in sids)

    try:
        await eventually(matches, timeout=timeout, interval=1.0, what="membership to equal the oracle")
    except AssertionError:
        want = expected_members(ctx.sc, ctx.segments, int(time.time() * 1000))
        got = await members(ctx.redis, keys, sids)
        diffs = {s: (len(got[s] - want[s]), len(want[s] - got[s])) for s in sids if got[s] != want[s]}
        detail = []
        for s in [s for s in sids if got[s] != want[s]][:3]:
            uid = sorted(got[s] ^ want[s])[0]
            events = [json.loads(v) for k, v in ctx.sc.events if k == uid]
            detail.append({"segment": s, "rule": ctx.segments[s], "user": uid, "in_redis": uid in got[s],
                           "hash": await ctx.redis.hgetall(keys.user(uid)),
                           "events": [(e["event_id"], e["name"], e["ts"]) for e in events]})
        raise AssertionError(f"segments differ (extra, missing): {diffs}\n{json.dumps(detail, indent=1)}"
                             f"\n{ctx.worker.tail(60)}") from None
    return time.monotonic() - started


async def check_everything(ctx: Ctx, strict_changes: bool = True) -> dict[str, int]:
    keys, sids = ctx.core.keys, sorted(ctx.segments)
    final = await members(ctx.redis, keys, sids)
    # DLQ: exactly the malformed values.
    bad = {v for _, v in ctx.sc.malformed}

    async def dead_lettered() -> bool:  # the malformed input was produced last: it may still be in flight
        found = {r.value for r in await read_topic(ctx.settings, ctx.settings.topic_dlq)}
        assert found <= bad, found - bad
        return found == bad

    await eventually(dead_lettered, timeout=60, interval=1.0, what="the DLQ to hold exactly the malformed input")
    # Trend counters net to the size: no transition counted twice or lost.
    for sid in sids:
        counters = {k: int(v) for k, v in (await ctx.redis.hgetall(keys.trend(sid))).items()}
        net = sum(v for k, v in counters.items() if k.startswith("e:")) - sum(
            v for k, v in counters.items() if k.startswith("x:"))
        assert net == len(final[sid]), (sid, counters, len(final[sid]))
    # segment-changes: the last change of each (segment, user) is their membership now.
    last: dict[tuple[str, str], str] = {}
    history: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for r in await read_topic(ctx.settings, ctx.settings.topic_changes):
        change = json.loads(r.value)
        last[change["segment_id"], change["user_id"]] = change["change"]
        history.setdefault((change["segment_id"], change["user_id"]), []).append((change["change"], change["ts"]))
    stale = 0
    undone = await undone_users(ctx) if not strict_changes else set()
    for sid in sids:
        said = {u for (s, u), c in last.items() if s == sid and c == "entered"}
        if not strict_changes:
            # A Redis restored older undoes work whose transitions were already published, and the
            # replay need not make them again (it applies the topics in another interleaving, at a
            # later instant): a stale word, either way, only for a user whose input was undone.
            wrong = said ^ final[sid]
            assert wrong <= undone, (sid, sorted(wrong - undone)[:5], {u: history.get((sid, u))
                                                                       for u in sorted(wrong - undone)[:2]})
            stale += len(wrong)
            continue
        odd = sorted(said ^ final[sid])[:2]
        if said != final[sid]:
            detail = {"segment": sid, "rule": ctx.segments[sid], "history": {u: history.get((sid, u)) for u in odd},
                      "hash": {u: await ctx.redis.hgetall(keys.user(u)) for u in odd},
                      "profiles": {u: [json.loads(v) for k, v in ctx.sc.profiles if k == u] for u in odd}}
            (RESULTS.parent / "drill-failure.json").write_text(json.dumps(detail, indent=1))
        assert said == final[sid], f"{sid}: see var/test/drill-failure.json"
    # An exact recount of a few segments agrees, with nothing to correct.
    chosen = sids[::6]
    job_ids = [await ctx.core.jobs.create(JobKind.RECOUNT, sid, ctx.settings.partitions) for sid in chosen]

    async def finished(job_id: str) -> Any:
        job = await ctx.core.jobs.get(job_id)
        assert job is not None and job.status != JobStatus.FAILED, job
        return job if job.status == JobStatus.DONE else None

    for sid, job_id in zip(chosen, job_ids, strict=True):
        job = await eventually(lambda j=job_id: finished(j), timeout=120, what="an exact recount")
        assert job.result["size"] == len(final[sid]) and job.result["drift"] == 0, (sid, job.result)
    return {"stale_change_words": stale, "undone_users": len(undone)}


ROLLBACK = re.compile(r"resume point of partition (\d+) is (\{.*?\}) in Redis, not (\{.*?\}) as this worker")


async def undone_users(ctx: Ctx) -> set[str]:
    """Users whose work the restore undid: input in a range the worker had applied (from its
    rollback warnings: partition, what Redis holds, what the worker had left), and any user a
    change was published for between the copy and the restore, since a window's timer moves a
    user with no input (seen: an 'entered' by the timer 0.3 s before the kill, undone, the
    user out by the end, no word after it)."""
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    for m in ROLLBACK.finditer(await asyncio.to_thread(ctx.worker.log.read_text, errors="replace")):
        p, held, left = int(m[1]), ast.literal_eval(m[2]), ast.literal_eval(m[3])
        for topic, end in left.items():
            start = held.get(topic, 0)
            lo, hi = ranges.get((topic, p), (start, end))
            ranges[topic, p] = (min(lo, start), max(hi, end))
    assert ranges, "the worker logged no rollback"
    found: set[str] = set()
    for topic in {t for t, _ in ranges}:
        for r in await read_topic(ctx.settings, topic):
            span = ranges.get((topic, r.partition))
            if span is not None and span[0] <= r.offset < span[1] and r.key is not None:
                found.add(r.key.decode())
    if ctx.restored_between is not None:
        lo, hi = ctx.restored_between
        found |= {json.loads(r.value)["user_id"] for r in await read_topic(ctx.settings, ctx.settings.topic_changes)
                  if lo <= r.timestamp <= hi}
    return found


async def run_drill(name: str, settings: Settings, start_worker: Callable[..., Awaitable[Proc]],
                    producer: AIOKafkaProducer, fault: Callable[[Ctx], Awaitable[None]], seed: int,
                    strict_changes: bool = True) -> None:
    await create_topics(settings)
    core = Core.build(settings)
    redis = connect(settings)
    try:
        worker = await start_worker(settings)
        segments = await make_segments(core)
        created = max(c for _, c, _ in segments.values())
        sc = generate(seed=seed, users=USERS, events=EVENTS, now_ms=int(time.time() * 1000), live_since_ms=created)
        ctx = Ctx(settings, redis, core, producer, worker, sc, segments)
        await send(producer, settings.topic_profiles, sc.profiles)
        half = len(sc.events) // 2
        await send(producer, settings.topic_events, sc.events[:half])

        async def midstream() -> int:
            return sum([await redis.scard(core.keys.known(p)) for p in range(settings.partitions)]) > USERS // 3

        await eventually(midstream, timeout=120, what="the worker to be mid-stream")
        pid = worker.popen.pid
        fault_at = time.monotonic()
        await fault(ctx)
        await send(producer, settings.topic_events, sc.events[half:])
        await send(producer, settings.topic_events, [("bad", v) for _, v in sc.malformed])
        took = await converge(ctx)
        converged = round(time.monotonic() - fault_at, 1)
        extra = await check_everything(ctx, strict_changes)
        record(name, converged_s=converged, after_input_s=round(took, 1), **extra)
        if name != "worker_kill":
            assert ctx.worker.popen.pid == pid and ctx.worker.alive(), "the same worker process carried on"
    finally:
        await core.close()
        await redis.aclose()


async def test_drill_redis_killed_and_restarted(settings_factory: Callable[..., Settings], drill_redis: RedisProc,
                                                start_worker: Callable[..., Awaitable[Proc]],
                                                producer: AIOKafkaProducer) -> None:
    settings = settings_factory(redis_url=drill_redis.url)

    async def fault(ctx: Ctx) -> None:
        drill_redis.kill()
        await asyncio.sleep(5)  # the drill's outage: five seconds of no Redis
        drill_redis.start()

    await run_drill("redis_kill", settings, start_worker, producer, fault, seed=31)


async def test_drill_kafka_killed_and_restarted(settings_factory: Callable[..., Settings], drill_kafka: KafkaProc,
                                                start_worker: Callable[..., Awaitable[Proc]],
                                                own_producer: Callable[[str], Any]) -> None:
    settings = settings_factory(kafka_bootstrap=drill_kafka.bootstrap)
    producer = await own_producer(drill_kafka.bootstrap)

    async def fault(ctx: Ctx) -> None:
        drill_kafka.kill()
        await asyncio.sleep(10)  # the drill's outage: ten seconds of no broker
        drill_kafka.start()

    await run_drill("kafka_kill", settings, start_worker, producer, fault, seed=32)


async def test_drill_worker_killed_mid_batch(topics: Settings, start_worker: Callable[..., Awaitable[Proc]],
                                             producer: AIOKafkaProducer) -> None:
    async def fault(ctx: Ctx) -> None:
        ctx.worker.kill(signal.SIGKILL)
        ctx.worker = await start_worker(ctx.settings)

    await run_drill("worker_kill", topics, start_worker, producer, fault, seed=33)


async def test_drill_redis_restored_from_an_older_copy(settings_factory: Callable[..., Settings],
                                                       drill_redis: RedisProc, tmp_path: Path,
                                                       start_worker: Callable[..., Awaitable[Proc]],
                                                       producer: AIOKafkaProducer) -> None:
    """The AOF-loss case: Redis comes back seconds older than what the worker acknowledged."""
    settings = settings_factory(redis_url=drill_redis.url)
    copy = tmp_path / "redis-copy"

    async def fault(ctx: Ctx) -> None:
        keys = ctx.core.keys
        points = [keys.resume(p) for p in range(ctx.settings.partitions)]
        await ctx.redis.bgrewriteaof()  # fold the AOF so the copy is one consistent base (a backup)

        async def rewritten() -> bool:
            return (await ctx.redis.info("persistence"))["aof_rewrite_in_progress"] == 0

        await eventually(rewritten, timeout=30, what="the AOF rewrite")
        before = [await ctx.redis.hget(k, "w") for k in points]
        copied_at = int(time.time() * 1000)
        shutil.copytree(drill_redis.dir, copy)
        await send(ctx.producer, ctx.settings.topic_events, ctx.sc.events[len(ctx.sc.events) // 2:][:2000])

        async def moved_on() -> bool:  # acknowledged past the copy on every partition
            now = [await ctx.redis.hget(k, "w") for k in points]
            return all(a != b for a, b in zip(before, now, strict=True))

        await eventually(moved_on, timeout=60, what="the worker to acknowledge input past the copy")
        drill_redis.kill()
        shutil.rmtree(drill_redis.dir)
        shutil.copytree(copy, drill_redis.dir)
        drill_redis.start()
        ctx.restored_between = (copied_at, int(time.time() * 1000))

    await run_drill("redis_restored_older", settings, start_worker, producer, fault, seed=34, strict_changes=False)
    log = await asyncio.to_thread((tmp_path / "worker-0.log").read_text)
    assert "resume point of partition" in log, "the rollback was noticed and replayed"


async def test_drill_redis_lost_and_rebuilt(settings_factory: Callable[..., Settings], drill_redis: RedisProc,
                                            tmp_path: Path, start_worker: Callable[..., Awaitable[Proc]],
                                            producer: AIOKafkaProducer) -> None:
    """Everything stopped, Redis' data directory deleted, started again, `stream rebuild`."""
    settings = settings_factory(redis_url=drill_redis.url)
    await create_topics(settings)
    core = Core.build(settings)
    redis = connect(settings)
    try:
        worker = await start_worker(settings)
        segments = await make_segments(core)
        created = max(c for _, c, _ in segments.values())
        sc = generate(seed=35, users=USERS, events=EVENTS, now_ms=int(time.time() * 1000), live_since_ms=created)
        half = len(sc.events) // 2
        first = Scenario(events=sc.events[:half], profiles=sc.profiles, malformed=sc.malformed)
        ctx = Ctx(settings, redis, core, producer, worker, first, segments)
        await send(producer, settings.topic_profiles, sc.profiles)
        await send(producer, settings.topic_events, first.events)
        await send(producer, settings.topic_events, [("bad", v) for _, v in sc.malformed])
        await converge(ctx)
        sids = sorted(segments)
        trend_before = {sid: await redis.hgetall(core.keys.trend(sid)) for sid in sids}
        async def backfills_done() -> bool:
            jobs = [await core.jobs.for_segment(sid, JobKind.BACKFILL) for sid in sids]
            return all(j is not None and j.status == JobStatus.DONE for j in jobs)

        await eventually(backfills_done, timeout=120, what="the creation backfills to finish")
        worker.stop()
        drill_redis.stop()
        shutil.rmtree(drill_redis.dir)
        drill_redis.dir.mkdir()
        drill_redis.start()
        await core.close()
        core = Core.build(settings)
        ctx.core = core
        # The worker comes up and waits: Redis holds nothing while Kafka has the log.
        waiting = Proc("worker", [sys.executable, "-m", "stream.cli", "worker"], settings_env(settings),
                       tmp_path / "worker-waiting.log")

        async def says_rebuild() -> bool:
            assert waiting.alive(), waiting.tail()
            return any(not b.get("ready", True) for b in (await read_heartbeats(redis, core.keys)).values())

        await eventually(says_rebuild, timeout=90, what="the worker to wait for a rebuild")
        assert not await redis.exists(core.keys.user(next(iter(sc.profiles))[0]))
        started = time.monotonic()
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "stream.cli", "rebuild", "--quiet"],
                                       env=settings_env(settings), capture_output=True, text=True, cwd=ROOT,
                                       timeout=600)
        rebuild_s = time.monotonic() - started
        assert done.returncode == 0, done.stderr[-3000:]
        assert "users restored:" in done.stdout, done.stdout
        ctx.worker = waiting
        # Exactly as before: membership (checked by converge) and the trend history.
        took = await converge(ctx, timeout=120)
        assert {sid: await redis.hgetall(core.keys.trend(sid)) for sid in sids} == trend_before
        # The same worker process carries on with new input.
        ctx.sc = sc
        await send(producer, settings.topic_events, sc.events[half:])
        await converge(ctx)
        await check_everything(ctx)
        record("redis_lost_rebuild", rebuild_s=round(rebuild_s, 1), converged_after_rebuild_s=round(took, 1),
               summary=done.stdout.strip().splitlines())
        waiting.stop()
    finally:
        await core.close()
        await redis.aclose()
