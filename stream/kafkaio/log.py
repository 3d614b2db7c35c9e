"""Reading the logs directly: backfills, gap replays, the control tailer and `stream rebuild`.

Plain aiokafka consumers with no group (assigned partitions, explicit
offsets), so reading history never disturbs the workers' consumer group.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from stream.config import Settings
from stream.engine.backfill import SourceUnavailable
from stream.kafkaio.client import client_kwargs
from stream.outputs import Message

FETCH_BYTES = 16 * 1024 * 1024


def consumer(settings: Settings, **extra: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False, group_id=None,
                            auto_offset_reset="earliest", fetch_max_bytes=FETCH_BYTES,
                            max_partition_fetch_bytes=FETCH_BYTES, **extra)


async def end_offsets(settings: Settings, topic: str, partitions: list[int]) -> dict[int, int]:
    c = consumer(settings)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await c.end_offsets(tps)
        return {tp.partition: int(ends[tp]) for tp in tps}
    finally:
        await c.stop()


async def read_range(settings: Settings, topic: str, partition: int, start: int | None, end: int | None = None,
                     start_ms: int | None = None, stop_at_append_ms: int | None = None,
                     batch: int = 5000) -> AsyncIterator[list[Message]]:
    """Batches of messages from `start` (or the first at/after `start_ms`, or the log's start) up to
    `end` (default: the end offset seen now), stopping early at the first message appended at or
    after `stop_at_append_ms` (LogAppendTime only grows along a partition)."""
    c = consumer(settings)
    try:
        await c.start()
    except BaseException:
        await c.stop()
        raise
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        if end is None:
            end = int((await c.end_offsets([tp]))[tp])
        if start is not None:
            first = int((await c.beginning_offsets([tp]))[tp])
            c.seek(tp, max(start, first))
        elif start_ms is not None:
            found = (await c.offsets_for_times({tp: start_ms}))[tp]
            if found is None:
                return
            c.seek(tp, found.offset)
        else:
            await c.seek_to_beginning(tp)
        while await c.position(tp) < end:
            got = await c.getmany(tp, timeout_ms=1000, max_records=batch)
            out: list[Message] = []
            done = False
            for record in got.get(tp, []):
                if record.offset >= end or (stop_at_append_ms is not None and record.timestamp >= stop_at_append_ms):
                    done = True
                    break
                out.append(Message(topic, partition, record.offset, record.key, record.value, record.timestamp))
            if out:
                yield out
            if done:
                return
    finally:
        await c.stop()


async def committed_offsets(settings: Settings, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    """The consumer group's committed offsets (-1: none), for a rebuild's replay start."""
    c = AIOKafkaConsumer(**client_kwargs(settings), group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        out: dict[int, int] = {}
        for p in partitions:
            got = await c.committed(TopicPartition(topic, p))
            out[p] = -1 if got is None else int(got)
        return out
    finally:
        await c.stop()



class KafkaLog:
    """`stream.engine.backfill.LogSource` over Kafka: what backfills and gap replays read."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def read(self, topic: str, partition: int, start: int | None = None, end: int | None = None,
                   start_ms: int | None = None, stop_at_append_ms: int | None = None) -> AsyncIterator[list[Message]]:
        try:
            async for batch in read_range(self.settings, topic, partition, start, end, start_ms, stop_at_append_ms):
                yield batch
        except KafkaError as exc:
            raise SourceUnavailable(f"{topic}[{partition}]: {exc}") from exc
