"""Where the engine's output messages go: Kafka in production, lists in tests.

An interface of its own so the engine can be driven without a broker (see
stream.testing) and the Faust wiring stays a thin adapter. Every method returns
only once the broker acknowledged (acks=all): the engine acknowledges its
input after these, so what they carry is never lost with a crash.
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
    timestamp_ms: int  # Kafka log-append time (the input topics are created with LogAppendTime)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message: Message
    reason: str
    detail: str


class OutputUnavailable(RuntimeError):
    """The outputs' broker did not acknowledge: the caller retries (nothing was acknowledged upstream)."""


# (partition, key, value; None is a tombstone): the changelog is co-partitioned with the inputs. The
# key is the user id, or a heavy user's block (`stream.state.userhash.changelog_records`).
ChangelogRecord = tuple[int, bytes, bytes | None]


class Outputs(Protocol):
    async def send_changes(self, records: list[tuple[str, bytes]]) -> None:
        """(user_id, JSON value) records for the segment-changes topic."""

    async def send_dead_letters(self, letters: list[DeadLetter]) -> None:
        """Original bytes with the reason in headers."""

    async def send_changelog(self, records: list[ChangelogRecord]) -> None:
        """Users' committed state, to the partition their input came from."""

    async def send_trend(self, records: list[tuple[str, bytes]]) -> None:
        """(segment_id:day, JSON {"e", "x"}) daily trend counters."""


@dataclass
class MemoryOutputs:
    """Collects outputs in memory, for tests and the testing module."""

    changes: list[tuple[str, bytes]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    changelog: list[ChangelogRecord] = field(default_factory=list)
    trend: list[tuple[str, bytes]] = field(default_factory=list)

    async def send_changes(self, records: list[tuple[str, bytes]]) -> None:
        self.changes.extend(records)

    async def send_dead_letters(self, letters: list[DeadLetter]) -> None:
        self.dead_letters.extend(letters)

    async def send_changelog(self, records: list[ChangelogRecord]) -> None:
        self.changelog.extend(records)

    async def send_trend(self, records: list[tuple[str, bytes]]) -> None:
        self.trend.extend(records)
