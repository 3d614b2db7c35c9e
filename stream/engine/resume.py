"""Resume points: where each input partition's effects really are in Redis, and the gaps to replay.

Kafka Streams and Flink keep input offsets with the state; so do we. After a
batch's effects are all written (and, on a replicated Redis, acknowledged by
the replicas), the engine moves its partitions' resume points, the next
offset per topic whose every effect is in Redis, with a compare-and-set on the
token it wrote last (`lua/resume_advance.lua`). The rule:

* a message below the resume point is already applied: it is skipped;
* a message above it, with the messages in between never applied here
  (a new owner whose Faust committed offset is ahead, a Redis that came back
  older than it was), leaves a gap: the engine replays the gap from the log,
  and the resume point does not move past the gap until the replay is done;
* a compare-and-set that fails means Redis lost writes (or another owner
  moved it): the stored point is adopted and what lies between it and this
  worker's position is replayed.

Replays are harmless for what did survive: each user records the offsets it
applied (`qe`/`qp`), and the dedupe set catches the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from stream import metrics
from stream.outputs import Message
from stream.state.store import EngineStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages [start, end) of a topic partition to replay from the log."""

    topic: str
    partition: int
    start: int
    end: int


@dataclass
class _Partition:
    next: dict[str, int] = field(default_factory=dict)  # topic -> next offset to apply (applied below it)
    token: str | None = None
    stored: dict[str, int] = field(default_factory=dict)
    gaps: set[Gap] = field(default_factory=set)
    seq: int = 0


class ResumePoints:
    def __init__(self, store: EngineStore, writer: str, topics: Sequence[str]) -> None:
        self.store = store
        self.writer = writer
        self.topics = tuple(topics)
        self._parts: dict[int, _Partition] = {}

    async def assign(self, partitions: Iterable[int]) -> None:
        """Reads the stored points of owned partitions; Faust's committed offsets are not trusted."""
        for p in partitions:
            offsets, token = await self.store.read_resume(p)
            self._parts[p] = _Partition(next=dict(offsets), token=token, stored=dict(offsets))

    def revoke(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._parts.pop(p, None)

    def owned(self) -> list[int]:
        return sorted(self._parts)

    def admit(self, messages: Sequence[Message]) -> tuple[list[Message], int, dict[tuple[int, str], int]]:
        """The messages still to apply, how many were skipped as applied already, and the
        positions to `advance` to once they are. Nothing moves until then, so a batch retried
        after an outage is admitted the same way again.

        A partition never assigned (the engine driven without a consumer group)
        starts wherever its first message is."""
        kept: list[Message] = []
        skipped = 0
        positions: dict[tuple[int, str], int] = {}
        for msg in messages:
            part = self._parts.setdefault(msg.partition, _Partition())
            nxt = positions.get((msg.partition, msg.topic), part.next.get(msg.topic))
            if nxt is not None and msg.offset < nxt:
                skipped += 1
                continue
            if nxt is not None and msg.offset > nxt:
                gap = Gap(msg.topic, msg.partition, nxt, msg.offset)
                if gap not in part.gaps:
                    part.gaps.add(gap)
                    log.warning("gap in %s[%d]: %d..%d not applied here; replaying it from the log",
                                msg.topic, msg.partition, nxt, msg.offset)
                    metrics.RESUME_GAPS.inc()
            positions[msg.partition, msg.topic] = msg.offset + 1
            kept.append(msg)
        return kept, skipped, positions

    def advance(self, positions: dict[tuple[int, str], int]) -> None:
        for (p, topic), nxt in positions.items():
            part = self._parts.setdefault(p, _Partition())
            part.next[topic] = max(nxt, part.next.get(topic, nxt))

    def pending_gaps(self) -> list[Gap]:
        return sorted({g for part in self._parts.values() for g in part.gaps},
                      key=lambda g: (g.partition, g.topic, g.start))

    def gap_done(self, gap: Gap) -> None:
        part = self._parts.get(gap.partition)
        if part is not None:
            part.gaps.discard(gap)

    async def persist(self, partitions: Iterable[int]) -> list[Gap]:
        """Moves each partition's stored point to its position unless a replay is pending there.
        Returns the gaps found by a failed compare-and-set (Redis came back older)."""
        found: list[Gap] = []
        for p in sorted(set(partitions)):
            part = self._parts.get(p)
            if part is None or part.gaps or part.next == part.stored:
                continue
            part.seq += 1
            token = f"{self.writer}:{part.seq}"
            current = await self.store.advance_resume(p, token, part.token, part.next)
            if current is None:
                part.token, part.stored = token, dict(part.next)
                continue
            offsets, other = current
            metrics.RESUME_ROLLBACKS.inc()
            log.warning("resume point of partition %d is %s in Redis, not %s as this worker left it: Redis lost "
                        "writes or another worker moved it; replaying from there", p, offsets, part.stored)
            part.token, part.stored = other, dict(offsets)
            for topic, at in offsets.items():
                if at < part.next.get(topic, at):
                    gap = Gap(topic, p, at, part.next[topic])
                    part.gaps.add(gap)
                    found.append(gap)
        return found
