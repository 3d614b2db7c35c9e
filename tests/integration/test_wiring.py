"""The whole chain on the real stack: aiokafka -> Faust agent -> Redis -> API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from stream.config import Settings
from tests.integration.conftest import Proc, bearer, eventually, make_key, produce_json

pytestmark = pytest.mark.integration


async def test_profile_update_reaches_the_api(
    topics: Settings,
    producer: AIOKafkaProducer,
    start_worker: Callable[[Settings], Awaitable[Proc]],
    start_api: Callable[[Settings], Awaitable[str]],
) -> None:
    settings = topics
    await start_worker(settings)
    url = await start_api(settings)
    key = await make_key(settings, "wiring", ["read", "write"])
    async with httpx.AsyncClient(base_url=url, headers=bearer(key)) as api:
        assert (await api.get("/readyz")).status_code == 200
        created = await api.post("/segments", json={
            "name": "Pune", "kind": "live", "rule": {"profile": {"prop": "city", "op": "eq", "value": "Pune"}}})
        assert created.status_code == 201, created.text
        await produce_json(producer, settings.topic_profiles, [
            {"user_id": "u-1", "ts": "2026-11-29T10:00:00Z", "set": {"city": "Pune", "email": "a@x.io"}},
            {"user_id": "u-2", "ts": "2026-11-29T10:00:00Z", "set": {"city": "Goa"}},
        ])

        async def served_size() -> float:
            listing = (await api.get("/segments")).json()["segments"]
            return float(listing[0]["estimated_size"])

        assert await eventually(served_size, timeout=30, what="the API to serve size 1") == 1.0
