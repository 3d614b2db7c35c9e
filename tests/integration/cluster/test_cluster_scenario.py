"""The oracle scenario (tests/integration/agents/test_scenario.py) on a real Redis Cluster with three workers.

The same workload, segments and checks as on the single Redis, with
`STREAM_REDIS_CLUSTER=true`: membership of every segment equals the
brute-force oracle and the DLQ holds exactly the malformed input. The second
run `kill -9`s one of the three workers mid-stream and starts a new one later:
two rebalances under load, and still nothing lost or counted twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer

from stream.config import Settings
from stream.state.client import RedisClient
from stream.wiring import Core
from tests.integration.agents.test_scenario import _run_scenario
from tests.integration.conftest import Proc, free_port

pytestmark = pytest.mark.integration

WORKERS = 3


def three_workers(start_worker: Callable[[Settings], Awaitable[Proc]]) -> Callable[[Settings], Awaitable[Proc]]:
    """The scenario's `start_worker`: its first call starts three workers (the scenario gets the
    last, which it may kill), a later call one more (a worker joining the group afterwards).
    Each worker gets its own web port and Faust data dir, as `make up WORKERS=3` gives them."""
    started = 0

    async def one(settings: Settings) -> Proc:
        nonlocal started
        started += 1
        return await start_worker(settings.model_copy(update={
            "worker_web_port": free_port(), "data_dir": f"{settings.data_dir}-{started}"}))

    async def start(settings: Settings) -> Proc:
        for _ in range(WORKERS - 1 if started == 0 else 0):
            await one(settings)
        return await one(settings)

    return start


async def test_cluster_workload_matches_the_oracle(topics: Settings, redis: RedisClient, core: Core,
                                                   producer: AIOKafkaProducer,
                                                   start_worker: Callable[[Settings], Awaitable[Proc]]) -> None:
    assert topics.redis_cluster and len(await redis.cluster_nodes()) == 6
    await _run_scenario(topics, redis, core, producer, three_workers(start_worker), kill_midway=False)


async def test_cluster_worker_killed_and_another_joining_later(
        topics: Settings, redis: RedisClient, core: Core, producer: AIOKafkaProducer,
        start_worker: Callable[[Settings], Awaitable[Proc]]) -> None:
    await _run_scenario(topics, redis, core, producer, three_workers(start_worker), kill_midway=True)
