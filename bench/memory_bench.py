"""Redis memory per user at a million users: the issue's `redis_bytes_per_user`.

The pipeline phase measures memory at its own size (50,000 users with ten
events each), where the 20 segments' estimate samples (bounded at 2K entries
each, ~300 B a user there) and a few Zipf-heavy users weigh on the average.
This phase fills a fresh prefix to `users` users through the real worker (two
of them, to take the 2M messages in ~4 min): every user's profile, `events`
events Zipf-skewed over them, all stamped now so the 20 live segments count
them; then `used_memory` before and after, per user, and the same by key
family (`bench/memory.py`). The prefix is deleted afterwards, so later phases
run on the Redis they found.

    python -m bench.memory_bench --users 1000000 --events 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from redis.asyncio import Redis

from bench import memory
from bench.pipeline import (
    ROOT,
    _free_port,
    backfills_done,
    bench_settings,
    create_live_segments,
    drain_rate,
    env_for,
    start,
    stop,
)
from stream.generate import Workload, produce
from stream.kafkaio.topics import create_topics
from stream.rebuild import wipe
from stream.state.jobs import JobStore
from stream.state.keys import Keys
from stream.wiring import Core


async def run(kafka: str, redis_url: str, users: int, events: int, partitions: int = 8) -> dict[str, Any]:
    settings = bench_settings(kafka, redis_url, partitions)
    await create_topics(settings)
    redis = Redis.from_url(redis_url, decode_responses=True)
    await create_live_segments(settings)
    log_dir = ROOT / "var" / "bench"
    procs = [start([sys.executable, "-m", "stream.cli", "worker"], env_for(settings), log_dir / "memory-worker-1.log")]
    out: dict[str, Any] = {"users": users, "events": events}
    try:
        await backfills_done(JobStore(redis, Keys(settings.key_prefix)), procs[0])
        procs.append(start([sys.executable, "-m", "stream.cli", "worker"],
                           env_for(settings.model_copy(update={"worker_web_port": _free_port()})),
                           log_dir / "memory-worker-2.log"))
        before = int((await redis.info("memory"))["used_memory"])
        workload = Workload(seed=11, users=users, events=events, live_share=1.0)
        producing = asyncio.create_task(produce(settings, workload, progress=False))
        run_ = await drain_rate(settings, settings.app_id, [settings.topic_events, settings.topic_profiles],
                                procs[0], limit_s=3600, wait_for=producing)
        used = int((await redis.info("memory"))["used_memory"])
        out["fill_msgs_per_s"] = run_.rate
        out["redis_bytes_per_user"] = (used - before) / users
        out["by_family"] = await memory.by_family(redis, settings.key_prefix)
    finally:
        for proc in procs:
            stop(proc)
        core = Core.build(settings)
        try:
            await wipe(core)
        finally:
            await core.close()
        await redis.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kafka", default=os.environ.get("STREAM_TEST_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("--redis-url", default=os.environ.get("STREAM_TEST_REDIS_URL", "redis://127.0.0.1:6380/0"))
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    result = asyncio.run(run(args.kafka, args.redis_url, args.users, args.events))
    fam = result.pop("by_family")
    print(json.dumps(result, indent=1))
    print(", ".join(f"{k} {v / args.users:,.0f}" for k, v in list(fam.items())[:12]))


if __name__ == "__main__":
    main()
