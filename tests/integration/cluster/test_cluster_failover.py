"""Drill: a Redis Cluster master is `kill -9`ed mid-stream and its replica takes over.

The drill harness of tests/integration/drills (a seeded workload into 22
segments, the fault mid-stream, then membership equal to the oracle, the DLQ
exactly the malformed input, trend counters netting to each size, the last
`segment-changes` word per member, exact recounts with zero drift) runs on the
cluster with three workers. The master killed is the one holding partition 0's
resume point. Replication is asynchronous: what covers the failover is that a
worker WAITs for each master's replica before it moves a resume point or
acknowledges input, and that a new master (another run_id) makes the step run
again from the resume points (docs/SCALING.md). The killed node is started
again once its replica has taken over and rejoins as a replica.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer

from stream.config import Settings
from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.test_cluster_scenario import three_workers
from tests.integration.conftest import Proc, eventually
from tests.integration.drills.test_drills import Ctx, record, run_drill

pytestmark = pytest.mark.integration


async def test_drill_cluster_master_killed_and_replica_takes_over(
        settings: Settings, redis_cluster: Cluster, start_worker: Callable[..., Awaitable[Proc]],
        producer: AIOKafkaProducer) -> None:
    figures: dict[str, object] = {}

    async def fault(ctx: Ctx) -> None:
        key = ctx.core.keys.resume(0)
        victim = redis_cluster.owner(key)
        assert victim is not None
        replicas_before = set(redis_cluster.ports) - set(redis_cluster.slot_owners())
        killed = time.monotonic()
        redis_cluster.kill(victim)

        async def promoted() -> int | None:
            now = await asyncio.to_thread(redis_cluster.owner, key, victim)
            return now if now is not None and now != victim else None

        successor = await eventually(promoted, timeout=30, interval=0.1, what="a replica to take over the slots")
        assert successor in replicas_before, (successor, replicas_before)
        figures.update(killed_port=victim, successor_port=successor,
                       promoted_after_s=round(time.monotonic() - killed, 1))
        await asyncio.to_thread(redis_cluster.start)  # the old master comes back as a replica
        assert victim not in redis_cluster.slot_owners(), "the restarted node rejoined as a replica"

    await run_drill("cluster_master_failover", settings, three_workers(start_worker), producer, fault, seed=36)
    record("cluster_master_failover_promotion", **figures)
