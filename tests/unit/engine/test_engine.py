"""The engine end to end over the in-memory store: membership, dedupe, resume points, forgets."""

from __future__ import annotations

import json

import pytest

from stream.engine.resume import Gap
from stream.state.memory import MemoryEngineStore
from stream.testing import EngineHarness
from tests.unit.engine.conftest import DAY, NOW, Define

pytestmark = pytest.mark.unit


def ev(uid: str, eid: str, name: str = "Charged", ts: int = NOW - 1000, **props: object) -> dict[str, object]:
    return {"event_id": eid, "user_id": uid, "name": name, "ts": ts, "props": props}


async def test_events_move_membership_and_a_repeated_event_id_counts_once(
        harness: EngineHarness, store: MemoryEngineStore, define: Define) -> None:
    define({"event": {"name": "Charged", "count": {"op": "gte", "value": 2}}})
    await harness.send_events(ev("a", "e1"))
    assert store.members["s0"] == set()
    await harness.send_events(ev("a", "e1"))  # the same event_id again (a producer retry)
    assert store.members["s0"] == set()
    await harness.send_events(ev("a", "e2"))
    assert store.members["s0"] == {"a"}
    changes = [json.loads(v) for _, v in harness.outputs.changes]
    assert [(c["user_id"], c["change"]) for c in changes] == [("a", "entered")]
    assert store.trend["s0"] == {"e:2027-01-15": 1}


async def test_a_redelivered_message_is_skipped_by_its_offset(harness: EngineHarness, store: MemoryEngineStore,
                                                              define: Define) -> None:
    define({"event": {"name": "Charged", "count": {"op": "gte", "value": 2}}})
    first = harness.message("events", ev("a", "e1"))
    await harness.engine.process([first])
    harness.engine.resume.revoke([0])  # as after a rebalance: the position comes from the store again
    await harness.engine.resume.assign([0])
    await harness.engine.process([first])  # Faust redelivers it
    user = store.users["a"]
    assert user["qe"] == "0"
    assert store.members["s0"] == set(), "one Charged, counted once"


async def test_profiles_are_last_write_wins_by_ts(harness: EngineHarness, store: MemoryEngineStore,
                                                  define: Define) -> None:
    define({"profile": {"prop": "city", "op": "eq", "value": "Pune"}})
    await harness.send_profiles({"user_id": "a", "ts": NOW - 10, "set": {"city": "Pune"}})
    await harness.send_profiles({"user_id": "a", "ts": NOW - 20, "set": {"city": "Goa"}})  # older: ignored
    assert store.members["s0"] == {"a"}
    await harness.send_profiles({"user_id": "a", "ts": NOW - 5, "set": {"city": "Goa"}})
    assert store.members["s0"] == set()


async def test_invalid_input_goes_to_the_dead_letters_with_its_reason(harness: EngineHarness,
                                                                     define: Define) -> None:
    define({"event": {"name": "Charged"}})
    await harness.send_events(ev("x" * 300, "e1"), {"user_id": "a"}, ev("a", "e2", ts=NOW + 3_600_000))
    assert [d.reason for d in harness.outputs.dead_letters] == ["too_long", "missing_field", "future_time"]


async def test_a_window_exit_happens_on_the_timer_with_no_new_event(harness: EngineHarness,
                                                                   store: MemoryEngineStore, define: Define) -> None:
    define({"event": {"name": "Viewed", "within_days": 1}})
    await harness.send_events(ev("a", "e1", "Viewed", ts=NOW - DAY + 60_000))
    assert store.members["s0"] == {"a"}
    assert store.due[0] == {"a": NOW + 60_000}
    harness.clock.now = (NOW + 30_000) / 1000
    assert await harness.tick() == 0
    harness.clock.now = (NOW + 61_000) / 1000
    assert await harness.tick() == 1
    assert store.members["s0"] == set()
    exits = [json.loads(v) for _, v in harness.outputs.changes if json.loads(v)["change"] == "exited"]
    assert exits and exits[0]["ts"].startswith("2027-01-15T08:01:00"), "dated when the window moved"


async def test_resume_points_skip_applied_input_and_replay_gaps(harness: EngineHarness, store: MemoryEngineStore,
                                                                define: Define) -> None:
    define({"event": {"name": "Charged"}})
    msgs = [harness.message("events", ev(f"u{i}", f"e{i}")) for i in range(8)]
    await harness.engine.process(msgs[:3])
    offsets, token = await store.read_resume(0)
    assert offsets == {"events": 3} and token is not None
    # Redis restarts and comes back older: its resume point and state are those after offset 0.
    store.resume[0] = ({"events": 1}, "older-token")
    store.instance_id = "restarted"
    assert harness.engine.restarts == 0
    await harness.engine.process(msgs[3:4])
    assert harness.engine.restarts == 1, "a job part running across it must run again"
    # Reconciled before anything was applied: the stream waits behind the gap, the log replays it.
    assert harness.engine.pending_gaps() == [Gap("events", 0, 1, 4)]
    assert "u3" not in store.users, "not applied ahead of the gap"
    await harness.engine.process(msgs[4:5])
    assert harness.engine.pending_gaps() == [Gap("events", 0, 1, 5)], "the gap grows with the stream"
    assert store.resume[0][0] == {"events": 1}, "no move past a gap"
    await harness.engine.process(msgs[1:5], replay=True)
    assert await harness.engine.gap_replayed(Gap("events", 0, 1, 5))
    assert store.resume[0][0] == {"events": 5}
    # A new owner whose consumer starts past the resume point replays the hole first.
    await harness.engine.process(msgs[6:7])
    assert harness.engine.pending_gaps() == [Gap("events", 0, 5, 7)]
    await harness.engine.process(msgs[5:7], replay=True)
    assert await harness.engine.gap_replayed(Gap("events", 0, 5, 7))
    await harness.engine.process(msgs[7:8])
    assert store.members["s0"] == {f"u{i}" for i in range(8)}
    assert store.resume[0][0] == {"events": 8}


async def test_a_failed_compare_and_set_opens_a_gap(harness: EngineHarness, store: MemoryEngineStore,
                                                    define: Define) -> None:
    """Redis moved the resume point behind this worker's back without a restart being seen."""
    define({"event": {"name": "Charged"}})
    msgs = [harness.message("events", ev(f"u{i}", f"e{i}")) for i in range(4)]
    await harness.engine.process(msgs[:2])
    store.resume[0] = ({"events": 1}, "someone-else")
    await harness.engine.process(msgs[2:3])
    assert harness.engine.pending_gaps() == [Gap("events", 0, 1, 3)]


async def test_a_retried_batch_is_admitted_again(harness: EngineHarness, store: MemoryEngineStore,
                                                 define: Define) -> None:
    define({"event": {"name": "Charged"}})
    msg = harness.message("events", ev("a", "e1"))

    async def broken(*_: object) -> None:
        raise ConnectionError("redis went away")

    real = store.wait_durable
    store.wait_durable = broken  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await harness.engine.process([msg])
    store.wait_durable = real  # type: ignore[method-assign]
    await harness.engine.process([msg])
    assert store.resume[0][0] == {"events": 1}
    assert store.members["s0"] == {"a"}


async def test_input_appended_before_a_forget_is_never_applied(harness: EngineHarness, store: MemoryEngineStore,
                                                               define: Define) -> None:
    define({"event": {"name": "Charged"}}, forgotten={"gone": NOW})
    harness.clock.now = (NOW - 5000) / 1000
    old = harness.message("events", ev("gone", "e1"))
    harness.clock.now = (NOW + 5000) / 1000
    new = harness.message("events", ev("gone", "e2", ts=NOW + 1000))
    await harness.engine.process([old])
    assert "gone" not in store.users
    await harness.engine.process([new])
    assert store.members["s0"] == {"gone"}, "a later event starts a new user"


async def test_every_committed_user_is_in_the_changelog(harness: EngineHarness, define: Define) -> None:
    define({"event": {"name": "Charged"}})
    await harness.send_events(ev("a", "e1"), ev("b", "e2"))
    logged = {uid.decode(): json.loads(value or b"null") for _, uid, value in harness.outputs.changelog}
    assert set(logged) == {"a", "b"}
    assert logged["a"]["m"] == '["s0"]' and "o" not in logged["a"]
    assert harness.outputs.trend and json.loads(harness.outputs.trend[-1][1]) == {"e": 2, "x": 0}


async def test_conflicting_writes_are_retried_from_a_fresh_read(harness: EngineHarness, store: MemoryEngineStore,
                                                                define: Define) -> None:
    define({"event": {"name": "Charged", "count": {"op": "gte", "value": 2}}})
    await harness.send_events(ev("a", "e1"))
    store.users["a"]["v"] = str(int(store.users["a"]["v"]) + 5)  # someone else wrote the user
    await harness.send_events(ev("a", "e2"))
    assert store.members["s0"] == {"a"}
