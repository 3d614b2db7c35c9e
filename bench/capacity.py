"""A capacity model from measured per-event and per-user costs: what 10M / 100M users at 10k / 100k events/s need.

    python -m bench.capacity [bench/results.json]

`make bench` measures, over the known-user phase of the pipeline (steady state,
20 live segments, changelog and WAIT-free single Redis), what one event costs:
worker CPU seconds, Redis commands, Redis network bytes and Redis CPU seconds,
Kafka bytes the worker writes (user and trend changelogs, segment changes),
and the input message's own bytes; and what one user costs in Redis memory
(single Redis and the cluster's masters). This module turns those into the
processes a deployment needs, with the planning budgets below, and says which
limit binds. docs/SCALING.md explains the model and pastes a run.

The budgets are planning assumptions, not measurements; each is named so it
can be changed in one place.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORE_BUDGET = 0.7  # a worker is one Python process (one core): planned at 70% busy for bursts and rebalances
REDIS_CPU_BUDGET = 0.6  # Redis runs commands on one thread; 60% leaves room for AOF rewrites and failovers
REDIS_SHARD_BYTES = 25 * 2**30  # usable dataset per master on a 32 GiB node (fork headroom for AOF rewrite)
KAFKA_RF = 3  # replication factor of every topic
KAFKA_BROKER_WRITE_BYTES_S = 100 * 2**20  # replicated writes one broker sustains on ordinary SSDs
KAFKA_BROKER_DISK_BYTES = 4 * 2**40  # log storage per broker
RETENTION_DAYS = 90  # events kept for backfills: bounds the longest past-behavior window that can be created
PARTITIONS_PER_WORKER = 4  # partitions fix the user -> partition map for good: leave room to add workers
SCENARIOS = [(10_000_000, 10_000), (10_000_000, 100_000), (100_000_000, 10_000), (100_000_000, 100_000)]


@dataclass(frozen=True)
class Costs:
    worker_cpu_s: float  # per event
    redis_cpu_s: float  # per event
    redis_commands: float  # per event
    redis_net_bytes: float  # per event, in + out
    kafka_out_bytes: float  # per event, written by the worker
    input_bytes: float  # per event message
    redis_bytes_per_user: float  # growth per user: cluster masters when measured, else single Redis

    @classmethod
    def from_results(cls, r: dict[str, Any]) -> Costs:
        e, p = r["pipeline"]["per_event"], r["pipeline"]
        measured = r.get("cluster", {})
        if not measured.get("redis_bytes_per_user"):
            measured = p
        per_user = measured["redis_bytes_per_user"] * scaling_share(measured["redis_by_family"])
        return cls(worker_cpu_s=e["worker_cpu_s"], redis_cpu_s=e["redis_cpu_s"], redis_commands=e["redis_commands"],
                   redis_net_bytes=e["redis_net_in_bytes"] + e["redis_net_out_bytes"],
                   kafka_out_bytes=e["kafka_out_bytes"], input_bytes=p["input_bytes_per_event"],
                   redis_bytes_per_user=per_user)


# Key families that do not grow with users: a segment's sample stops at 2K entries, its definition,
# trend and job keys are per segment. At bench sizes they are a large share of "bytes per user".
PER_SEGMENT_FAMILIES = ("sk:", "seg:{}:trend", "{}:", "heartbeats", "wm:", "ofs:")


def scaling_share(families: dict[str, int]) -> float:
    """The share of Redis memory in key families that grow with the number of users."""
    total = sum(families.values())
    fixed = sum(size for name, size in families.items() if name.startswith(PER_SEGMENT_FAMILIES))
    return (total - fixed) / total if total else 1.0


@dataclass(frozen=True)
class Plan:
    users: int
    events_per_s: int
    workers: int
    partitions: int
    redis_shards: int
    redis_bound: str  # "memory" or "cpu"
    redis_memory_gib: float  # dataset on the masters (replicas double it)
    kafka_brokers: int
    kafka_bound: str  # "throughput" or "storage"
    kafka_storage_tib: float


def plan(c: Costs, users: int, events_per_s: int) -> Plan:
    workers = math.ceil(events_per_s * c.worker_cpu_s / CORE_BUDGET)
    partitions = 2 ** math.ceil(math.log2(max(1, workers * PARTITIONS_PER_WORKER)))
    memory = users * c.redis_bytes_per_user
    by_memory = math.ceil(memory / REDIS_SHARD_BYTES)
    by_cpu = math.ceil(events_per_s * c.redis_cpu_s / REDIS_CPU_BUDGET)
    write = events_per_s * (c.input_bytes + c.kafka_out_bytes) * KAFKA_RF
    # Compacted changelogs keep about one record per user and segment; the input log keeps everything.
    stored = events_per_s * c.input_bytes * 86_400 * RETENTION_DAYS * KAFKA_RF
    by_write = math.ceil(write / KAFKA_BROKER_WRITE_BYTES_S)
    by_disk = math.ceil(stored / KAFKA_BROKER_DISK_BYTES)
    return Plan(users, events_per_s, workers, partitions, max(by_memory, by_cpu, 1),
                "memory" if by_memory >= by_cpu else "cpu", memory / 2**30,
                max(by_write, by_disk, KAFKA_RF), "throughput" if by_write >= by_disk else "storage",
                stored / 2**40)


def table(c: Costs) -> str:
    out = [f"per event: worker {c.worker_cpu_s * 1e6:,.0f} us CPU, Redis {c.redis_cpu_s * 1e6:,.0f} us CPU, "
           f"{c.redis_commands:.2f} commands, {c.redis_net_bytes:,.0f} network B; Kafka {c.input_bytes:,.0f} B in + "
           f"{c.kafka_out_bytes:,.0f} B written; per user {c.redis_bytes_per_user:,.0f} B of Redis",
           "| users | events/s | workers | partitions | Redis masters (bound) | dataset | Kafka brokers (bound) "
           f"| log kept ({RETENTION_DAYS} d, RF {KAFKA_RF}) |",
           "|---|---|---|---|---|---|---|---|"]
    for users, rate in SCENARIOS:
        p = plan(c, users, rate)
        out.append(f"| {users / 1e6:,.0f}M | {rate:,} | {p.workers} | {p.partitions} | {p.redis_shards} "
                   f"({p.redis_bound}) | {p.redis_memory_gib:,.0f} GiB | {p.kafka_brokers} ({p.kafka_bound}) "
                   f"| {p.kafka_storage_tib:,.1f} TiB |")
    return "\n".join(out)


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("results.json"))
    print(table(Costs.from_results(json.loads(path.read_text()))))


if __name__ == "__main__":
    main()
