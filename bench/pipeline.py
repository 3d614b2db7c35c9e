"""Throughput and latency of the pipeline, beside the raw consume ceiling and a naive agent.

All three read the same events from real Kafka, in the same run:
  ceiling  - a bare aiokafka consumer reading the topic (no processing at all);
  pipeline - `stream worker` with 20 live segments;
  baseline - bench/naive_agent.py, one Redis round trip per event;
  floor    - bench/floor_agent.py, the worker's intake (whole fetches, batches, acks) doing nothing;
  stream floor - bench/faust_stream_floor.py, Faust's per-message agent path doing nothing.
Rates come from the consumer group's committed offsets, sampled over time, so
start-up is excluded the same way for both workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from redis.asyncio import Redis

from bench import api_load, memory
from stream.config import Settings
from stream.generate import Workload, produce
from stream.kafkaio.topics import create_topics
from stream.rules import parse_segment
from stream.state.client import RedisClient
from stream.state.heartbeats import read_heartbeats
from stream.state.jobs import JobStore
from stream.state.keys import Keys
from stream.wiring import Core

ROOT = Path(__file__).resolve().parents[1]

LIVE_RULES: list[dict[str, Any]] = [
    {"event": {"name": "Charged"}},
    {"event": {"name": "Charged", "count": {"op": "gte", "value": 3}}},
    {"event": {"name": "Charged", "sum": {"prop": "amount", "op": "gte", "value": 500}}},
    {"event": {"name": "Charged", "where": [{"prop": "category", "op": "eq", "value": "shoes"}], "within_days": 30}},
    {"event": {"name": "Viewed", "count": {"op": "gte", "value": 2}, "within_days": 7}},
    {"not": {"event": {"name": "Uninstalled"}}},
    {"not": {"event": {"name": "App Launched", "within_days": 1}}},
    {"any": [{"event": {"name": "Added To Cart", "within_days": 14}}, {"reachable": "push"}]},
    {"all": [{"profile": {"prop": "city", "op": "eq", "value": "Mumbai"}}, {"event": {"name": "Searched"}}]},
    {"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
    {"profile": {"prop": "age", "op": "gte", "value": 30}},
    {"reachable": "email"},
    {"all": [{"reachable": "sms"}, {"profile": {"prop": "age", "op": "lt", "value": 40}}]},
    {"event": {"name": "Rated", "within_days": 7}},
    {"event": {"name": "Shared", "count": {"op": "gte", "value": 2}}},
    {"all": [{"reachable": "whatsapp"}, {"not": {"event": {"name": "Charged", "within_days": 7}}}]},
    {"event": {"name": "Searched", "within_days": 1}},
    {"event": {"name": "App Launched", "count": {"op": "gte", "value": 5}}},
    {"profile": {"prop": "city", "op": "in", "value": ["Goa", "Delhi"]}},
    {"event": {"name": "Added To Cart", "sum": {"prop": "amount", "op": "gte", "value": 200}}},
]


@dataclass
class Run:
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def bench_settings(kafka: str, redis_url: str, partitions: int, cluster: bool = False) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings(app_id=f"bench-{tag}", kafka_bootstrap=kafka, redis_url=redis_url, redis_cluster=cluster,
                    key_prefix=f"b{tag}:",
                    topic_events=f"bench-events-{tag}", topic_profiles=f"bench-profiles-{tag}",
                    topic_changes=f"bench-changes-{tag}", topic_dlq=f"bench-dlq-{tag}",
                    topic_audit=f"bench-audit-{tag}", topic_control=f"bench-control-{tag}",
                    topic_changelog=f"bench-changelog-{tag}", topic_trend_changelog=f"bench-trend-{tag}",
                    partitions=partitions,
                    data_dir=str(ROOT / "var" / "bench" / tag), worker_web_port=_free_port())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
    env.update({f"STREAM_{k.upper()}": str(v) for k, v in settings.model_dump().items()})
    env.update(extra)
    return env


async def ceiling(settings: Settings, topic: str) -> Run:
    """Bare aiokafka: fetch and drop every record, the most any consumer here can do."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                fetch_max_bytes=52428800, max_partition_fetch_bytes=10485760)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        end = sum((await consumer.end_offsets(tps)).values())
        seen, started = 0, 0.0
        while seen < end:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10000)
            if batch and not started:
                started = time.perf_counter()
            seen += sum(len(v) for v in batch.values())
        return Run(seen, time.perf_counter() - started)
    finally:
        await consumer.stop()


async def committed_total(admin: AIOKafkaAdminClient, group: str, topics: set[str]) -> int:
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic in topics and meta.offset > 0)


async def end_total(settings: Settings, topics: list[str]) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def drain_rate(settings: Settings, group: str, topics: list[str], proc: subprocess.Popen[bytes],
                     limit_s: float, wait_for: asyncio.Task[int] | None = None) -> Run:
    """Samples committed offsets until the group has consumed everything produced."""
    if wait_for is not None:
        await wait_for
    target = await end_total(settings, topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        first: tuple[float, int] | None = None
        done = 0
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}")
            # The group may answer with nothing mid-rebalance: offsets only ever grow.
            with contextlib.suppress(GroupCoordinatorNotAvailableError):  # __consumer_offsets comes lazily
                done = max(done, await committed_total(admin, group, set(topics)))
            now = time.perf_counter()
            if os.environ.get("BENCH_DEBUG"):
                print(f"committed {done}/{target}", file=sys.stderr)
            if done and first is None:
                first = (now, done)
            if done >= target and first is not None:
                return Run(done - first[1], now - first[0])
            await asyncio.sleep(0.25)
        raise TimeoutError(f"group {group} did not finish {target} messages in {limit_s}s")
    finally:
        await admin.close()


async def changelog_bytes(settings: Settings, result: dict[str, Any]) -> dict[str, float]:
    """Kafka bytes the user changelog took (key + value of every record written so far, before
    compaction) per input message the worker applied, so the note can say what durability costs."""
    applied = await end_total(settings, [settings.topic_events, settings.topic_profiles])
    records, size = await topic_bytes(settings, settings.topic_changelog)
    return {"changelog_records_per_input": records / max(applied, 1),
            "changelog_bytes_per_input": size / max(applied, 1)}


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def scrape_histogram(port: int, name: str) -> dict[float, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    buckets: dict[float, float] = {}
    for m in re.finditer(rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$', text, re.M):
        buckets[float(m.group(1))] = float(m.group(2))
    return buckets


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Linear interpolation inside the bucket, as PromQL's histogram_quantile does."""
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0.0) for e in edges]
    total = counts[-1]
    if total <= 0:
        return float("nan")
    rank, prev_edge, prev_count = q * total, 0.0, 0.0
    for edge, count in zip(edges, counts, strict=True):
        if count >= rank:
            if edge == float("inf"):
                return prev_edge
            return prev_edge + (edge - prev_edge) * (rank - prev_count) / max(1e-12, count - prev_count)
        prev_edge, prev_count = edge, count
    return edges[-1]


async def create_live_segments(settings: Settings) -> None:
    core = Core.build(settings)
    try:
        for i, rule in enumerate(LIVE_RULES):
            await core.catalog.create_segment(parse_segment({"name": f"bench {i}", "kind": "live", "rule": rule}))
    finally:
        await core.close()


async def backfills_done(jobs: JobStore, proc: subprocess.Popen[bytes], limit_s: float = 120) -> None:
    """Segments exist and their creation backfills are over: what follows is steady state."""
    deadline = time.monotonic() + limit_s
    while await jobs.active():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the worker did not finish the segments' creation backfills")
        await asyncio.sleep(0.2)


async def both_hold_partitions(redis: RedisClient, keys: Keys, partitions: int, proc: subprocess.Popen[bytes],
                                limit_s: float = 120) -> None:
    """Waits until two workers' heartbeats split every partition between them (the rebalance is over)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the second worker exited with {proc.returncode}")
        held = [b["partitions"] for b in (await read_heartbeats(redis, keys)).values() if b.get("ready")]
        if len(held) == 2 and all(held) and sorted(p for h in held for p in h) == list(range(partitions)):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("two workers did not share the partitions")


async def known_users_rate(settings: Settings, workload: Workload, proc: subprocess.Popen[bytes],
                           seed_offset: int, costs: dict[str, float] | None = None,
                           redis: RedisClient | None = None) -> float:
    """Half the workload's events again, from users the worker already knows (no first touch).
    With `costs` (and a single-node `redis`), also what each of those events cost (`resource_costs`)."""
    again = Workload(seed=workload.seed + seed_offset, users=workload.users, events=workload.events // 2,
                     live_share=1.0)
    before = await resource_snapshot(settings, proc, redis) if costs is not None else {}
    producing = asyncio.create_task(produce(settings, again, progress=False, profiles=False))
    rate = (await drain_rate(settings, settings.app_id, [settings.topic_events], proc, limit_s=1800,
                             wait_for=producing)).rate
    if costs is not None:
        after = await resource_snapshot(settings, proc, redis)
        costs.update({k: (after[k] - before[k]) / again.events for k in after})
    return rate


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def resource_snapshot(settings: Settings, proc: subprocess.Popen[bytes],
                            redis: RedisClient | None) -> dict[str, float]:
    """Counters whose growth over a phase, per event, feeds the capacity model (docs/SCALING.md):
    the worker's CPU, Redis's commands, network bytes and CPU, and the bytes the worker wrote to
    Kafka (user changelog, trend changelog, segment changes)."""
    out = {"worker_cpu_s": cpu_seconds(proc.pid)}
    if redis is not None:
        stats, cpu = await redis.info("stats"), await redis.info("cpu")
        out.update(redis_commands=float(stats["total_commands_processed"]),
                   redis_net_in_bytes=float(stats["total_net_input_bytes"]),
                   redis_net_out_bytes=float(stats["total_net_output_bytes"]),
                   redis_cpu_s=float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]))
    out["kafka_out_bytes"] = float(sum([(await topic_bytes(settings, t))[1] for t in (
        settings.topic_changelog, settings.topic_trend_changelog, settings.topic_changes)]))
    return out


async def topic_bytes(settings: Settings, topic: str) -> tuple[int, int]:
    """Records in a topic so far, and their key + value bytes."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        end = sum((await consumer.end_offsets(tps)).values())
        records = size = 0
        while records < end:
            for batch in (await consumer.getmany(timeout_ms=1000, max_records=10000)).values():
                records += len(batch)
                size += sum(len(m.key or b"") + len(m.value or b"") for m in batch)
        return records, size
    finally:
        await consumer.stop()


async def two_workers_rate(settings: Settings, redis: RedisClient, workload: Workload,
                           proc: subprocess.Popen[bytes], log: Path) -> float:
    """Scale-out on this machine: a second worker joins the group (the machine has 2 cores), and
    once the two share the partitions, the known-user workload again."""
    second = start([sys.executable, "-m", "stream.cli", "worker"],
                   env_for(settings.model_copy(update={"worker_web_port": _free_port()})), log)
    try:
        await both_hold_partitions(redis, Keys(settings.key_prefix), settings.partitions, second)
        return await known_users_rate(settings, workload, proc, seed_offset=3)
    finally:
        stop(second)


async def pipeline_and_latency(kafka: str, redis_url: str, workload: Workload, partitions: int,
                               latency_seconds: float) -> dict[str, Any]:
    settings = bench_settings(kafka, redis_url, partitions)
    await create_topics(settings)
    redis = Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(settings.key_prefix)
    jobs = JobStore(redis, keys)
    await create_live_segments(settings)
    result: dict[str, Any] = {}
    log_dir = ROOT / "var" / "bench"
    proc = start([sys.executable, "-m", "stream.cli", "worker"], env_for(settings), log_dir / "pipeline-worker.log")
    try:
        await backfills_done(jobs, proc)
        mem_before = int((await redis.info("memory"))["used_memory"])
        live = Workload(seed=workload.seed, users=workload.users, events=workload.events, live_share=1.0)
        producing = asyncio.create_task(produce(settings, live, progress=False))
        await asyncio.sleep(1.0)
        run = await drain_rate(settings, settings.app_id, [settings.topic_events, settings.topic_profiles], proc,
                               limit_s=1800, wait_for=producing)
        result["pipeline"] = run.rate
        used = int((await redis.info("memory"))["used_memory"])
        result["redis_bytes_per_user"] = (used - mem_before) / workload.users
        result["redis_by_family"] = await memory.by_family(redis, settings.key_prefix)
        result["ceiling"] = (await ceiling(settings, settings.topic_events)).rate
        records, size = await topic_bytes(settings, settings.topic_events)
        result["input_bytes_per_event"] = size / max(records, 1)
        # Latency at half the measured maximum: live events, produced at a steady rate.
        rate = max(50.0, run.rate / 2)
        before = scrape_histogram(settings.worker_web_port, "stream_end_to_end_latency_seconds")
        steady = Workload(seed=workload.seed + 1, users=workload.users, events=int(rate * latency_seconds),
                          live_share=1.0)
        await produce(settings, steady, rate=rate, progress=False, profiles=False)
        await drain_rate(settings, settings.app_id, [settings.topic_events], proc, limit_s=600)
        after = scrape_histogram(settings.worker_web_port, "stream_end_to_end_latency_seconds")
        result["latency_rate"] = rate
        result["latency_p50"] = quantile(before, after, 0.50)
        result["latency_p99"] = quantile(before, after, 0.99)
        # The query API at the same half load: 50 concurrent clients on insights, trend and users.
        result["api_under_load"] = await api_load.run(settings, env_for(settings), workload, rate, latency_seconds,
                                                      proc)
        await drain_rate(settings, settings.app_id, [settings.topic_events], proc, limit_s=600)
        # Known users only: the first pass paid every user's first touch (all 20 rules evaluated).
        costs: dict[str, float] = {}
        result["pipeline_known_users"] = await known_users_rate(settings, workload, proc, seed_offset=2,
                                                                costs=costs, redis=redis)
        result["per_event"] = costs
        result["pipeline_two_workers"] = await two_workers_rate(settings, redis, workload, proc,
                                                                log_dir / "pipeline-worker-2.log")
        result.update(await changelog_bytes(settings, result))
        # The durability mechanism's cost: the same known-user workload with the changelog off
        # (resume points and outbox stay: they are Redis writes of a few bytes per batch and user).
        stop(proc)
        proc = start([sys.executable, "-m", "stream.cli", "worker"], env_for(settings, STREAM_CHANGELOG="false"),
                     log_dir / "pipeline-worker-nochangelog.log")
        plain = Workload(seed=workload.seed + 4, users=workload.users, events=workload.events // 2, live_share=1.0)
        producing = asyncio.create_task(produce(settings, plain, progress=False, profiles=False))
        result["pipeline_no_changelog"] = (await drain_rate(settings, settings.app_id, [settings.topic_events], proc,
                                                            limit_s=1800, wait_for=producing)).rate
    finally:
        stop(proc)
        await redis.aclose()
    baseline_settings = settings.model_copy(update={"app_id": settings.app_id + "-naive",
                                                    "worker_web_port": _free_port()})
    proc = start([sys.executable, "-m", "faust", "-A", "bench.naive_agent", "worker", "-l", "warn"],
                 env_for(baseline_settings, NAIVE_PREFIX=settings.key_prefix + "naive:"), log_dir / "naive.log")
    try:
        result["baseline"] = (await drain_rate(baseline_settings, baseline_settings.app_id,
                                               [settings.topic_events], proc, limit_s=1800)).rate
    finally:
        stop(proc)
    for key, module in (("faust_floor", "bench.floor_agent"), ("faust_stream_floor", "bench.faust_stream_floor")):
        floor_settings = settings.model_copy(update={"app_id": f"{settings.app_id}-{key}",
                                                     "worker_web_port": _free_port()})
        proc = start([sys.executable, "-m", "faust", "-A", module, "worker", "-l", "warn"],
                     env_for(floor_settings), log_dir / f"{key}.log")
        try:
            result[key] = (await drain_rate(floor_settings, floor_settings.app_id,
                                            [settings.topic_events, settings.topic_profiles], proc,
                                            limit_s=1800)).rate
        finally:
            stop(proc)
    return result
