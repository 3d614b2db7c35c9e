"""`stream rebuild` time: a Redis that lost everything, back from Kafka, at N users.

    python -m bench.rebuild_bench [--users 1000000] [--kafka HOST:PORT] [--redis-url URL]

The users get there the real way: the workload (one profile per user and
`--events-per-user` live events) goes through `stream worker` with the 20 live
segments of the pipeline bench, so the changelog topics hold what a worker
really writes. Then the worker stops, every key of the run's prefix is deleted
(`stream rebuild --wipe`) and the rebuild is timed as a subprocess, as an
operator runs it. It must bring every segment's member count back exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from typing import Any

from redis.asyncio import Redis

from bench.export_bench import drop
from bench.pipeline import ROOT, backfills_done, bench_settings, create_live_segments, drain_rate, env_for, start, stop
from stream.generate import Workload, produce
from stream.kafkaio.topics import create_topics
from stream.state.jobs import JobStore
from stream.state.keys import Keys


async def member_counts(redis: Redis, keys: Keys) -> dict[str, int]:
    sids = sorted(await redis.hkeys(keys.segments))
    return {str(sid): int(await redis.get(keys.member_count(str(sid))) or 0) for sid in sids}


async def run(kafka: str, redis_url: str, users: int, events_per_user: int = 1) -> dict[str, Any]:
    settings = bench_settings(kafka, redis_url, partitions=8)
    await create_topics(settings)
    redis = Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(settings.key_prefix)
    log_dir = ROOT / "var" / "bench"
    try:
        await create_live_segments(settings)
        proc = start([sys.executable, "-m", "stream.cli", "worker"], env_for(settings), log_dir / "rebuild-worker.log")
        try:
            await backfills_done(JobStore(redis, keys), proc)
            workload = Workload(seed=11, users=users, events=users * events_per_user, live_share=1.0)
            started = time.perf_counter()
            producing = asyncio.create_task(produce(settings, workload, progress=False))
            await drain_rate(settings, settings.app_id, [settings.topic_events, settings.topic_profiles], proc,
                             limit_s=7200, wait_for=producing)
            fill_s = time.perf_counter() - started
        finally:
            stop(proc)
        before = await member_counts(redis, keys)
        known = sum([int(await redis.scard(keys.known(p))) for p in range(settings.partitions)])
        await drop(redis, settings.key_prefix)  # Redis lost everything of this stack
        started = time.perf_counter()
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "stream.cli", "rebuild", "--quiet"],
                                       env=env_for(settings), cwd=ROOT, capture_output=True, text=True, check=False)
        rebuild_s = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"stream rebuild failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        after = await member_counts(redis, keys)
        known_after = sum([int(await redis.scard(keys.known(p))) for p in range(settings.partitions)])
        if after != before or known_after != known:
            raise AssertionError(f"rebuild differs: members {before} -> {after}, known users {known} -> {known_after}")
        result = {"users": known, "fill_s": fill_s, "rebuild_s": rebuild_s, "users_per_s": known / rebuild_s,
                  "memberships": sum(after.values()), "summary": done.stdout.strip().splitlines()}
        print(f"rebuild: {known:,} users, {sum(after.values()):,} memberships in {rebuild_s:.1f} s "
              f"({known / rebuild_s:,.0f} users/s; filling them through the worker took {fill_s:.0f} s)")
        return result
    finally:
        await drop(redis, settings.key_prefix)
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--events-per-user", type=int, default=1)
    parser.add_argument("--kafka", default=os.environ.get("STREAM_TEST_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("--redis-url", default=os.environ.get("STREAM_TEST_REDIS_URL", "redis://127.0.0.1:6380/0"))
    args = parser.parse_args()
    asyncio.run(run(args.kafka, args.redis_url, args.users, args.events_per_user))


if __name__ == "__main__":
    main()
