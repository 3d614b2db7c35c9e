"""An API (and, where membership must move, a worker) per test, on the real stack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest_asyncio
from redis.asyncio import Redis

from stream.config import Settings
from tests.integration.conftest import Proc, bearer


@pytest_asyncio.fixture
async def api(topics: Settings, redis: Redis, admin_key: str,
              start_api: Callable[[Settings], Awaitable[str]]) -> AsyncIterator[httpx.AsyncClient]:
    """The API alone: enough for routes that only read and write definitions (an admin key)."""
    url = await start_api(topics)
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=bearer(admin_key)) as client:
        yield client


@pytest_asyncio.fixture
async def stack(topics: Settings, redis: Redis, admin_key: str, start_worker: Callable[[Settings], Awaitable[Proc]],
                start_api: Callable[[Settings], Awaitable[str]]) -> AsyncIterator[httpx.AsyncClient]:
    """Worker plus API: profiles produced to Kafka move memberships the API reads (an admin key)."""
    await start_worker(topics)
    url = await start_api(topics)
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=bearer(admin_key)) as client:
        yield client
