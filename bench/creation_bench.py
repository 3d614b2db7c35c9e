"""Creation-to-ready time of 1, 10 and 50 segments created together, after a history of traffic.

    python -m bench.creation_bench [--users 100000] [--events 1000000] [--counts 1,10,50] [--history worker|log]

The history goes through `stream worker` first (profiles and past events, so
every user is known), as after a day of traffic. With `--history log` only the
profiles do (every user is still known): the events are produced to the log
before the worker starts and its consumer group starts past them, as for a
stack pointed at a log that earlier workers applied. Creation reads the same
log and the same known users either way; what differs is that the user
hashes hold no dedupe entries or aggregates of earlier segments (there are
none before the bench's). 10,000,000 events through one worker here take over
40 minutes, so the 1M-user run uses it. Then, for each count, that
many past_behavior segments (each scans the whole log) and as many live ones
(each looks back only `STREAM_MAX_FUTURE_SECONDS`) are created within the
grouping interval, and the clock runs until every one's creation backfill is
done. Segments created together share one scan of the log and one pass over
the known users, so the time should grow far slower than the count. An exact
recount queued behind them is timed too: it must not wait for them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from bench.export_bench import drop
from bench.pipeline import ROOT, backfills_done, bench_settings, drain_rate, env_for, start, stop
from stream.config import Settings
from stream.generate import Workload, produce
from stream.kafkaio.client import client_kwargs
from stream.kafkaio.topics import create_topics
from stream.rules import parse_segment
from stream.state.jobs import JobKind, JobStatus, JobStore
from stream.state.keys import Keys
from stream.wiring import Core

EVENTS = ["Charged", "Viewed", "App Launched", "Added To Cart", "Searched", "Rated", "Shared"]


def rule(i: int) -> dict[str, Any]:
    """Distinct rules, so no two segments are the same work."""
    name = EVENTS[i % len(EVENTS)]
    return {"event": {"name": name, "count": {"op": "gte", "value": 1 + i % 4}, "within_days": 30 + i}}


async def ready_time(core: Core, jobs: JobStore, sids: list[str], proc: Any, limit_s: float) -> float:
    started = time.perf_counter()
    deadline = time.monotonic() + limit_s
    while True:
        found = [await jobs.for_segment(sid, JobKind.BACKFILL) for sid in sids]
        if all(j is not None and j.status == JobStatus.DONE for j in found):
            return time.perf_counter() - started
        failed = [j for j in found if j is not None and j.status == JobStatus.FAILED]
        if failed or proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"backfills did not finish: {failed or 'timeout or worker exit'}")
        await asyncio.sleep(0.1)


async def job_time(jobs: JobStore, job_id: str, started: float) -> float:
    while True:
        job = await jobs.get(job_id)
        if job is not None and job.status in (JobStatus.DONE, JobStatus.FAILED):
            return time.perf_counter() - started
        await asyncio.sleep(0.05)


async def skip_to_end(settings: Settings, topic: str) -> None:
    """Commits the worker group's offsets at the end of `topic`, before any worker joined."""
    consumer = AIOKafkaConsumer(**client_kwargs(settings), group_id=settings.app_id, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit({tp: int(ends[tp]) for tp in tps})
    finally:
        await consumer.stop()


async def history(settings: Settings, workload: Workload, mode: str, log: Path) -> subprocess.Popen[bytes]:
    """Fills the log and the known users; returns the worker, caught up."""
    if mode == "log":
        await produce(settings, workload, progress=False, profiles=False)
        await skip_to_end(settings, settings.topic_events)
    proc = start([sys.executable, "-m", "stream.cli", "worker"], env_for(settings), log)
    producing = asyncio.create_task(produce(settings, workload, progress=False, events=mode != "log"))
    await drain_rate(settings, settings.app_id, [settings.topic_events, settings.topic_profiles], proc,
                     limit_s=7200, wait_for=producing)
    return proc


async def run(kafka: str, redis_url: str, users: int, events: int, counts: list[int],
              mode: str = "worker") -> dict[str, Any]:
    settings = bench_settings(kafka, redis_url, partitions=8)
    await create_topics(settings)
    redis = Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(settings.key_prefix)
    jobs = JobStore(redis, keys)
    core = Core.build(settings)
    result: dict[str, Any] = {"users": users, "events": events, "history": mode, "counts": counts}
    started = time.perf_counter()
    proc = await history(settings, Workload(seed=5, users=users, events=events), mode,
                         ROOT / "var" / "bench" / "creation-worker.log")
    try:
        result["history_s"] = time.perf_counter() - started
        print(f"history ({mode}): {result['history_s']:.0f} s", flush=True)
        target, _ = await core.catalog.create_segment(parse_segment(
            {"name": "recount target", "kind": "past_behavior", "rule": rule(0)}))
        n_made = 1
        await backfills_done(jobs, proc, limit_s=7200)
        alone = await core.jobs.create(JobKind.RECOUNT, target.id, settings.partitions)
        result["recount_alone_s"] = await job_time(jobs, alone, time.perf_counter())
        print(f"a recount with nothing else to do: {result['recount_alone_s']:.1f} s")
        for count in counts:
            await backfills_done(jobs, proc, limit_s=7200)
            made: list[str] = []
            for kind in ("past_behavior", "live"):
                for _ in range(count):
                    seg, _ = await core.catalog.create_segment(parse_segment(
                        {"name": f"bench {n_made}", "kind": kind, "rule": rule(n_made)}))
                    made.append(seg.id)
                    n_made += 1
            # A recount of a ready segment, asked for while the new ones backfill.
            recount_job = await core.jobs.create(JobKind.RECOUNT, target.id, settings.partitions)
            recount_started = time.perf_counter()
            ready_task = asyncio.create_task(ready_time(core, jobs, made, proc, limit_s=3600))
            recount_s = await job_time(jobs, recount_job, recount_started)
            ready = await ready_task
            result[f"recount_s_{count}"] = recount_s
            result[f"ready_s_{count}"] = ready
            print(f"{count} past_behavior + {count} live segments ready in {ready:.1f} s; a recount queued with "
                  f"them finished in {result[f'recount_s_{count}']:.1f} s")
        return result
    finally:
        stop(proc)
        await core.close()
        await drop(redis, settings.key_prefix)
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--counts", default="1,10,50")
    parser.add_argument("--history", choices=("worker", "log"), default="worker")
    parser.add_argument("--kafka", default=os.environ.get("STREAM_TEST_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("--redis-url", default=os.environ.get("STREAM_TEST_REDIS_URL", "redis://127.0.0.1:6380/0"))
    args = parser.parse_args()
    result = asyncio.run(run(args.kafka, args.redis_url, args.users, args.events,
                             [int(c) for c in args.counts.split(",")], args.history))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
