"""Writing to the control log (broker acknowledgement first) and tailing it into Redis."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream import metrics
from stream.config import Settings
from stream.control.epoch import ensure_epoch
from stream.control.materialize import Applied, Materializer
from stream.control.records import ControlKind, ControlRecord, parse_key, record_key
from stream.kafkaio.log import consumer, read_range
from stream.kafkaio.outputs import KafkaOutputs

log = logging.getLogger(__name__)
CONTROL_PARTITION = 0


class RebuildRequired(RuntimeError):
    """Redis was lost; nothing may be written until `stream rebuild` restored it."""


def decode(key: bytes | None, value: bytes | None, offset: int, timestamp_ms: int) -> ControlRecord | None:
    """None for a record this version does not know (a newer writer): skipped, not fatal."""
    text = key.decode("utf-8", "replace") if key else ""
    if parse_key(text) is None:
        return None
    body = json.loads(value) if value is not None else None
    if body is not None and not isinstance(body, dict):
        return None
    return ControlRecord(text, body, offset, timestamp_ms)


class ControlLog:
    def __init__(self, settings: Settings, outputs: KafkaOutputs, materializer: Materializer) -> None:
        self.settings = settings
        self.outputs = outputs
        self.materializer = materializer

    async def write(self, kind: ControlKind, ident: str, value: dict[str, Any] | None) -> Applied:
        """Logs the record (acks=all) and only then materialises it; returns what applying did.

        Refuses (RebuildRequired) while Redis was lost: a record applied to an empty Redis
        would make it look like a fresh install and hide that everything else is missing."""
        m = self.materializer
        if not await ensure_epoch(self.settings, m.redis, m.keys):
            raise RebuildRequired("Redis holds no state but Kafka does: run `stream rebuild` first")
        key = record_key(kind, ident)
        body = None if value is None else json.dumps(value, separators=(",", ":")).encode()
        meta = await self.outputs.send_one(self.settings.topic_control, key.encode(), body,
                                           partition=CONTROL_PARTITION)
        return await self.materializer.apply(ControlRecord(key, value, meta.offset, meta.timestamp))


async def replay(settings: Settings, materializer: Materializer, start: int, end: int | None = None,
                 follow_up: bool = True, skip: frozenset[ControlKind] = frozenset()) -> tuple[int, int]:
    """Applies records [start, end) in order; returns (next offset, records applied anew)."""
    position, changed = start, 0
    async for batch in read_range(settings, settings.topic_control, CONTROL_PARTITION, start, end):
        for msg in batch:
            record = decode(msg.key, msg.value, msg.offset, msg.timestamp_ms)
            if record is not None and record.kind not in skip:
                changed += int((await materializer.apply(record, follow_up)).changed)
            position = msg.offset + 1
    return position, changed


class ControlTailer:
    """A worker's background loop: whatever is in the log and not yet in Redis gets applied,
    so a writer that died between logging and materialising loses nothing. One consumer
    for the worker's life; it follows Redis' position, also back (a Redis restored older)."""

    def __init__(self, settings: Settings, materializer: Materializer) -> None:
        self.settings = settings
        self.materializer = materializer
        self._consumer: AIOKafkaConsumer | None = None
        self._tp = TopicPartition(settings.topic_control, CONTROL_PARTITION)

    async def run_once(self) -> int:
        try:
            return await self._round()
        except Exception:
            await self.close()  # a broken connection: a fresh consumer next round
            raise

    async def _round(self) -> int:
        position = await self.materializer.position()
        if self._consumer is None:
            self._consumer = consumer(self.settings)
            await self._consumer.start()
            self._consumer.assign([self._tp])
            self._consumer.seek(self._tp, position)
        c = self._consumer
        if await c.position(self._tp) != position:
            c.seek(self._tp, position)
        got = await c.getmany(self._tp, timeout_ms=50, max_records=1000)
        changed = 0
        for msg in got.get(self._tp, []):
            record = decode(msg.key, msg.value, msg.offset, msg.timestamp)
            if record is not None:
                changed += int((await self.materializer.apply(record)).changed)
            position = msg.offset + 1
        await self.materializer.set_position(position)
        highwater = c.highwater(self._tp)
        if highwater is not None:
            metrics.CONTROL_LAG.set(max(0, highwater - position))
        return changed

    async def close(self) -> None:
        if self._consumer is not None:
            consumer_, self._consumer = self._consumer, None
            with contextlib.suppress(Exception):
                await consumer_.stop()
