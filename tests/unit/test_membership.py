"""The pure per-user transitions of stream.membership, and the user hash they are stored in."""

from __future__ import annotations

import pytest

from stream.ingest import Event, ProfileUpdate
from stream.membership import (
    ENTER,
    EXIT,
    MASK,
    UserState,
    apply_event,
    apply_profile,
    forget_segments,
    merge_backfill,
    next_due_ms,
    reevaluate,
    update_due,
)
from stream.rules import new_aggregate, parse_rule
from stream.segments import SegmentIndex, make_segment
from stream.state.userhash import apply_commit, changed_fields, load_user

pytestmark = pytest.mark.unit
NOW = 1_800_000_000_000
DAY = 86_400_000


def index(*rules: dict[str, object], kind: str = "past_behavior", created: int = NOW - DAY,
          handover: int | None = None) -> SegmentIndex:
    return SegmentIndex.build(make_segment(f"s{i}", "x", kind, parse_rule(r), created, handover)
                              for i, r in enumerate(rules))


def test_events_before_the_handover_are_left_to_the_backfill() -> None:
    idx = index({"event": {"name": "Charged"}}, handover=NOW)
    user = UserState("a")
    assert apply_event(user, Event("e1", "a", "Charged", NOW - 10), idx, appended_ms=NOW - 1) == set()
    assert apply_event(user, Event("e2", "a", "Charged", NOW - 10), idx, appended_ms=NOW) == {"s0"}
    assert user.dirty_aggs == {"s0"}


def test_live_segments_ignore_events_stamped_before_creation() -> None:
    idx = index({"event": {"name": "Charged"}}, kind="live", created=NOW, handover=NOW)
    user = UserState("a")
    assert apply_event(user, Event("e1", "a", "Charged", NOW - 1), idx, NOW) == set()
    assert apply_event(user, Event("e2", "a", "Charged", NOW), idx, NOW) == {"s0"}


def test_reevaluate_queues_enters_exits_and_reachability_changes() -> None:
    idx = index({"profile": {"prop": "city", "op": "eq", "value": "Pune"}}, {"event": {"name": "Charged"}})
    user = UserState("a")
    apply_profile(user, ProfileUpdate("a", 1, set={"city": "Pune"}))
    found = reevaluate(user, idx, idx.ruled, NOW)
    assert [(t.segment_id, t.op) for t in found] == [("s0", ENTER)]
    before = user.mask
    apply_profile(user, ProfileUpdate("a", 2, set={"email": "a@b.c"}))
    found = reevaluate(user, idx, idx.ruled, NOW, before)
    assert [(t.segment_id, t.op, t.mask) for t in found] == [("s0", MASK, 1)], "still in, now reachable by email"
    apply_profile(user, ProfileUpdate("a", 3, set={"city": "Goa"}))
    assert [(t.segment_id, t.op) for t in reevaluate(user, idx, idx.ruled, NOW)] == [("s0", EXIT)]
    assert user.dirty_members and len(user.outbox) == 3


def test_an_older_profile_update_changes_nothing() -> None:
    user = UserState("a")
    assert apply_profile(user, ProfileUpdate("a", 10, set={"city": "Pune"}))
    assert not apply_profile(user, ProfileUpdate("a", 9, set={"city": "Goa"}))
    assert user.profile == {"city": "Pune"}


def test_deleted_segments_are_forgotten_without_transitions() -> None:
    idx = index({"event": {"name": "Charged"}})
    user = UserState("a", members={"s0", "gone"}, stored_aggs={"gone": "[[1,0]]"}, backfilled={"gone"})
    forget_segments(user, idx.segments.keys())
    assert user.members == {"s0"} and not user.stored_aggs and not user.backfilled
    assert user.dirty_aggs == {"gone"} and user.dirty_backfills == {"gone"} and not user.outbox


def test_a_backfill_merges_once() -> None:
    idx = index({"event": {"name": "Charged", "count": {"op": "gte", "value": 2}}})
    seg = idx.segments["s0"]
    user = UserState("a")
    extra = new_aggregate()
    extra.count = 2
    assert merge_backfill(user, seg, [extra])
    assert not merge_backfill(user, seg, [extra])
    assert [t.op for t in reevaluate(user, idx, {"s0"}, NOW)] == [ENTER]


def test_the_due_instant_follows_window_changes() -> None:
    idx = index({"event": {"name": "Viewed", "within_days": 1}})
    user = UserState("a")
    apply_event(user, Event("e1", "a", "Viewed", NOW - 1000), idx, NOW)
    reevaluate(user, idx, idx.ruled, NOW)
    assert update_due(user, idx, NOW) == NOW - 1000 + DAY == next_due_ms(user, idx, NOW)
    assert user.dirty_due


def test_the_hash_round_trips_through_a_commit() -> None:
    """changed_fields + apply_commit (the cached copy) + load_user give back the same state."""
    idx = index({"event": {"name": "Viewed", "within_days": 1}}, {"profile": {"prop": "city", "op": "exists"}})
    user = UserState("a")
    apply_profile(user, ProfileUpdate("a", 5, set={"city": "Pune", "email": "a@b.c"}, subscriptions={"sms": False},
                                      blacklisted=True))
    apply_event(user, Event("e1", "a", "Viewed", NOW - 1000), idx, NOW)
    user.applied_events, user.dirty_applied = 41, True
    reevaluate(user, idx, idx.ruled, NOW)
    update_due(user, idx, NOW)
    stored: dict[str, str] = {}
    apply_commit(stored, *changed_fields(user))
    back = load_user("a", stored)
    assert (back.profile, back.subscriptions, back.blacklisted, back.members) == (
        user.profile, user.subscriptions, True, {"s0", "s1"})
    assert back.applied_events == 41 and back.due_ms == user.due_ms and back.version == 1
    assert [t.segment_id for t in back.stale_outbox] == ["s0", "s1"]
    back.stale_outbox, back.outbox = back.stale_outbox, []
    to_set, to_del = changed_fields(back)
    assert to_del == ["zq", "o"] or set(to_del) == {"zq", "o"}, "a clean touch clears the outbox and timer flag"
    assert not to_set
