"""Random interleavings of clock steps, (possibly late) events and timer rounds through the engine, against the oracle.

A timer round may come long after a window's due instant, and a user may be
touched in between (an event within the timer interval, or the demo's
hour-long rounds). After any touch the touched user, and after a timer round
every user, must stand where the oracle puts them at that instant: a touch
that recomputed the next due from now, skipping a change no one applied, lost
abandoned-cart entries and exits in the demo history.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from stream.config import Settings
from stream.rules import parse_rule
from stream.segments import SegmentIndex, make_segment
from stream.state.memory import MemoryEngineStore
from stream.testing import EngineHarness
from tests.oracle import oracle_member

pytestmark = pytest.mark.unit

NOW = 1_800_000_000_000
MIN, DAY = 60_000, 86_400_000
USERS = ["a", "b", "c"]
NAMES = ["AddToCart", "Charged", "Viewed"]
RULES: list[dict[str, Any]] = [
    {"all": [{"event": {"name": "AddToCart", "within": {"hours": 3}, "before": {"hours": 1}}},
             {"not": {"sequence": {"steps": [{"name": "AddToCart"}, {"name": "Charged"}],
                                   "max_span": {"hours": 1}}}}]},
    {"event": {"name": "Viewed", "count": {"op": "gte", "value": 2}, "within": {"minutes": 30}}},
    {"sequence": {"steps": [{"name": "Viewed"}, {"name": "AddToCart"}], "within": {"hours": 2}}},
    {"all": [{"in_segment": "s0"}, {"not": {"in_segment": "s1"}}]},
]
Op = tuple[Any, ...]
OPS = st.lists(st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 150)),  # minutes
    st.tuples(st.just("event"), st.sampled_from(USERS), st.sampled_from(NAMES), st.integers(0, 70)),  # late by
    st.just(("tick",)),
), min_size=1, max_size=40)


def oracle(events: dict[str, list[tuple[str, str, int, dict[str, Any]]]], uid: str, sid: str, now: int) -> bool:
    i = int(sid[1:])
    return oracle_member(parse_rule(RULES[i]), kind="past_behavior", created_at_ms=NOW - 30 * DAY, profile={},
                         subscriptions={}, events=events[uid], now_ms=now,
                         member_of=lambda inner: oracle(events, uid, inner, now))


async def play(ops: list[Op]) -> None:
    store = MemoryEngineStore(lg_k=6, cache_size=100)
    harness = EngineHarness.create(store, Settings(partitions=1, key_prefix="unit:", user_cache_size=100))
    segs = [make_segment(f"s{i}", f"seg {i}", "past_behavior", parse_rule(r), NOW - 30 * DAY, NOW - 30 * DAY)
            for i, r in enumerate(RULES)]
    store.set_definitions(SegmentIndex.build(segs, store.index.version + 1, None))
    now = NOW
    harness.clock.now = now / 1000
    events: dict[str, list[tuple[str, str, int, dict[str, Any]]]] = {u: [] for u in USERS}
    seen: set[str] = set()
    for n, op in enumerate(ops):
        if op[0] == "advance":
            now += op[1] * MIN
            harness.clock.now = now / 1000
            continue
        if op[0] == "event":
            _, uid, name, late = op
            body = {"event_id": f"e{n}", "user_id": uid, "name": name, "ts": now - late * MIN, "props": {}}
            await harness.send_events(body)
            events[uid].append((body["event_id"], name, now - late * MIN, {}))
            seen.add(uid)
            check = [uid]
        else:
            for _ in range(10):
                if await harness.tick() == 0:
                    break
            check = sorted(seen)
        for uid in check:
            for seg in segs:
                want = oracle(events, uid, seg.id, now)
                got = uid in store.members.get(seg.id, set())
                if got != want:
                    note(json.dumps({"op": n, "user": uid, "segment": seg.id, "stored": got, "now": now}))
                assert got == want, (n, op, uid, seg.id)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_every_touch_and_timer_round_leaves_users_where_the_oracle_puts_them(ops: list[Op]) -> None:
    asyncio.run(play(ops))
