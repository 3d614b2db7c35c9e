"""A worker keeps committed users in memory: the settled user must be the one Redis would give back."""

from __future__ import annotations

import random

import pytest

from stream.ingest import Event, ProfileUpdate
from stream.membership import (
    UserState,
    apply_event,
    apply_profile,
    changed_fields,
    load_user,
    reevaluate,
    settle_committed,
    update_due,
)
from stream.rules import aggregates_from_json, parse_rule
from stream.segments import SegmentIndex, make_segment

pytestmark = pytest.mark.unit

DAY = 86_400_000
NOW = 1_800_000_000_000
RULES = [
    {"event": {"name": "Charged", "count": {"op": "gte", "value": 2}}},
    {"event": {"name": "Viewed", "within_days": 1}},
    {"not": {"event": {"name": "Charged", "within_days": 2}}},
    {"reachable": "email"},
    {"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
]
INDEX = SegmentIndex.build(
    make_segment(f"s{i}", f"seg {i}", "live", parse_rule(rule), created_at_ms=NOW - 30 * DAY)
    for i, rule in enumerate(RULES)
)


def store(stored: dict[str, str], user: UserState) -> tuple[dict[str, str], list[str]]:
    """What user_commit.lua does to the hash."""
    to_set, to_del = changed_fields(user)
    stored.update(to_set)
    for name in to_del:
        stored.pop(name, None)
    stored["v"] = str(user.version + 1)
    return to_set, to_del


def view(user: UserState) -> dict[str, object]:
    aggs = {sid: aggregates_from_json(raw) for sid, raw in user.stored_aggs.items()}
    return {
        "v": user.version, "exists": user.exists, "profile": user.profile, "pt": user.profile_ts,
        "subs": user.subscriptions, "b": user.blacklisted, "members": user.members, "aggs": aggs,
        "backfilled": user.backfilled, "due": (user.due_known, user.due_ms), "zq": user.timer_queued,
        "stale_outbox": user.stale_outbox, "outbox": user.outbox, "dirty": user.dirty,
    }


@pytest.mark.parametrize("seed", range(40))
def test_a_settled_user_equals_the_user_read_back(seed: int) -> None:
    rng = random.Random(seed)
    stored: dict[str, str] = {}
    cached = load_user("u1", {})
    now = NOW
    for step in range(12):
        now += rng.randrange(0, DAY)
        user = cached
        mask_before = user.mask
        if rng.random() < 0.3:
            apply_profile(user, ProfileUpdate("u1", now, set={"city": rng.choice(["Pune", "Goa"]),
                                                              "email": "a@b.c"},
                                              subscriptions={"email": rng.random() < 0.5}))
        for n in range(rng.randrange(0, 4)):
            name = rng.choice(["Charged", "Viewed", "Other"])
            apply_event(user, Event(f"e{step}-{n}", "u1", name, now - rng.randrange(0, 3 * DAY)), INDEX, now)
        reevaluate(user, INDEX, INDEX.ruled, now, mask_before)
        update_due(user, INDEX, now)
        written = store(stored, user)
        settle_committed(user, *written)
        assert view(user) == view(load_user("u1", dict(stored))), f"step {step}"
        # The decoded aggregates the cache keeps are the ones stored (or empty ones, never stored).
        for sid, aggs in user.aggs.items():
            if "a:" + sid in stored:
                assert aggs == aggregates_from_json(stored["a:" + sid])
            else:
                assert all(a.count == 0 and not a.entries for a in aggs)
        cached = user
