"""Batch intake: Faust's fetcher hands each fetch of the inputs to the worker whole.

Faust delivers a message at a time: its fetcher awaits `wait_first(callback(message),
suspend_flow.wait())` for every message (two tasks and an `asyncio.wait` each), the
conductor decodes it into an `Event` and queues it, the stream takes it and `noack_take`
gathers it. A Faust agent doing nothing else with the worker's batches moved 12.9k msg/s
on the bench machine (~77 us a message, a third of the pipeline's time then), where a
bare aiokafka consumer reads 520k.

Here the fetcher keeps its loop, and with it Faust's bookkeeping (read offsets, offset
gaps, a commit every `broker_commit_every` acks, flow suspension, getmany's generation
check), but the inputs' messages of one fetch go into a list, each tracked as in flight,
and the list into a bounded queue in one step. The worker takes batches from the queue
and acknowledges each message to the consumer, so Faust still owns the consumer group,
commits only acknowledged offsets, and on a rebalance drops what was queued (the queue
is cleared with the agents' buffers) and waits for the batch in hand to be acknowledged.
Messages of any other topic take Faust's usual path.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import Message as FaustMessage

# Most messages one fetch hands over (Faust's `broker_max_poll_records`, unbounded by default:
# a backlog's fetch can be every partition's prefetched MiB, tens of thousands of messages).
FETCH_RECORDS = 1000
# Fetches waiting for the worker: a few batches ahead, at most 8,000 messages held; a full
# queue stops the fetcher (the broker keeps the rest).
QUEUED_FETCHES = 8


class BatchIntake:
    """The queue between the fetcher and the worker, with batch-sized takes."""

    def __init__(self, topics: Iterable[str], queued_fetches: int = QUEUED_FETCHES) -> None:
        self.topics = frozenset(topics)
        self._queue: asyncio.Queue[list[FaustMessage]] = asyncio.Queue(queued_fetches)
        self._rest: deque[FaustMessage] = deque()
        self.consumer: Any = None  # set by the consumer that feeds it (for untracking on clear)

    async def put(self, fetch: list[FaustMessage]) -> None:
        await self._queue.put(fetch)

    def clear(self) -> None:
        """A rebalance began (Faust clears the agents' buffers at this point): queued messages
        are no longer in flight; the consumer reads them again from the committed offsets."""
        dropped = list(self._rest)
        self._rest.clear()
        while not self._queue.empty():
            dropped += self._queue.get_nowait()
        if self.consumer is not None:
            unacked = self.consumer._unacked_messages
            for message in dropped:
                unacked.discard(message)

    async def take(self, size: int, within: float) -> list[FaustMessage]:
        """Up to `size` messages: waits for the first, then at most `within` seconds for more."""
        batch: list[FaustMessage] = []
        if not self._rest:
            self._rest.extend(await self._queue.get())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            while self._rest and len(batch) < size:
                batch.append(self._rest.popleft())
            if len(batch) >= size:
                return batch
            if self._queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return batch
                try:
                    fetch = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    return batch
            else:
                fetch = self._queue.get_nowait()
            self._rest.extend(fetch)

    def ack(self, messages: Iterable[FaustMessage]) -> None:
        """The messages' effects are stored: their offsets may be committed."""
        ack = self.consumer.ack
        for message in messages:
            ack(message)


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetcher hands the intake's topics over per fetch."""

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in workers
        intake: BatchIntake | None = getattr(self.app, "intake", None)
        if intake is None:
            await super()._drain_messages(fetcher)
            return
        intake.consumer = self
        topics = intake.topics
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        track = self.track_message
        acks_enabled_for = self.app.topics.acks_enabled_for
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                fetch: list[FaustMessage] = []
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in self.getmany(timeout=1.0):
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is not None and offset < r_offset:
                            continue  # read already (Faust drops these too)
                        if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if message.topic in topics:
                            track(message)
                            fetch.append(message)
                        else:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    self.diag.unset_flag(CONSUMER_FETCHING)
                if fetch:
                    await self.wait_first(intake.put(fetch), self.suspend_flow.wait())
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer


class BatchApp(faust.App):
    """A Faust app whose inputs arrive in batches through `intake` (see the module)."""

    intake: BatchIntake | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("broker_max_poll_records", FETCH_RECORDS)
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)

    def batch_inputs(self, topic: Any) -> BatchIntake:
        """Subscribes `topic` (Faust joins the group, assigns and commits) and returns the
        intake its messages come through."""
        intake = self.intake = BatchIntake(topic.topics)
        self.topics.add(topic)
        self.flow_control.manage_queue(cast(Any, intake))  # cleared with the agents' buffers
        return intake
