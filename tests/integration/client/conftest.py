"""A worker and an API for the client tests, with the URL and an admin key the clients are built from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest_asyncio
from redis.asyncio import Redis

from stream.config import Settings
from tests.integration.conftest import Proc


@dataclass(frozen=True)
class Live:
    settings: Settings
    url: str
    admin_key: str


@pytest_asyncio.fixture
async def live(topics: Settings, redis: Redis, admin_key: str, start_worker: Callable[[Settings], Awaitable[Proc]],
               start_api: Callable[[Settings], Awaitable[str]]) -> Live:
    """Worker plus API on the test's own topics and key prefix (the `redis` fixture cleans the prefix up)."""
    await start_worker(topics)
    return Live(topics, await start_api(topics), admin_key)
