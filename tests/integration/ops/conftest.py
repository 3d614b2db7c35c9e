"""A running worker and API with real traffic, for checks of what ops scrape.

Metric families with labels only appear once something increments them, so
the stack is driven through every path worth exporting (ok, duplicate and
invalid input, a membership change, API reads) before anything is checked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from stream.config import Settings
from tests.integration.conftest import Proc, bearer, eventually, produce_json


@dataclass
class OpsStack:
    settings: Settings
    api_url: str
    worker_url: str
    api: httpx.AsyncClient
    producer: AIOKafkaProducer
    segment_id: str

    async def charged(self, users: int) -> None:
        """`users` new users each doing one "Charged" now, so each enters the segment."""
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        events = [{"event_id": f"e-{uuid.uuid4().hex}", "user_id": f"u-{uuid.uuid4().hex[:12]}", "name": "Charged",
                   "ts": now, "props": {"amount": 10}} for _ in range(users)]
        await produce_json(self.producer, self.settings.topic_events, events)

    async def processed(self) -> float:
        """The worker's own count of processed events, read from its /metrics."""
        async with httpx.AsyncClient() as client:
            text = (await client.get(self.worker_url + "/metrics")).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("stream_events_processed_total{"))


@pytest_asyncio.fixture
async def ops_stack(topics: Settings, redis: Redis, producer: AIOKafkaProducer, admin_key: str,
                    start_worker: Callable[[Settings], Awaitable[Proc]],
                    start_api: Callable[[Settings], Awaitable[str]]) -> AsyncIterator[OpsStack]:
    await start_worker(topics)
    api_url = await start_api(topics)
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=bearer(admin_key)) as api:
        created = await api.post("/segments", json={"name": "Chargers", "kind": "live",
                                                    "rule": {"event": {"name": "Charged"}}})
        assert created.status_code == 201, created.text
        stack = OpsStack(topics, api_url, f"http://127.0.0.1:{topics.worker_web_port}", api, producer,
                         created.json()["id"])
        yield stack


async def drive_traffic(stack: OpsStack) -> None:
    """Ok, duplicate and invalid input, a membership change, and API reads, all observed to land."""
    sid = stack.segment_id
    dup: dict[str, Any] = {"event_id": "e-dup", "user_id": "u-dup", "name": "Charged",
                           "ts": int(time.time() * 1000), "props": {}}
    await produce_json(stack.producer, stack.settings.topic_events, [dup, dup])
    await stack.charged(5)
    bad = await stack.producer.send(stack.settings.topic_events, b"{not json", key=b"u-bad")
    await bad

    async def members() -> bool:
        body = (await stack.api.get(f"/segments/{sid}/insights")).json()
        return bool(body["size"]["estimate"] >= 6)

    await eventually(members, what="the segment to gain 6 members")

    async def all_counted() -> bool:  # 6 ok, 1 duplicate, 1 invalid
        return await stack.processed() >= 8

    await eventually(all_counted, what="the worker to count all 8 messages")
    for path in ("/segments", f"/segments/{sid}", f"/segments/{sid}/trend", f"/segments/{sid}/users",
                 "/segments/s-missing", f"/segments/{sid}/export.csv?fields=user_id"):
        await stack.api.get(path)
