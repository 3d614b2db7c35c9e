"""The pipeline on a local Redis Cluster (3 masters + 3 replicas), beside the single-Redis rows of the same run.

    python -m bench.cluster_bench [--users N] [--events N]

The cluster comes from deploy/local/redis_cluster.sh, fresh, in its own var
dir and ports (STREAM_BENCH_REDIS_CLUSTER_PORT, default 28001..28006), and is
stopped afterwards. The phases are the single-Redis pipeline's (bench/pipeline.py):
20 live segments, a first pass of profiles and events (every user's first
touch), half the events again from known users with one worker, then with a
second worker in the group. Redis memory per user is the masters' growth over
the first pass (replicas hold a second copy, reported apart), so it compares
with the single Redis's figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
from typing import Any

from redis.asyncio import Redis

from bench import memory
from bench.pipeline import (
    ROOT,
    backfills_done,
    bench_settings,
    create_live_segments,
    drain_rate,
    env_for,
    known_users_rate,
    start,
    stop,
    two_workers_rate,
)
from stream.generate import Workload, produce
from stream.kafkaio.topics import create_topics
from stream.state.client import connect
from stream.state.jobs import JobStore
from stream.state.keys import Keys

SCRIPT = ROOT / "deploy" / "local" / "redis_cluster.sh"
VAR = ROOT / "var" / "bench" / "cluster"


class LocalCluster:
    """Six redis-server nodes started and stopped by their pid files (redis_cluster.sh)."""

    def __init__(self, first_port: int) -> None:
        self.ports = [first_port + i for i in range(6)]
        self.env = dict(os.environ, STREAM_VAR_DIR=str(VAR), STREAM_REDIS_CLUSTER_PORT=str(first_port),
                        STREAM_REDIS_CLUSTER_BUS_PORT=str(first_port + 100))

    @property
    def url(self) -> str:
        return ",".join(f"redis://127.0.0.1:{p}" for p in self.ports[:3])

    def run(self, command: str) -> None:
        done = subprocess.run(["bash", str(SCRIPT), command], env=self.env, capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis_cluster.sh {command} failed:\n{done.stderr[-3000:]}")

    def __enter__(self) -> LocalCluster:
        self.run("stop")  # nodes an interrupted run left, by their pid files
        shutil.rmtree(VAR / "redis-cluster", ignore_errors=True)  # a fresh cluster: no keys, no nodes.conf
        self.run("start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.run("stop")

    async def used_memory(self) -> dict[str, int]:
        """used_memory summed over the masters and over the replicas, without the replication
        backlog and the replicas' output buffers: a master's backlog fills to 1 MB with the first
        writes, which at a few thousand users would read as hundreds of bytes per user."""
        out = {"master": 0, "slave": 0}
        for port in self.ports:
            node = Redis(port=port)
            try:
                role = str((await node.info("replication"))["role"])
                mem = await node.info("memory")
                used = int(mem["used_memory"]) - int(mem["mem_replication_backlog"]) - int(mem["mem_clients_slaves"])
                out[role] = out.get(role, 0) + used
            finally:
                await node.aclose()
        return out


async def run(kafka: str, workload: Workload, partitions: int = 8) -> dict[str, Any]:
    first_port = int(os.environ.get("STREAM_BENCH_REDIS_CLUSTER_PORT", "28001"))
    with LocalCluster(first_port) as cluster:
        settings = bench_settings(kafka, cluster.url, partitions, cluster=True)
        await create_topics(settings)
        redis = connect(settings)
        result: dict[str, Any] = {"masters": 3, "replicas": 3}
        log_dir = ROOT / "var" / "bench"
        await create_live_segments(settings)
        proc = start([sys.executable, "-m", "stream.cli", "worker"], env_for(settings),
                     log_dir / "cluster-worker.log")
        try:
            await backfills_done(JobStore(redis, Keys(settings.key_prefix)), proc)
            mem_before = await cluster.used_memory()
            live = Workload(seed=workload.seed, users=workload.users, events=workload.events, live_share=1.0)
            producing = asyncio.create_task(produce(settings, live, progress=False))
            await asyncio.sleep(1.0)
            result["first_touch"] = (await drain_rate(
                settings, settings.app_id, [settings.topic_events, settings.topic_profiles], proc, limit_s=1800,
                wait_for=producing)).rate
            mem_after = await cluster.used_memory()
            result["redis_bytes_per_user"] = (mem_after["master"] - mem_before["master"]) / workload.users
            result["replica_bytes_per_user"] = (mem_after["slave"] - mem_before["slave"]) / workload.users
            result["redis_by_family"] = await memory.by_family(redis, settings.key_prefix)
            result["known_users"] = await known_users_rate(settings, workload, proc, seed_offset=2)
            result["two_workers"] = await two_workers_rate(settings, redis, workload, proc,
                                                           log_dir / "cluster-worker-2.log")
            result["two_workers_over_one"] = result["two_workers"] / result["known_users"]
        finally:
            stop(proc)
            await redis.aclose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kafka", default=os.environ.get("STREAM_TEST_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    out = asyncio.run(run(args.kafka, Workload(seed=9, users=args.users, events=args.events)))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
