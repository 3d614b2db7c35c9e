"""A creation backfill's scan folds each event only into the targets that name it, as a fold over
every target and condition would, and leaves users without a counted event out of the history."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from stream.engine.backfill import fold_partition, plan_targets
from stream.ingest import Event, Limits, parse_event
from stream.outputs import Message
from stream.rules import Aggregate, event_matches, fold, measure, new_aggregate, parse_rule
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


def deduplicated(messages: list[Message]) -> Iterator[tuple[Message, Event]]:
    """The valid events, the first of each (user, event id) in log order."""
    seen: set[tuple[str, str]] = set()
    for msg in messages:
        try:
            ev = parse_event(msg.value, msg.timestamp_ms, Limits())
        except ValueError:
            continue
        if (ev.user_id, ev.event_id) not in seen:
            seen.add((ev.user_id, ev.event_id))
            yield msg, ev


def brute_force(messages: list[Message], segs: list[Segment]) -> dict[str, dict[str, list[Aggregate]]]:
    """Every event against every target and condition (deduplicated in log order), each
    condition's events folded in time order, ties in log order."""
    found = {}  # type: ignore[var-annotated]
    for msg, ev in deduplicated(messages):
        for seg in segs:
            if msg.timestamp_ms >= seg.handover_ms or not seg.counts(ev.ts_ms):
                continue
            for i, cond in enumerate(seg.conditions):
                if event_matches(cond, ev.name, ev.props):
                    found.setdefault(ev.user_id, {}).setdefault(seg.id, {}).setdefault(i, []).append(ev)
    aggs: dict[str, dict[str, list[Aggregate]]] = {}
    for uid, by_seg in found.items():
        for sid, by_cond in by_seg.items():
            seg = next(s for s in segs if s.id == sid)
            row = aggs.setdefault(uid, {}).setdefault(sid, [new_aggregate(c) for c in seg.conditions])
            for i, evs in by_cond.items():
                for ev in sorted(evs, key=lambda e: e.ts_ms):
                    fold(seg.conditions[i], row[i], ev.ts_ms, ev.props, ev.name)
    return aggs


def test_the_plan_reads_each_event_once_per_way_conditions_read_it() -> None:
    plan = plan_targets(targets())
    assert sorted(plan.by_name) == ["A", "B", "C"]
    # s0's A and s2's A read the same entry (no filter, no column); s4's A keeps its sum's column.
    assert plan.keys_of == {"s0": (0,), "s1": (1,), "s2": (0, 2), "s3": (3,), "s4": (4,)}
    assert [key for key, _, _ in plan.by_name["A"]] == [0, 4]
    assert [key for key, _, _ in plan.by_name["B"]] == [1, 3]
    assert [key for key, _, _ in plan.by_name["C"]] == [2, 3]
    # A live segment's horizon is part of the key: the same condition reads its own entries.
    live = make_segment("s5", "live", "live", parse_rule(RULES[0]), NOW - HOUR, NOW)
    assert plan_targets([*targets(), live]).keys_of["s5"] == (5,)


def mixed_targets() -> list[Segment]:
    """Handovers and kinds that differ: each segment counts its own part of the same entries."""
    out = []
    for i, r in enumerate(RULES):
        kind = "live" if i % 2 else "past_behavior"
        created = NOW - (3 + 5 * i) * 24 * HOUR
        out.append(make_segment(f"s{i}", f"seg {i}", kind, parse_rule(r), created, NOW - i * 24 * HOUR))
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("make", [targets, mixed_targets])
async def test_the_planned_scan_folds_what_a_fold_over_every_target_folds(seed: int, make: Any) -> None:
    messages, segs = events(seed, 400), make()
    history = await fold_partition(ListLog(messages), "events", 0, segs, Limits())
    expected = brute_force(messages, segs)
    assert {uid: {s.id: a for s in segs if (a := history.for_user(uid, s)) is not None}
            for uid in history.users()} == {uid: row for uid, row in expected.items() if row}
    assert history.events_read == sum(m.timestamp_ms < max(s.handover_ms for s in segs) for m in messages)
    for uid in [f"u{i}" for i in range(12)]:
        for seg in segs:
            assert history.for_user(uid, seg) == expected.get(uid, {}).get(seg.id), "None: nothing to merge"
        assert set(expected.get(uid, {})) <= history.segments_of(uid)


async def test_a_forgotten_users_events_before_the_forget_are_not_folded() -> None:
    messages, segs = events(0, 400), targets()
    forgotten = {"u3": NOW - 20 * 24 * HOUR, "u4": NOW + HOUR}
    history = await fold_partition(ListLog(messages), "events", 0, segs, Limits(), forgotten)
    expected = brute_force([m for m in messages if not _forgotten_before(m, forgotten)], segs)
    assert "u4" not in history.users()
    assert expected.get("u3"), "u3 has events after its forget in this log"
    for uid in [f"u{i}" for i in range(12)]:
        for seg in segs:
            assert history.for_user(uid, seg) == expected.get(uid, {}).get(seg.id)


def _forgotten_before(msg: Message, forgotten: dict[str, int]) -> bool:
    try:
        uid = json.loads(msg.value)["user_id"]
    except (ValueError, KeyError, TypeError):
        return False
    return uid in forgotten and msg.timestamp_ms < forgotten[uid]


@pytest.mark.parametrize("seed", range(3))
async def test_time_ordered_folding_measures_what_log_ordered_folding_does(seed: int) -> None:
    """for_user folds in time order (a heavy user's entries then append instead of inserting);
    what a condition measures, at any instant, is what folding in log order gives."""
    messages, segs = events(seed, 600), mixed_targets()
    history = await fold_partition(ListLog(messages), "events", 0, segs, Limits())
    logged = {}  # type: ignore[var-annotated]
    stop = max(s.handover_ms for s in segs)
    for msg, ev in deduplicated([m for m in messages if m.timestamp_ms < stop]):  # as the scan reads them
        for seg in segs:
            if msg.timestamp_ms < seg.handover_ms and seg.counts(ev.ts_ms):
                for i, cond in enumerate(seg.conditions):
                    if event_matches(cond, ev.name, ev.props):
                        row = logged.setdefault((ev.user_id, seg.id), [new_aggregate(c) for c in seg.conditions])
                        fold(cond, row[i], ev.ts_ms, ev.props, ev.name)
    assert logged
    for (uid, sid), row in logged.items():
        seg = next(s for s in segs if s.id == sid)
        mine = history.for_user(uid, seg)
        assert mine is not None
        for now in range(NOW - 45 * 24 * HOUR, NOW + 2 * 24 * HOUR, 7 * HOUR):
            for cond, a, b in zip(seg.conditions, mine, row, strict=True):
                assert measure(cond, a, now).count == measure(cond, b, now).count
                assert measure(cond, a, now).values == measure(cond, b, now).values
