"""Sealed blocks change where pending entries live, never what a condition sees.

Differential: the same events, late ones and ticks go into an aggregate
sealed in blocks of 1 to 3 entries (stored and read back lazily, as the user
hash does, at random points) and into one that never seals. At every tick
their measures, next change instants and pruned contents must agree, and the
stored text must name exactly the blocks written. Then the heavy case the
blocks are for: 100,000 entries in a 30-day sum cost a touch O(block).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream.rules.aggregate as aggregate_module
from stream.rules import (
    Aggregate,
    aggregates_from_json,
    aggregates_to_json,
    fold,
    measure,
    new_aggregate,
    parse_rule,
    prune,
    stateful_conditions,
)
from stream.rules.aggregate import next_window_change, sealable
from stream.rules.blocks import MissingBlock
from stream.rules.model import EventCond
from stream.rules.storage import _Memo, block_ids, changed_blocks
from tests.unit.rules.test_properties import event_conds

pytestmark = pytest.mark.unit
T0, MIN, DAY = 1_800_000_000_000, 60_000, 86_400_000
SUM_30_DAYS = stateful_conditions(parse_rule(
    {"event": {"name": "Charged", "sum": {"prop": "v", "op": "gte", "value": 1}, "within_days": 30}}))[0]
assert isinstance(SUM_30_DAYS, EventCond)


class Stored:
    """An aggregate's field and its block fields, as `stream.state.userhash` keeps them."""

    def __init__(self) -> None:
        self.text = ""
        self.blocks: dict[tuple[int, int], str] = {}

    def write(self, agg: Aggregate) -> None:
        self.text = aggregates_to_json([agg])
        put, gone = changed_blocks([agg])
        for key in gone:
            self.blocks.pop(key, None)
        self.blocks.update(((ci, bid), raw) for ci, bid, raw in put)
        assert set(self.blocks) == set(block_ids(self.text))

    def read(self, cond: EventCond) -> Aggregate:
        return aggregates_from_json(self.text, [cond], lambda ci, bid: self.blocks.get((ci, bid)))[0]


def seen(cond: EventCond, agg: Aggregate, now: int) -> tuple[object, ...]:
    """A distinct count is exact up to its threshold + 1 (settled figures stop collecting keys
    there, a block's summary too): past it every comparison is decided."""
    m = measure(cond, agg, now)
    values = tuple(min(v, int(t.value) + 1) if t.kind == "distinct" and v is not None
                   else round(v, 9) if isinstance(v, float) else v for t, v in zip(cond.tests, m.values, strict=True))
    return m.count, values, next_window_change(cond, agg, now)


@settings(max_examples=300, deadline=None)
@given(cond=event_conds(moving=True), size=st.integers(1, 3), data=st.data())
def test_blocked_and_unblocked_aggregates_see_the_same(cond: EventCond, size: int, data: st.DataObject) -> None:
    plain = new_aggregate(cond)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(aggregate_module, "BLOCK_ENTRIES", size)
        mp.setattr(aggregate_module, "TAIL_ENTRIES", data.draw(st.integers(0, 2), label="tail slack"))
        blocked, stored = new_aggregate(cond), Stored()
        now = T0
        for _ in range(data.draw(st.integers(1, 40), label="steps")):
            if data.draw(st.booleans(), label="event or tick"):
                ts = now - data.draw(st.integers(-2, 40), label="minutes late") * MIN
                props = {t.prop: data.draw(st.sampled_from([1, 2.5, -3, 7, "x", "y", None]), label="value")
                         for t in cond.tests}
                with pytest.MonkeyPatch.context() as never:
                    never.setattr(aggregate_module, "BLOCK_ENTRIES", 10**9)
                    fold(cond, plain, ts, props, cond.name)
                fold(cond, blocked, ts, props, cond.name)
            else:
                now += data.draw(st.integers(0, 30), label="minutes on") * MIN
                prune(cond, plain, now)
                prune(cond, blocked, now)
                assert seen(cond, blocked, now) == seen(cond, plain, now)
            if data.draw(st.integers(0, 3), label="store") == 0:
                stored.write(blocked)
                blocked = stored.read(cond)
        assert seen(cond, blocked, now) == seen(cond, plain, now)
        if sealable(cond):
            assert plain.blocks.items == []


def test_a_block_not_read_is_an_error_not_an_empty_block() -> None:
    cond = SUM_30_DAYS
    agg = new_aggregate(cond)
    for i in range(2048):
        fold(cond, agg, T0 + i * MIN, {"v": 1})
    assert len(agg.blocks.items) == 3 and len(agg.entries) == 512
    lone = aggregates_from_json(aggregates_to_json([agg]), [cond])[0]  # block fields not read
    with pytest.raises(MissingBlock):
        measure(cond, lone, T0 + 30 * DAY + 10 * MIN)  # the window's edge cuts the oldest block


def test_a_heavy_touch_decodes_and_writes_blocks_not_the_window() -> None:
    """100,000 entries in a 30-day sum: a touch decodes the directory, the tail and the block the
    window's edge cuts, and writes the directory, the tail and new or dropped blocks (the bench
    measures what that costs on the engine's path: heavy_user_cost_ratio)."""
    cond = SUM_30_DAYS
    agg, stored = new_aggregate(cond), Stored()
    step = 28 * DAY // 100_000
    for i in range(100_000):
        fold(cond, agg, T0 + i * step, {"v": 1 + i % 7})
    stored.write(agg)
    now = T0 + 30 * DAY
    for i in range(50):
        user = stored.read(cond)
        fold(cond, user, now + i, {"v": 2})
        prune(cond, user, now + i)
        assert measure(cond, user, now + i).count > 0
        next_window_change(cond, user, now + i)
        stored.write(user)
        decoded = [b.id for b in user.blocks.items if b.entries is not None and not b.dirty]
        assert len(decoded) <= 1, decoded  # only the block the window's edge cuts
        assert len(stored.text) < 40_000  # the directory and the tail, not 800 KB
    assert len(stored.blocks) > 150


def test_a_directory_read_again_is_decoded_once_and_never_shared_mutably() -> None:
    """A worker's user cache keeps a heavy user's hash as text, so each touch read the ~195-row
    directory and the cut block again; storage keeps the last ones decoded. What a touch may
    change (its Block objects: dirty, dropped, entries read) must be its own."""
    cond = SUM_30_DAYS
    agg, stored = new_aggregate(cond), Stored()
    for i in range(2048):
        fold(cond, agg, T0 + i * MIN, {"v": 1 + i % 3})
    stored.write(agg)
    now = T0 + 30 * DAY + 10 * MIN
    first, second = stored.read(cond), stored.read(cond)
    assert [b.summary for b in first.blocks.items] == [b.summary for b in second.blocks.items]
    assert all(a is not b for a, b in zip(first.blocks.items, second.blocks.items, strict=True))
    expected = measure(cond, first, now)
    first.blocks.items[0].dirty = True
    first.blocks.drop(lambda b: b.id != first.blocks.items[-1].id)
    assert measure(cond, second, now) == expected
    assert not any(b.dirty for b in stored.read(cond).blocks.items)
    assert len(stored.read(cond).blocks.items) == 3
    fold(cond, second, now, {"v": 5})  # a new text: its own decoding, the new entry counted
    prune(cond, second, now)
    stored.write(second)
    assert measure(cond, stored.read(cond), now).values[0] == expected.values[0] + 5


def test_the_memo_keeps_the_most_recently_used() -> None:
    memo: _Memo[str, int] = _Memo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1  # "b" is now the least recently used
    memo.put("c", 3)
    assert (memo.get("a"), memo.get("b"), memo.get("c")) == (1, None, 3)
