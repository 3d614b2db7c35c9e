"""A creation backfill's scan folds each event only into the targets that name it, as a fold over
every target and condition would, and leaves users without a counted event out of the history."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from stream.engine.backfill import fold_partition, plan_targets
from stream.ingest import Limits, parse_event
from stream.outputs import Message
from stream.rules import Aggregate, event_matches, fold, new_aggregate, parse_rule
from stream.segments import Segment, make_segment

pytestmark = pytest.mark.unit

NOW = 1_800_000_000_000
HOUR = 3_600_000
NAMES = ["A", "B", "C", "D"]
RULES: list[dict[str, Any]] = [
    {"event": {"name": "A", "count": {"op": "gte", "value": 1}, "within_days": 30}},
    {"event": {"name": "B", "where": [{"prop": "k", "op": "eq", "value": "x"}],
               "count": {"op": "gte", "value": 2}, "within_days": 30}},
    {"all": [{"event": {"name": "A", "count": {"op": "gte", "value": 1}, "within_days": 30}},
             {"not": {"event": {"name": "C", "count": {"op": "gte", "value": 1}, "within_days": 30}}}]},
    {"sequence": {"steps": [{"name": "B"}, {"name": "C"}], "max_span": {"hours": 1}}},
    {"event": {"name": "A", "sum": {"prop": "v", "op": "gte", "value": 10}, "within_days": 30}},
]


class ListLog:
    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages

    async def read(self, topic: str, partition: int, start: int | None = None, end: int | None = None,
                   start_ms: int | None = None, stop_at_append_ms: int | None = None) -> AsyncIterator[list[Message]]:
        yield [m for m in self.messages if stop_at_append_ms is None or m.timestamp_ms < stop_at_append_ms]


def targets() -> list[Segment]:
    return [make_segment(f"s{i}", f"seg {i}", "past_behavior", parse_rule(r), NOW, NOW) for i, r in enumerate(RULES)]


def events(seed: int, n: int) -> list[Message]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ts = NOW - rnd.randrange(40 * 24) * HOUR
        value = {"event_id": f"e{rnd.randrange(n)}", "user_id": f"u{rnd.randrange(12)}", "name": rnd.choice(NAMES),
                 "ts": ts, "props": {"k": rnd.choice(["x", "y"]), "v": rnd.randrange(8)}}
        out.append(Message("events", 0, i, None, json.dumps(value).encode(), ts + 1000))
    out.append(Message("events", 0, n, None, b"not json", NOW - HOUR))
    return out


def brute_force(messages: list[Message], segs: list[Segment]) -> dict[str, dict[str, list[Aggregate]]]:
    """Every event against every target and condition, as the scan did before it was planned."""
    limits, seen, aggs = Limits(), set(), {}  # type: ignore[var-annotated]
    for msg in messages:
        try:
            ev = parse_event(msg.value, msg.timestamp_ms, limits)
        except ValueError:
            continue
        if (ev.user_id, ev.event_id) in seen:
            continue
        seen.add((ev.user_id, ev.event_id))
        for seg in segs:
            if msg.timestamp_ms >= seg.handover_ms or not seg.counts(ev.ts_ms):
                continue
            for i, cond in enumerate(seg.conditions):
                if event_matches(cond, ev.name, ev.props):
                    row = aggs.setdefault(ev.user_id, {}).setdefault(seg.id, [new_aggregate(c) for c in seg.conditions])
                    fold(cond, row[i], ev.ts_ms, ev.props, ev.name)
    return aggs


def test_the_plan_names_each_condition_under_its_events() -> None:
    plan = plan_targets(targets())
    assert sorted(plan) == ["A", "B", "C"]
    assert [(s.id, where) for s, where in plan["A"]] == [("s0", (0,)), ("s2", (0,)), ("s4", (0,))]
    assert [(s.id, where) for s, where in plan["C"]] == [("s2", (1,)), ("s3", (0,))]


@pytest.mark.parametrize("seed", range(5))
async def test_the_planned_scan_folds_what_a_fold_over_every_target_folds(seed: int) -> None:
    messages, segs = events(seed, 400), targets()
    history = await fold_partition(ListLog(messages), "events", 0, segs, Limits())
    expected = brute_force(messages, segs)
    assert history.aggs == expected
    assert history.events_read == sum(m.timestamp_ms < NOW for m in messages)  # before the handover
    for uid in [f"u{i}" for i in range(12)]:
        for seg in segs:
            assert history.for_user(uid, seg) == expected.get(uid, {}).get(seg.id), "None: nothing to merge"
