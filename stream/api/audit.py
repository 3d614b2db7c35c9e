"""The audit trail's writer: records are sent in groups, one Kafka send per flush, not one per request.

Why a writer and not one `send` per request: every record of one key lands on
one partition, and aiokafka's `send_batch` waits until that partition's
previous batch is acknowledged (the idempotent producer keeps one request in
flight per partition, acks=all). One send per request therefore put every
audited request behind one broker round trip (~3-5 ms here). In the bench's
API load (50 clients, ~100 `/users` requests/s beside the pipeline) the queue
outgrew the producer's 15 s timeout: 2,474 records failed in one run, and each
request's keep-alive connection waited for its record before serving the next.

Now the Guard hands the record over (`append`) and returns; one flusher task
sends everything queued since its last send in one call, so the trail keeps up
with any request rate at one round trip per flush. A record is written after
its response is complete, as before, so a crash in between can lose it, as
before; what the writer adds is at most one flush of them (a few ms of
requests). Past `max_pending` queued records (Kafka down or slow) `append`
waits for room: the API slows down rather than forgetting, and a flush that
fails is logged record by record and counted as `failed`, as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from stream import metrics
from stream.kafkaio.outputs import Record

log = logging.getLogger(__name__)


class Sender(Protocol):
    """What the trail needs of `KafkaOutputs`: keyed records to a topic, acknowledged on return."""

    async def send(self, topic: str, records: Sequence[Record], partition: int | None = None) -> None: ...


class AuditTrail:
    def __init__(self, outputs: Sender, topic: str, max_pending: int = 10_000) -> None:
        self.outputs = outputs
        self.topic = topic
        self.max_pending = max_pending
        self._pending: list[tuple[Record, dict[str, Any]]] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._flusher: asyncio.Task[None] | None = None
        self._flushing = 0
        self._closing = False

    async def append(self, key: str, record: dict[str, Any]) -> None:
        """Queues one record for the next flush; waits only while `max_pending` are queued."""
        while len(self._pending) >= self.max_pending:
            self._room.clear()
            await self._room.wait()
        value = json.dumps(record, separators=(",", ":")).encode()
        self._pending.append(((key.encode(), value, []), record))
        self._wake.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._run(), name="audit-trail")

    async def _run(self) -> None:
        while not (self._closing and not self._pending):
            await self._wake.wait()
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        taken, self._pending = self._pending, []
        self._room.set()
        if not taken:
            return
        self._flushing = len(taken)
        try:
            await self.outputs.send(self.topic, [record for record, _ in taken])
        except Exception as exc:  # an audit that cannot be written is loud, not silent
            metrics.AUDIT_RECORDS.labels("failed").inc(len(taken))
            for _, record in taken:
                log.error("audit record not written (%s): %s", exc, record)
        else:
            for _, record in taken:
                metrics.AUDIT_RECORDS.labels(f"{int(record['status']) // 100}xx").inc()
        finally:
            self._flushing = 0

    @property
    def pending(self) -> int:
        """Records handed over and not yet sent or failed (queued plus the flush in flight)."""
        return len(self._pending) + self._flushing

    async def close(self) -> None:
        """Sends what is queued and lets the flush in flight finish (the API's shutdown)."""
        self._closing = True
        self._wake.set()
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
        await self._flush()
