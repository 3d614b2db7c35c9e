"""Reads one partition of the events log for a segment's creation backfill."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.outputs import Message


async def read_partition(bootstrap: str, topic: str, partition: int, start_ms: int | None,
                         stop_at_append_ms: int) -> AsyncIterator[Message]:
    """Yields messages from `start_ms` (None: the log's beginning) until the first one appended
    at or after the handover, or the end offset seen now (the caller starts only after the
    handover, so every message appended before it is below that offset)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", fetch_max_bytes=16 * 1024 * 1024)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        if start_ms is None:
            await consumer.seek_to_beginning(tp)
        else:
            found = (await consumer.offsets_for_times({tp: start_ms}))[tp]
            if found is None:
                return
            consumer.seek(tp, found.offset)
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
            for record in batch.get(tp, []):
                if record.offset >= end:
                    return
                if record.timestamp >= stop_at_append_ms:
                    return  # LogAppendTime only grows along a partition: the rest is live's

                yield Message(topic, partition, record.offset, record.key, record.value, record.timestamp)
    finally:
        await consumer.stop()
