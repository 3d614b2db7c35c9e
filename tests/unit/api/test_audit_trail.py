"""The audit trail's writer: records grouped into few sends, none lost on failure or shutdown, bounded queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from stream import metrics
from stream.api.audit import AuditTrail
from stream.kafkaio.outputs import Record

pytestmark = pytest.mark.unit


class Recorder:
    """Stands in for KafkaOutputs: each send takes `delay` (the broker round trip) and may fail."""

    def __init__(self, delay: float = 0.005, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.sends: list[list[Record]] = []

    async def send(self, topic: str, records: Sequence[Record], partition: int | None = None) -> None:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("kafka did not acknowledge")
        self.sends.append(list(records))


def counted(label: str) -> float:
    return metrics.AUDIT_RECORDS.labels(label)._value.get()  # type: ignore[no-any-return]


def record(i: int, status: int = 200) -> dict[str, object]:
    return {"ts": i, "key": "k", "method": "GET", "route": "/segments/{sid}/users", "status": status}


async def test_concurrent_requests_share_sends_and_every_record_arrives_once() -> None:
    sink = Recorder()
    trail = AuditTrail(sink, "audit")
    before = counted("2xx")
    await asyncio.gather(*(trail.append("k", record(i)) for i in range(500)))
    await trail.close()
    sent = [json.loads(value or b"") for batch in sink.sends for _, value, _ in batch]
    assert sorted(r["ts"] for r in sent) == list(range(500))
    assert len(sink.sends) <= 3, f"500 records in {len(sink.sends)} sends: not grouped"
    assert all(key == b"k" for batch in sink.sends for key, _, _ in batch)
    assert counted("2xx") - before == 500


async def test_append_does_not_wait_for_the_broker() -> None:
    sink = Recorder(delay=0.5)
    trail = AuditTrail(sink, "audit")
    loop = asyncio.get_running_loop()
    began = loop.time()
    await trail.append("k", record(1))
    assert loop.time() - began < 0.1
    assert trail.pending == 1
    await trail.close()
    assert trail.pending == 0 and len(sink.sends) == 1


async def test_a_failed_send_is_counted_per_record() -> None:
    trail = AuditTrail(Recorder(fail=True), "audit")
    before = counted("failed")
    for i in range(7):
        await trail.append("k", record(i, status=403))
    await trail.close()
    assert counted("failed") - before == 7


class Gate(Recorder):
    """A broker that does not answer until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(delay=0)
        self.gate = asyncio.Event()

    async def send(self, topic: str, records: Sequence[Record], partition: int | None = None) -> None:
        await self.gate.wait()
        await super().send(topic, records, partition)


async def test_a_full_queue_makes_append_wait_for_room() -> None:
    sink = Gate()
    trail = AuditTrail(sink, "audit", max_pending=4)
    await trail.append("k", record(0))
    await asyncio.sleep(0.01)  # the flusher takes record 0 and waits on the broker
    for i in range(1, 5):
        await trail.append("k", record(i))
    late = asyncio.create_task(trail.append("k", record(99)))
    await asyncio.sleep(0.01)
    assert not late.done(), "a fifth queued record was accepted past max_pending=4"
    assert trail.pending == 5
    sink.gate.set()
    await asyncio.wait_for(late, 1.0)
    await trail.close()
    sent = sorted(json.loads(value or b"")["ts"] for batch in sink.sends for _, value, _ in batch)
    assert sent == [0, 1, 2, 3, 4, 99]
