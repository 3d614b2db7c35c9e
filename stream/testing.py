"""Drive the engine without Kafka: for tests, and for anyone embedding the rules.

In the spirit of bytewax's testing module: a real Engine over a store (the
real Redis, or `MemoryEngineStore`'s dicts), with outputs collected in memory
and a clock the caller moves by hand, so midnights and window expiries can be
crossed in milliseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream.config import Settings
from stream.engine.engine import Engine
from stream.outputs import MemoryOutputs, Message
from stream.state.store import EngineStore


@dataclass
class ManualClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when.timestamp()

    def time(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@dataclass
class EngineHarness:
    """An Engine whose messages are appended 'now' by the manual clock."""

    engine: Engine
    clock: ManualClock
    outputs: MemoryOutputs
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    @classmethod
    def create(cls, store: EngineStore, settings: Settings) -> EngineHarness:
        clock, outputs = ManualClock(), MemoryOutputs()
        return cls(Engine(store, settings, outputs, clock=clock), clock, outputs)

    async def close(self) -> None:
        await self.engine.close()

    def message(self, topic: str, body: dict[str, Any], partition: int = 0) -> Message:
        offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + 1
        key = str(body.get("user_id", "")).encode()
        return Message(topic, partition, offset, key, json.dumps(body).encode(), int(self.clock.now * 1000))

    async def send_events(self, *bodies: dict[str, Any], partition: int = 0) -> None:
        topic = self.engine.settings.topic_events
        await self.engine.process([self.message(topic, b, partition) for b in bodies])

    async def send_profiles(self, *bodies: dict[str, Any], partition: int = 0) -> None:
        topic = self.engine.settings.topic_profiles
        await self.engine.process([self.message(topic, b, partition) for b in bodies])

    async def tick(self, partitions: range | list[int] | None = None) -> int:
        return await self.engine.expire_due(partitions if partitions is not None else [0])
