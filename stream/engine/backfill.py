"""Folding history from the log into segments' aggregates: creation backfills and rebuilds.

Segments created together share one scan: each event is parsed once and read
once per distinct way their conditions read events (`Plan`); each segment's
aggregates are then folded per user from those entries, counting what was
appended before that segment's handover and inside its kind's horizon. The
live agents apply the rest, so the two sides see disjoint events and merging
adds exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from stream.ingest import Invalid, Limits, parse_event
from stream.outputs import Message
from stream.rules import Aggregate, Column, Stateful, entry_columns, entry_key, fold_sorted, new_aggregate
from stream.segments import LIVE, Segment, event_names


class SourceUnavailable(RuntimeError):
    """The log could not be read now (the broker is down): a job part retries later."""


class LogSource(Protocol):
    def read(self, topic: str, partition: int, start: int | None = None, end: int | None = None,
             start_ms: int | None = None, stop_at_append_ms: int | None = None) -> AsyncIterator[list[Message]]: ...


Entry = tuple[int, int, tuple[Column, ...]]
"""(event instant, log-append instant, columns): one event as every condition of a key reads it."""


@dataclass(frozen=True)
class Plan:
    """The targets' conditions grouped by what they read of an event (`entry_key`): an event
    is read once per key that can match its name, and each segment's aggregates are folded
    from its keys' entries per user (50 targets over 7 event names: ~1 read per event, not 7)."""

    # event name -> (key id, a condition of that key, the earliest instant its segments count)
    by_name: dict[str, list[tuple[int, Stateful, int | None]]]
    keys_of: dict[str, tuple[int, ...]]  # segment id -> key id per condition
    segments_of: dict[int, frozenset[str]]  # key id -> the segments reading it


def plan_targets(targets: Sequence[Segment]) -> Plan:
    ids: dict[tuple[object, ...], int] = {}
    by_name: dict[str, list[tuple[int, Stateful, int | None]]] = {}
    keys_of: dict[str, tuple[int, ...]] = {}
    for seg in targets:
        mine = []
        for cond in seg.conditions:
            # A live segment's horizon is part of the key: its entries start at its creation, so
            # history older than that is not kept for it (nor visited per user) at all.
            key = (*entry_key(cond), seg.counts_from_ms)
            if key not in ids:
                ids[key] = len(ids)
                for name in sorted(event_names([cond])):
                    by_name.setdefault(name, []).append((ids[key], cond, seg.counts_from_ms))
            mine.append(ids[key])
        keys_of[seg.id] = tuple(mine)
    segments_of: dict[int, set[str]] = {}
    for sid, numbers in keys_of.items():
        for number in numbers:
            segments_of.setdefault(number, set()).add(sid)
    return Plan(by_name, keys_of, {number: frozenset(sids) for number, sids in segments_of.items()})


@dataclass
class History:
    """Per user, the entries the scan read for each key of the plan."""

    plan: Plan
    entries: dict[str, dict[int, list[Entry]]] = field(default_factory=dict)
    events_read: int = 0

    def users(self) -> list[str]:
        return sorted(self.entries)

    def segments_of(self, uid: str) -> set[str]:
        """The targets the user's entries may count for (`for_user` of any other is None)."""
        out: set[str] = set()
        for key in self.entries.get(uid, ()):
            out |= self.plan.segments_of[key]
        return out

    def done(self, uid: str) -> None:
        self.entries.pop(uid, None)

    def for_user(self, uid: str, seg: Segment) -> list[Aggregate] | None:
        """The segment's aggregates of the user's events; None when no event of theirs counts
        for it: merging empty aggregates adds nothing, and writing them would store an empty
        field per user and segment (50 segments x 100,000 users: 5M fields for nothing).

        Folded in time order (ties in log order), so each entry lands at the end of its
        aggregate: in log order a heavy user's every fold was an insertion into a list of up to
        millions of entries (the 1M-user bench's first user has ~2.6M events; its 50 segments
        took hours). The aggregates measure the same in any order; only a sequence's evidence
        may name another chain than the log order would (the earliest)."""
        mine = self.entries.get(uid)
        keys = self.plan.keys_of.get(seg.id)
        if not mine or keys is None:
            return None
        aggs: list[Aggregate] | None = None
        handover = seg.handover_ms
        for i, (cond, key) in enumerate(zip(seg.conditions, keys, strict=True)):
            rows = mine.get(key)
            if not rows:
                continue
            rows.sort(key=_instant)  # in place: the next segment reading this key finds it sorted
            counted = [(ts, columns) for ts, appended, columns in rows if appended < handover]
            if not counted:  # inside the kind's horizon (the key's), before this segment's handover
                continue
            if aggs is None:
                aggs = [new_aggregate(c) for c in seg.conditions]
            fold_sorted(cond, aggs[i], counted)
        return aggs


def _instant(entry: Entry) -> int:
    return entry[0]


def scan_start_ms(targets: Sequence[Segment], max_future_ms: int) -> int | None:
    """From the log's start if any target looks at all history, else from the earliest live
    segment's creation minus the clock-skew allowance (later stamps were invalid then)."""
    if any(s.kind != LIVE for s in targets):
        return None
    return min(s.created_at_ms for s in targets) - max_future_ms


async def fold_partition(log: LogSource, topic: str, partition: int, targets: Sequence[Segment],
                         limits: Limits, forgotten: Mapping[str, int] | None = None,
                         between: Callable[[], Awaitable[None]] | None = None) -> History:
    """`forgotten`: user id -> the log-append instant of their forget; their events appended
    before it are never folded again (as on the live path), or a past_behavior segment
    created later would bring a forgotten user back from the log. `between` is awaited
    before each batch read (a job yields to interactive parts there)."""
    plan = plan_targets(targets)
    history = History(plan)
    gone = forgotten or {}
    if not targets:
        return history
    stop = max(s.handover_ms for s in targets)
    seen: dict[str, set[str]] = {}
    found = history.entries
    async for batch in log.read(topic, partition, start_ms=scan_start_ms(targets, limits.max_future_ms),
                                stop_at_append_ms=stop):
        if between is not None:
            await between()
        for msg in batch:
            history.events_read += 1
            try:
                ev = parse_event(msg.value, msg.timestamp_ms, limits)
            except Invalid:
                continue
            gone_at = gone.get(ev.user_id)
            if gone_at is not None and msg.timestamp_ms < gone_at:
                continue
            ids = seen.get(ev.user_id)
            if ids is None:
                ids = seen[ev.user_id] = set()
            elif ev.event_id in ids:  # the first of an id wins, whatever its name, as on the live path
                continue
            ids.add(ev.event_id)
            for key, cond, since in plan.by_name.get(ev.name, ()):
                if since is not None and ev.ts_ms < since:
                    continue
                columns = entry_columns(cond, ev.name, ev.props)
                if columns is None:
                    continue
                mine = found.get(ev.user_id)
                if mine is None:
                    mine = found[ev.user_id] = {}
                rows = mine.get(key)
                if rows is None:
                    rows = mine[key] = []
                rows.append((ev.ts_ms, msg.timestamp_ms, columns))
    return history
