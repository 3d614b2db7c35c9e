"""Rules v2 through the engine with a manual clock: time-driven entries and exits, and in_segment
following its inner segment in the same commit, with no Redis and no Kafka."""

from __future__ import annotations

import json

import pytest

from stream.state.memory import MemoryEngineStore
from stream.testing import EngineHarness
from tests.unit.engine.conftest import NOW, Define

pytestmark = pytest.mark.unit
MIN, HOUR = 60_000, 3_600_000

CART = {"all": [
    {"event": {"name": "AddToCart", "within_days": 1, "before": {"hours": 1}}},
    {"not": {"sequence": {"steps": [{"name": "AddToCart"}, {"name": "Charged"}], "max_span": {"hours": 1}}}}]}


def ev(uid: str, eid: str, name: str, ts: int) -> dict[str, object]:
    return {"event_id": eid, "user_id": uid, "name": name, "ts": ts, "props": {}}


def changes(harness: EngineHarness) -> list[tuple[str, str, str]]:
    return [(c["segment_id"], c["user_id"], c["change"]) for c in (json.loads(v) for _, v in harness.outputs.changes)]


async def test_an_abandoned_cart_enters_on_time_and_its_outer_segment_with_it(
        harness: EngineHarness, store: MemoryEngineStore, define: Define) -> None:
    define(CART, {"in_segment": "s0"})  # s1 uses s0
    await harness.send_events(ev("a", "e1", "AddToCart", NOW - 10 * MIN), ev("b", "e2", "AddToCart", NOW - 10 * MIN),
                              ev("b", "e3", "Charged", NOW - 5 * MIN))
    assert store.members["s0"] == set() and store.members["s1"] == set()
    harness.clock.now = (NOW + 50 * MIN - 1) / 1000
    await harness.tick()
    assert store.members["s0"] == set()
    harness.clock.now = (NOW + 50 * MIN) / 1000  # both adds are an hour old; b bought within the hour
    assert await harness.tick() == 2
    assert store.members["s0"] == {"a"} and store.members["s1"] == {"a"}
    assert changes(harness) == [("s0", "a", "entered"), ("s1", "a", "entered")]
    harness.clock.now = (NOW - 10 * MIN + 24 * HOUR) / 1000  # a day after the add: out of both
    await harness.tick()
    assert store.members["s0"] == set() and store.members["s1"] == set()
    assert changes(harness)[2:] == [("s0", "a", "exited"), ("s1", "a", "exited")]


async def test_a_sequence_whose_first_step_expires_moves_the_user(
        harness: EngineHarness, store: MemoryEngineStore, define: Define) -> None:
    define({"sequence": {"steps": [{"name": "A"}, {"name": "B"}], "within": {"minutes": 30}}})
    await harness.send_events(ev("a", "e1", "A", NOW - 20 * MIN), ev("a", "e2", "B", NOW - 5 * MIN))
    assert store.members["s0"] == {"a"}
    harness.clock.now = (NOW + 10 * MIN) / 1000  # A left the 30-minute window
    await harness.tick()
    assert store.members["s0"] == set()


async def test_a_touch_after_a_due_instant_applies_the_change_before_the_timer_does(
        harness: EngineHarness, store: MemoryEngineStore, define: Define) -> None:
    """An event (of any name) arriving between a window's due instant and the timer round
    that would apply it used to recompute the next due from now, so the change was lost:
    the demo's hour-long rounds missed abandoned-cart entries and exits this way."""
    define(CART, {"event": {"name": "Viewed"}})
    await harness.send_events(ev("a", "e1", "AddToCart", NOW - 10 * MIN))
    assert store.members["s0"] == set()
    harness.clock.now = (NOW + 55 * MIN) / 1000  # the add is an hour old: due, no timer round yet
    await harness.send_events(ev("a", "e2", "Viewed", NOW + 54 * MIN))
    assert store.members["s0"] == {"a"} and store.members["s1"] == {"a"}
    harness.clock.now = (NOW - 10 * MIN + 24 * HOUR + MIN) / 1000  # a day after the add: due to exit
    await harness.send_events(ev("a", "e3", "Unrelated", NOW + 23 * HOUR))
    assert store.members["s0"] == set()
    assert await harness.tick() == 0  # nothing left for the timer: the touch applied it
    assert [c for c in changes(harness) if c[0] == "s0"] == [("s0", "a", "entered"), ("s0", "a", "exited")]


async def test_a_timer_score_behind_the_hash_is_rewritten_not_picked_on_every_tick(
        harness: EngineHarness, store: MemoryEngineStore, define: Define) -> None:
    """A job's touch (no partition: the timer set is not its to write) applies a due change and
    moves the hash's `n` past the timer's score. The next round finds nothing to replay; the
    `zq` mark the job left makes it rewrite the score, or the user would be due on every tick."""
    define(CART)
    await harness.send_events(ev("a", "e1", "AddToCart", NOW - 10 * MIN))
    harness.clock.now = (NOW + 55 * MIN) / 1000  # due (an hour after the add), no timer round yet
    await harness.engine.run_users(["a"], None, lambda user, idx: [])
    assert store.members["s0"] == {"a"}
    assert await harness.tick() == 1  # the stale score: picked once, nothing to apply
    assert await harness.tick() == 0
    assert store.members["s0"] == {"a"}
    assert changes(harness) == [("s0", "a", "entered")]


async def test_an_exit_and_entry_of_one_timer_round_are_counted_once_not_again_on_the_next_touch(
        harness: EngineHarness, store: MemoryEngineStore, define: Define) -> None:
    """One round replays an exit and an entry of one segment; the next touch finds both in the
    stale outbox. The member set cannot tell whether such a pair was applied, so it is not
    replayed: it used to be, row by row, and counted again in the trend on every later touch."""
    define({"event": {"name": "AddToCart", "within_days": 1, "before": {"hours": 1}}})
    await harness.send_events(ev("a", "e1", "AddToCart", NOW))
    harness.clock.now = (NOW + 23 * HOUR + 30 * MIN) / 1000
    await harness.send_events(ev("a", "e2", "AddToCart", NOW + 23 * HOUR + 30 * MIN))
    harness.clock.now = (NOW + 25 * HOUR) / 1000  # out at +24 h (e1 left), back at +24.5 h (e2 in range)
    await harness.tick()
    entries = [c for c in changes(harness) if c[0] == "s0"]
    assert entries == [("s0", "a", "entered"), ("s0", "a", "exited"), ("s0", "a", "entered")]
    await harness.send_events(ev("a", "e3", "Viewed", NOW + 25 * HOUR))
    await harness.send_events(ev("a", "e4", "Viewed", NOW + 25 * HOUR))
    counts = store.trend["s0"]
    assert (sum(v for k, v in counts.items() if k.startswith("e:")),
            sum(v for k, v in counts.items() if k.startswith("x:"))) == (2, 1)
    assert [c for c in changes(harness) if c[0] == "s0"] == entries  # nothing sent again
    assert store.members["s0"] == {"a"}
