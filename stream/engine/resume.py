"""Resume points: where each input partition's effects really are in Redis, and the gaps to replay.

Kafka Streams and Flink keep input offsets with the state; so do we. After a
batch's effects are all written (and, on a replicated Redis, acknowledged by
the replicas), the engine moves its partitions' resume points, the next
offset per topic whose every effect is in Redis, with a compare-and-set on the
token it wrote last (`lua/resume_advance.lua`). The rule:

* a message below the resume point is already applied: it is skipped;
* a message above it, with the messages in between never applied here
  (a new owner whose Faust committed offset is ahead, a Redis that came back
  older than it was), opens a gap: from then on that topic partition is
  applied only by replaying the log in order, from the resume point, until
  the replay has caught up with the stream; the resume point does not move
  past a gap until then;
* a Redis that restarted (a new run_id) may have come back older: before the
  next batch is applied, the stored points are read again and compared;
* a compare-and-set that fails means Redis lost writes (or another owner
  moved it): the stored point is adopted and the rest is replayed.

Order matters: profile updates are partial, last-write-wins by `ts`, so an
update applied before an older one it does not overlap would make the older
one look stale. Hence the stream waits behind a gap instead of running ahead
of it. What did survive is skipped per user (the offsets it applied, `qe`/`qp`)
or by the dedupe set.
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
    gaps: dict[str, list[int]] = field(default_factory=dict)  # topic -> [start, end) still to replay
    seq: int = 0

    def open_gap(self, topic: str, start: int, end: int) -> bool:
        found = self.gaps.get(topic)
        if found is None:
            self.gaps[topic] = [start, end]
            return True
        found[0], found[1] = min(found[0], start), max(found[1], end)
        return False


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

    async def reconcile(self) -> list[Gap]:
        """After Redis restarted: compares every stored point with this worker's position and
        opens a gap where Redis is behind (it came back older than the last batch left it)."""
        found: list[Gap] = []
        for p, part in self._parts.items():
            offsets, token = await self.store.read_resume(p)
            if token == part.token:
                continue
            found += self._adopt(p, part, offsets, token)
        return found

    def _adopt(self, p: int, part: _Partition, offsets: dict[str, int], token: str | None) -> list[Gap]:
        metrics.RESUME_ROLLBACKS.inc()
        log.warning("resume point of partition %d is %s in Redis, not %s as this worker left it: Redis lost "
                    "writes or another worker moved it; replaying from there", p, offsets, part.stored)
        part.token, part.stored = token, dict(offsets)
        found = []
        for topic, nxt in part.next.items():
            at = offsets.get(topic, 0)  # a topic Redis has no point for: everything since its start
            if at < nxt:
                part.open_gap(topic, at, nxt)
                found.append(Gap(topic, p, at, nxt))
        return found

    def admit(self, messages: Sequence[Message]) -> tuple[list[Message], int, dict[tuple[int, str], int]]:
        """The messages to apply now, how many were skipped, and the positions to `advance` to
        once they are applied. Nothing moves until then, so a batch retried after an outage is
        admitted the same way again. A message behind an open gap is left to the gap's replay.

        A partition never assigned (the engine driven without a consumer group)
        starts wherever its first message is."""
        kept: list[Message] = []
        skipped = 0
        positions: dict[tuple[int, str], int] = {}
        for msg in messages:
            part = self._parts.setdefault(msg.partition, _Partition())
            gap = part.gaps.get(msg.topic)
            if gap is not None:
                gap[1] = max(gap[1], msg.offset + 1)  # the replay reads it from the log, in order
                skipped += 1
                continue
            nxt = positions.get((msg.partition, msg.topic), part.next.get(msg.topic))
            if nxt is not None and msg.offset < nxt:
                skipped += 1
                continue
            if nxt is not None and msg.offset > nxt:
                part.open_gap(msg.topic, nxt, msg.offset + 1)
                log.warning("gap in %s[%d]: %d..%d not applied here; replaying it from the log",
                            msg.topic, msg.partition, nxt, msg.offset)
                metrics.RESUME_GAPS.inc()
                skipped += 1
                continue
            positions[msg.partition, msg.topic] = msg.offset + 1
            kept.append(msg)
        return kept, skipped, positions

    def advance(self, positions: dict[tuple[int, str], int]) -> None:
        for (p, topic), nxt in positions.items():
            part = self._parts.setdefault(p, _Partition())
            part.next[topic] = max(nxt, part.next.get(topic, nxt))

    def pending_gaps(self) -> list[Gap]:
        return sorted((Gap(topic, p, start, end) for p, part in self._parts.items()
                       for topic, (start, end) in part.gaps.items()), key=lambda g: (g.partition, g.topic))

    def replayed(self, gap: Gap) -> bool:
        """[gap.start, gap.end) went through the engine. True when the topic partition has caught
        up (the gap is closed); False when messages arrived meanwhile (the rest is still open)."""
        part = self._parts.get(gap.partition)
        if part is None or gap.topic not in part.gaps:
            return True
        current = part.gaps[gap.topic]
        part.next[gap.topic] = max(part.next.get(gap.topic, gap.end), gap.end)
        if current[1] > gap.end:
            current[0] = gap.end
            return False
        del part.gaps[gap.topic]
        return True

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
            found += self._adopt(p, part, *current)
        return found
