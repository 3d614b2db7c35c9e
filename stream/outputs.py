"""Where the engine's output messages go: Kafka in production, a list in tests.

An interface of its own so the engine can be driven without a broker (see
stream.testing) and the Faust wiring stays a thin adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Message:
    """A consumed record, reduced to what the engine reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int  # Kafka log-append time (the events topic is created with LogAppendTime)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message: Message
    reason: str
    detail: str


class Outputs(Protocol):
    async def send_changes(self, records: list[tuple[str, bytes]]) -> None:
        """(user_id, JSON value) records for the segment-changes topic; returns once acknowledged."""

    async def send_dead_letters(self, letters: list[DeadLetter]) -> None:
        """Original bytes with the reason in headers; returns once acknowledged."""


@dataclass
class MemoryOutputs:
    """Collects outputs in memory, for tests and the testing module."""

    changes: list[tuple[str, bytes]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    async def send_changes(self, records: list[tuple[str, bytes]]) -> None:
        self.changes.extend(records)

    async def send_dead_letters(self, letters: list[DeadLetter]) -> None:
        self.dead_letters.extend(letters)
