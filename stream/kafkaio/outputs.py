"""The one Kafka producer of the product's outputs, for the worker and the API alike.

Records are appended to per-partition batches (`create_batch`/`send_batch`)
instead of one `send` per record: the last round's profile put one aiokafka
`send` at ~7% of the worker's time for segment-changes alone, and the
changelog adds a record per committed user. Keyed records go to the partition
the Java client's default partitioner would pick (murmur2 of the key), so
consumers see the same layout as from any other producer.

Started on first use, not at construction: the API must come up and answer
/readyz (saying Kafka is down) while the broker is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import RecordMetadata

from stream.config import Settings
from stream.kafkaio.client import client_kwargs
from stream.outputs import ChangelogRecord, DeadLetter, OutputUnavailable

MAX_BATCH_BYTES = 1 << 20
Headers = list[tuple[str, bytes]]
Record = tuple[bytes | None, bytes | None, Headers]  # key, value, headers


class KafkaUnavailable(OutputUnavailable):
    """Kafka could not be reached or did not acknowledge; callers retry, the API answers 503."""


class KafkaOutputs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._partitions: dict[str, list[int]] = {}
        self._partitioner = DefaultPartitioner()

    async def started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(**client_kwargs(self.settings), acks="all", linger_ms=2,
                                            request_timeout_ms=15000, max_batch_size=MAX_BATCH_BYTES,
                                            max_request_size=4 * MAX_BATCH_BYTES, enable_idempotence=True)
                try:
                    await producer.start()
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise KafkaUnavailable(f"kafka unreachable: {exc}") from exc
                self._producer = producer
            return self._producer

    async def ready(self) -> None:
        """Connects now, so a caller can fail before it changes anything rather than midway."""
        await self.started()

    async def _partition_ids(self, producer: AIOKafkaProducer, topic: str) -> list[int]:
        found = self._partitions.get(topic)
        if found is None:
            found = self._partitions[topic] = sorted(await producer.partitions_for(topic))
        return found

    async def send(self, topic: str, records: Sequence[Record], partition: int | None = None) -> None:
        """Keyed records to their default partition (or all to `partition`), acknowledged on return."""
        if not records:
            return
        producer = await self.started()
        try:
            by_partition: dict[int, list[Record]] = defaultdict(list)
            if partition is not None:
                by_partition[partition] = list(records)
            else:
                ids = await self._partition_ids(producer, topic)
                for record in records:
                    p = self._partitioner(record[0], ids, ids) if record[0] is not None else ids[0]
                    by_partition[p].append(record)
            await asyncio.gather(*(self._send_partition(producer, topic, p, rs) for p, rs in by_partition.items()))
        except KafkaUnavailable:
            raise
        except Exception as exc:
            raise KafkaUnavailable(f"kafka did not acknowledge: {exc}") from exc

    async def _send_partition(self, producer: AIOKafkaProducer, topic: str, partition: int,
                              records: list[Record]) -> None:
        futures = []
        batch = producer.create_batch()
        for key, value, headers in records:
            while batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                if batch.record_count() == 0:
                    raise KafkaUnavailable(f"a record for {topic} is larger than {MAX_BATCH_BYTES} bytes")
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)

    async def send_one(self, topic: str, key: bytes | None, value: bytes | None,
                       headers: Headers | None = None, partition: int | None = None) -> RecordMetadata:
        """One record, returning where it landed (the control log's offset orders materialisation)."""
        producer = await self.started()
        try:
            fut = await producer.send(topic, value, key=key, headers=headers or [], partition=partition)
            return await fut
        except Exception as exc:
            raise KafkaUnavailable(f"kafka did not acknowledge: {exc}") from exc

    async def send_changes(self, records: list[tuple[str, bytes]]) -> None:
        await self.send(self.settings.topic_changes, [(uid.encode(), value, []) for uid, value in records])

    async def send_dead_letters(self, letters: list[DeadLetter]) -> None:
        await self.send(self.settings.topic_dlq, [(d.message.key, d.message.value, [
            ("reason", d.reason.encode()), ("detail", d.detail.encode()),
            ("source_topic", d.message.topic.encode()), ("source_partition", str(d.message.partition).encode()),
            ("source_offset", str(d.message.offset).encode())]) for d in letters])

    async def send_changelog(self, records: list[ChangelogRecord]) -> None:
        by_partition: dict[int, list[Record]] = defaultdict(list)
        for partition, key, value in records:
            by_partition[partition].append((key, value, []))
        await asyncio.gather(*(self.send(self.settings.topic_changelog, rs, partition=p)
                               for p, rs in by_partition.items()))

    async def send_trend(self, records: list[tuple[str, bytes]]) -> None:
        await self.send(self.settings.topic_trend_changelog, [(k.encode(), v, []) for k, v in records])

    async def close(self) -> None:
        async with self._lock:
            if self._producer is not None:
                with contextlib.suppress(Exception):
                    await self._producer.stop()
                self._producer = None
