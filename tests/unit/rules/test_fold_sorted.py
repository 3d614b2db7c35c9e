"""`fold_sorted` (a creation backfill's bulk fold) leaves what folding each entry in turn leaves."""

from __future__ import annotations

import random

import pytest

from stream.rules import Aggregate, fold_entry, fold_sorted, new_aggregate, parse_rule, stateful_conditions
from stream.rules.aggregate import _columns, _step_mask
from stream.rules.model import EventCond

pytestmark = pytest.mark.unit
NOW = 1_800_000_000_000
DAY = 86_400_000
RULES = [
    {"event": {"name": "A", "within_days": 30}},  # a windowed count: never sealed
    {"event": {"name": "A", "within_days": 30, "sum": {"prop": "v", "op": "gte", "value": 1}}},  # sealed
    {"event": {"name": "A", "within_days": 60, "before": {"days": 2}, "max": {"prop": "v", "op": "gt", "value": 3}}},
    {"event": {"name": "A", "within_days": 30, "from": "2027-01-01T00:00:00Z", "to": "2027-01-10T00:00:00Z",
               "distinct": {"prop": "v", "op": "gte", "value": 2}}},
    {"event": {"name": "A", "sum": {"prop": "v", "op": "gte", "value": 1}}},  # settled as folded
    {"sequence": {"steps": [{"name": "A"}, {"name": "A"}], "max_span": {"hours": 1}, "within_days": 30}},
]


def state(agg: Aggregate) -> tuple[object, ...]:
    blocks = [(b.id, b.first, b.last, b.summary, b.entries, b.dirty) for b in agg.blocks.items]
    return agg.count, agg.total, agg.entries, agg.extra, blocks


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("n", [3, 575, 576, 2000])
def test_bulk_fold_equals_folding_one_by_one(rule: dict[str, object], n: int) -> None:
    cond = stateful_conditions(parse_rule(rule))[0]
    rnd = random.Random(n)
    props = [{"v": rnd.randrange(6)} for _ in range(n)]
    instants = sorted(NOW - rnd.randrange(90 * DAY) for _ in range(n))
    rows = [(ts, _columns(cond, p) if isinstance(cond, EventCond) else (_step_mask(cond, "A", p),))
            for ts, p in zip(instants, props, strict=True)]
    one, bulk = new_aggregate(cond), new_aggregate(cond)
    for ts, columns in rows:
        fold_entry(cond, one, ts, columns)
    fold_sorted(cond, bulk, rows)
    assert state(bulk) == state(one)
    if n == 2000 and "sum" in rule.get("event", {}) and "within_days" in rule["event"]:  # type: ignore[operator]
        assert bulk.blocks.items, "sealed: the case the bulk path must get right"
