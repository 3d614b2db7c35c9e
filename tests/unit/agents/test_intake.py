"""The batch intake's queue: batch-sized takes, the wait for more, and a rebalance's clear."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from stream.agents.intake import BatchIntake

pytestmark = pytest.mark.unit


@dataclass(eq=False)
class Msg:
    offset: int
    topic: str = "events"


@dataclass
class FakeConsumer:
    _unacked_messages: set[Any] = field(default_factory=set)
    acked: list[int] = field(default_factory=list)

    def ack(self, message: Msg) -> bool:
        self._unacked_messages.discard(message)
        self.acked.append(message.offset)
        return True


def fetch(start: int, n: int) -> list[Any]:
    return [Msg(i) for i in range(start, start + n)]


async def test_a_take_joins_fetches_up_to_the_size_and_keeps_the_rest_in_order() -> None:
    intake = BatchIntake(["events"])
    await intake.put(fetch(0, 300))
    await intake.put(fetch(300, 300))
    await intake.put(fetch(600, 300))
    first = await intake.take(500, within=0.5)
    second = await intake.take(500, within=0.01)
    assert [m.offset for m in first] == list(range(500))
    assert [m.offset for m in second] == list(range(500, 900))


async def test_a_take_returns_what_came_within_the_wait_once_the_queue_is_dry() -> None:
    intake = BatchIntake(["events"])
    await intake.put(fetch(0, 10))
    loop = asyncio.get_running_loop()
    started = loop.time()
    batch = await intake.take(1000, within=0.05)
    assert [m.offset for m in batch] == list(range(10))
    assert 0.04 <= loop.time() - started < 1.0


async def test_a_fetch_arriving_during_the_wait_joins_the_batch() -> None:
    intake = BatchIntake(["events"])
    await intake.put(fetch(0, 10))

    async def later() -> None:
        await asyncio.sleep(0.01)
        await intake.put(fetch(10, 5))

    task = asyncio.create_task(later())
    batch = await intake.take(1000, within=0.3)
    await task
    assert [m.offset for m in batch] == list(range(15))


async def test_a_take_waits_for_the_first_fetch() -> None:
    intake = BatchIntake(["events"])
    taking = asyncio.create_task(intake.take(10, within=0.01))
    await asyncio.sleep(0.02)
    assert not taking.done()
    await intake.put(fetch(0, 3))
    assert [m.offset for m in await taking] == [0, 1, 2]


async def test_clear_drops_queued_messages_from_the_in_flight_set_and_acks_reach_the_consumer() -> None:
    intake = BatchIntake(["events"], queued_fetches=4)
    consumer = intake.consumer = FakeConsumer()
    first, second, third = fetch(0, 4), fetch(4, 4), fetch(8, 4)
    consumer._unacked_messages.update([*first, *second, *third])
    for f in (first, second, third):
        await intake.put(f)
    taken = await intake.take(6, within=0.01)  # two left over from the second fetch
    intake.clear()
    # the batch in hand stays in flight until acknowledged; the rest will be read again
    assert consumer._unacked_messages == set(taken)
    intake.ack(taken)
    assert consumer.acked == [0, 1, 2, 3, 4, 5] and not consumer._unacked_messages
    await intake.put(fetch(100, 2))
    assert [m.offset for m in await intake.take(10, within=0.01)] == [100, 101]


def test_the_app_bounds_each_fetch_and_builds_the_batch_consumer() -> None:
    from stream.agents.intake import FETCH_RECORDS, BatchApp, BatchConsumer

    app = BatchApp("intake-unit", broker="kafka://127.0.0.1:1", store="memory://")
    assert app.conf.broker_max_poll_records == FETCH_RECORDS
    assert app.transport.Consumer is BatchConsumer
    topic = app.topic("ev", "pr", key_serializer="raw", value_serializer="raw")
    intake = app.batch_inputs(topic)
    assert app.intake is intake and intake.topics == {"ev", "pr"}
    assert topic in app.topics
