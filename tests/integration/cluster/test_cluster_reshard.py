"""Drill: slots move between Redis Cluster masters mid-stream (`redis-cli --cluster reshard`).

The drill harness of tests/integration/drills (22 segments, membership equal
to the oracle, the DLQ exactly the malformed input, trend counters netting to
each size, the last `segment-changes` word per member, exact recounts with
zero drift) runs on the cluster with three workers while at least 2,000
slots, partition 0's resume point's among them, migrate from their master to
another. During the
migration a key already moved answers ASK, a script whose keys are split
between the two nodes answers TRYAGAIN, and once a slot has moved its old
master answers MOVED: the raw router and redis-py's cluster client must follow
all three without losing or doubling a write. The slots go back afterwards,
so later tests meet the cluster as it was.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer
from redis.crc import key_slot

from stream.config import Settings
from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.test_cluster_scenario import three_workers
from tests.integration.conftest import Proc
from tests.integration.drills.test_drills import Ctx, record, run_drill

pytestmark = pytest.mark.integration
SLOTS = 2000


def node_id(port: int) -> str:
    out = subprocess.run(["redis-cli", "-p", str(port), "cluster", "myid"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def reshard(cluster: Cluster, source: int, target: int, slots: int) -> float:
    """Moves `slots` slots (and their keys) from master `source` to master `target`; seconds taken."""
    started = time.monotonic()
    done = subprocess.run(
        ["redis-cli", "--cluster", "reshard", f"127.0.0.1:{source}", "--cluster-from", node_id(source),
         "--cluster-to", node_id(target), "--cluster-slots", str(slots), "--cluster-yes"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return time.monotonic() - started


def dbsize(port: int) -> int:
    return int(subprocess.run(["redis-cli", "-p", str(port), "dbsize"], capture_output=True, text=True,
                              check=True).stdout)


def redirects(port: int) -> dict[str, int]:
    """The node's error replies by kind since it started (INFO errorstats): MOVED, ASK, TRYAGAIN."""
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "errorstats"], capture_output=True, text=True,
                         check=True).stdout
    found = {}
    for line in out.splitlines():
        if line.startswith("errorstat_"):
            name, _, rest = line[len("errorstat_"):].partition(":")
            found[name] = int(rest.split("=")[1])
    return {kind: found.get(kind, 0) for kind in ("MOVED", "ASK", "TRYAGAIN")}


def slots_of(cluster: Cluster, port: int) -> int:
    return sum(b - a + 1 for a, b in cluster.slot_owners().get(port, []))


async def test_drill_cluster_slots_move_between_masters_mid_stream(
        settings: Settings, redis_cluster: Cluster, start_worker: Callable[..., Awaitable[Proc]],
        producer: AIOKafkaProducer) -> None:
    figures: dict[str, object] = {}
    moved: list[tuple[int, int, int]] = []
    errors_before: dict[str, int] = {}
    nodes: list[int] = []

    async def fault(ctx: Ctx) -> None:
        key = ctx.core.keys.resume(0)
        source = redis_cluster.owner(key)
        assert source is not None
        target = next(p for p in redis_cluster.slot_owners() if p != source)
        before = slots_of(redis_cluster, source)
        keys_before = await asyncio.to_thread(dbsize, source)
        errors_before.update(await asyncio.to_thread(redirects, source))
        nodes.append(source)
        # reshard takes the source's lowest slots first: enough of them that the resume point's goes too.
        slot = key_slot(key.encode())
        below = sum(max(0, min(b, slot) - a + 1) for a, b in redis_cluster.slot_owners()[source])
        count = min(max(below, SLOTS), before - 1)
        took = await asyncio.to_thread(reshard, redis_cluster, source, target, count)
        moved.append((source, target, count))
        assert slots_of(redis_cluster, source) == before - count
        assert redis_cluster.owner(key) == target, "the resume point's slot moved"
        figures.update(source_port=source, target_port=target, slots=count, source_keys_before=keys_before,
                       reshard_s=round(took, 1))

    try:
        await run_drill("cluster_reshard", settings, three_workers(start_worker), producer, fault, seed=37)
        after = await asyncio.to_thread(redirects, nodes[0])
        figures.update({f"source_{k.lower()}_replies": after[k] - errors_before[k] for k in after})
        assert after["MOVED"] > errors_before["MOVED"], "the workers met the moved slots (and followed them)"
    finally:
        for source, target, count in moved:  # the slots go home, for the tests after this one
            await asyncio.to_thread(reshard, redis_cluster, target, source, count)
    record("cluster_reshard_slots", **figures)
