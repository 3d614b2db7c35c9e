"""Writing to the control log (broker acknowledgement first) and tailing it into Redis."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from stream import metrics
from stream.config import Settings
from stream.control.epoch import ensure_epoch
from stream.control.materialize import Applied, Materializer
from stream.control.records import ControlKind, ControlRecord, parse_key, record_key
from stream.kafkaio.log import end_offsets, read_range
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
    so a writer that died between logging and materialising loses nothing."""

    def __init__(self, settings: Settings, materializer: Materializer, interval: float = 0.5) -> None:
        self.settings = settings
        self.materializer = materializer
        self.interval = interval

    async def run_once(self) -> int:
        start = await self.materializer.position()
        end = (await end_offsets(self.settings, self.settings.topic_control, [CONTROL_PARTITION]))[CONTROL_PARTITION]
        metrics.CONTROL_LAG.set(max(0, end - start))
        if end <= start:
            return 0
        position, changed = await replay(self.settings, self.materializer, start, end)
        await self.materializer.set_position(position)
        metrics.CONTROL_LAG.set(0)
        return changed

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an outage: the next round retries
                log.warning("control tailer: %s", exc)
            await asyncio.sleep(self.interval)
