"""Throughput of the pipeline alone, optionally under py-spy: the loop used to make the hot path fast.

    python -m bench.profile_pipeline [--users N] [--events N] [--py-spy out.svg|out.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
import urllib.request

from redis.asyncio import Redis

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
from stream.state.jobs import JobStore
from stream.state.keys import Keys


async def main(users: int, events: int, py_spy: str | None, batch: int, workers: int) -> None:
    kafka = os.environ.get("STREAM_TEST_KAFKA", "127.0.0.1:19092")
    redis_url = os.environ.get("STREAM_TEST_REDIS_URL", "redis://127.0.0.1:16380/0")
    settings = bench_settings(kafka, redis_url, 8)
    await create_topics(settings)
    redis = Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(settings.key_prefix)
    jobs = JobStore(redis, keys)
    await create_live_segments(settings)
    workload = Workload(seed=9, users=users, events=events, live_share=1.0)
    cmd = [sys.executable, "-m", "stream.cli", "worker"]
    if py_spy:
        fmt = "raw" if py_spy.endswith(".txt") else "flamegraph"
        cmd = [str(ROOT / ".venv/bin/py-spy"), "record", "-r", "200", "-f", fmt, "-o", py_spy, "--", *cmd]
    mem_before = int((await redis.info("memory"))["used_memory"])
    proc = start(cmd, env_for(settings, STREAM_BATCH_SIZE=str(batch)), ROOT / "var" / "bench" / "profile-worker.log")
    # Extra workers join the same group on their own web ports (scale-out, as in production).
    extra = [start([sys.executable, "-m", "stream.cli", "worker"],
                   env_for(settings.model_copy(update={"worker_web_port": _free_port()}),
                           STREAM_BATCH_SIZE=str(batch)), ROOT / "var" / "bench" / f"profile-worker-{n}.log")
             for n in range(1, workers)]
    try:
        await backfills_done(jobs, proc)
        started = time.perf_counter()
        await produce(settings, workload, progress=False)
        run = await drain_rate(settings, settings.app_id, [settings.topic_events, settings.topic_profiles], proc,
                               limit_s=1800)
        used = int((await redis.info("memory"))["used_memory"])
        url = f"http://127.0.0.1:{settings.worker_web_port}/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
        sums = dict(re.findall(r"^stream_batch_size_(sum|count) (\S+)$", text.decode(), re.M))
        print(f"batches {float(sums['count']):,.0f}, mean size {float(sums['sum']) / float(sums['count']):,.1f}")
        print(f"pipeline {run.rate:,.0f} msg/s over {run.messages:,} messages ({run.seconds:.1f} s; "
              f"{time.perf_counter() - started:.1f} s from start); redis {(used - mem_before) / users:,.0f} B/user; "
              f"prefix {settings.key_prefix}")
    finally:
        for other in extra:
            stop(other)
        proc.send_signal(2) if py_spy else stop(proc)
        if py_spy:
            proc.wait(timeout=60)
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--py-spy")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    a = parser.parse_args()
    asyncio.run(main(a.users, a.events, a.py_spy, a.batch, a.workers))
