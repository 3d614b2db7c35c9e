"""Effects run side by side before an ack: both finish, or the first error comes out as it is."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from stream.engine.commit import together

pytestmark = pytest.mark.unit


async def test_steps_overlap_and_all_finish() -> None:
    order: list[str] = []
    gate = asyncio.Event()

    async def first() -> None:
        order.append("first started")
        await gate.wait()
        order.append("first done")

    async def second() -> None:
        order.append("second started")
        gate.set()

    await together(first(), second())
    assert order == ["first started", "second started", "first done"]
    await together()


async def test_a_failure_cancels_the_others_and_is_raised_unwrapped() -> None:
    """The worker's retry classifies the error (a Redis outage waits and retries): an
    ExceptionGroup would hide it, and a step left running would write beside the retry."""
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def failing() -> None:
        raise RedisConnectionError("gone")

    with pytest.raises(RedisConnectionError, match="gone"):
        await together(slow(), failing())
    assert cancelled.is_set()
