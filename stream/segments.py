"""Segment definitions as the workers see them, and the index that keeps events cheap.

A definition is stored once (Redis) and compiled here: the parsed rule, its
event conditions in a fixed order (aggregates are stored by that order), and
which event names can affect which segment, so an event re-evaluates only the
segments it can change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream.rules import (
    Compiled,
    EventCond,
    Node,
    Stateful,
    compile_rule,
    dependency_order,
    parse_rule,
    referenced_segments,
    rule_to_json,
    stateful_conditions,
    verdict_without_events,
)

LIVE, PAST_BEHAVIOR, CUSTOM_LIST = "live", "past_behavior", "custom_list"

# Events appended to Kafka from this long after creation on are applied by the
# live agents; earlier ones by the creation backfill. The grace lets every
# worker learn of the segment before its first live event (see docs/STATE.md).
HANDOVER_GRACE_MS = 2000


@dataclass(frozen=True, slots=True)
class Segment:
    id: str
    name: str
    kind: str
    rule: Node | None
    created_at_ms: int
    handover_ms: int
    hidden: bool = False
    conditions: tuple[Stateful, ...] = field(default=(), compare=False)
    # Only conditions with `within` or `before` move membership with time; others never need a timer.
    windowed: bool = field(init=False, compare=False, repr=False)
    # The rule compiled once (None for a custom list): what the hot path evaluates.
    decide: Compiled | None = field(init=False, compare=False, repr=False)
    # What the rule decides for any user none of whose events it counts (None: their profile,
    # reachability or memberships decide): a creation backfill visits only users with history
    # for a segment whose verdict is False.
    without_events: bool | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "windowed", any(c.bounds.moving for c in self.conditions))
        object.__setattr__(self, "decide", compile_rule(self.rule) if self.rule is not None else None)
        object.__setattr__(self, "without_events",
                           verdict_without_events(self.rule) if self.rule is not None else None)

    @property
    def counts_from_ms(self) -> int | None:
        """Live segments ignore history: only events stamped at or after creation count."""
        return self.created_at_ms if self.kind == LIVE else None

    def counts(self, ts_ms: int) -> bool:
        since = self.counts_from_ms
        return since is None or ts_ms >= since

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "rule": rule_to_json(self.rule) if self.rule is not None else None,
            "created_at_ms": self.created_at_ms,
            "handover_ms": self.handover_ms,
            "hidden": self.hidden,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


def make_segment(
    segment_id: str,
    name: str,
    kind: str,
    rule: Node | None,
    created_at_ms: int,
    handover_ms: int | None = None,
    hidden: bool = False,
) -> Segment:
    return Segment(
        id=segment_id,
        name=name,
        kind=kind,
        rule=rule,
        created_at_ms=created_at_ms,
        handover_ms=created_at_ms + HANDOVER_GRACE_MS if handover_ms is None else handover_ms,
        hidden=hidden,
        conditions=stateful_conditions(rule) if rule is not None else (),
    )


def segment_from_json(raw: str | bytes) -> Segment:
    obj: dict[str, Any] = json.loads(raw)
    rule = parse_rule(obj["rule"]) if obj.get("rule") is not None else None
    return make_segment(
        obj["id"],
        obj["name"],
        obj["kind"],
        rule,
        int(obj["created_at_ms"]),
        int(obj["handover_ms"]),
        bool(obj.get("hidden", False)),
    )


@dataclass(frozen=True)
class SegmentIndex:
    """An immutable snapshot: a batch is evaluated against one consistent set of segments.

    It also carries the forgotten users (user id -> the log-append instant of the
    forget): input appended before that instant is never applied again."""

    segments: Mapping[str, Segment]
    by_event: Mapping[str, frozenset[str]]
    ruled: frozenset[str]
    version: int = 0
    forgotten: Mapping[str, int] = field(default_factory=dict)
    # in_segment: who uses whom, and the order that decides inner segments before outer ones.
    uses: Mapping[str, frozenset[str]] = field(default_factory=dict)
    used_by: Mapping[str, frozenset[str]] = field(default_factory=dict)
    rank: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, segments: Iterable[Segment], version: int = 0,
              forgotten: Mapping[str, int] | None = None) -> SegmentIndex:
        by_id = {s.id: s for s in segments}
        by_event: dict[str, set[str]] = {}
        uses: dict[str, frozenset[str]] = {}
        used_by: dict[str, set[str]] = {}
        for seg in by_id.values():
            for name in event_names(seg.conditions):
                by_event.setdefault(name, set()).add(seg.id)
            uses[seg.id] = frozenset(referenced_segments(seg.rule))
            for inner in uses[seg.id]:
                used_by.setdefault(inner, set()).add(seg.id)
        return cls(
            segments=by_id,
            by_event={name: frozenset(ids) for name, ids in by_event.items()},
            ruled=frozenset(s.id for s in by_id.values() if s.rule is not None),
            version=version,
            forgotten=dict(forgotten or {}),
            uses=uses,
            used_by={sid: frozenset(outer) for sid, outer in used_by.items()},
            rank=dependency_order(uses),
        )

    def for_event(self, name: str) -> frozenset[str]:
        return self.by_event.get(name, frozenset())

    def in_order(self, sids: Iterable[str]) -> list[str]:
        """Inner segments before the segments that use them."""
        rank = self.rank
        return sorted(sids, key=lambda sid: (rank.get(sid, -1), sid))


def event_names(conditions: Iterable[Stateful]) -> set[str]:
    """The event names that can change these conditions: a sequence's every step."""
    names: set[str] = set()
    for cond in conditions:
        if isinstance(cond, EventCond):
            names.add(cond.name)
        else:
            names.update(step.name for step in cond.steps)
    return names


EMPTY_INDEX = SegmentIndex.build([])
