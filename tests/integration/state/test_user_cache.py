"""The worker's user cache holds exactly the hash Redis holds, commit after commit."""

from __future__ import annotations

import random

import pytest
import redis.asyncio as aioredis

from stream.ingest import Event, ProfileUpdate
from stream.membership import apply_event, apply_profile, reevaluate, update_due
from stream.rules import parse_rule
from stream.segments import SegmentIndex, make_segment
from stream.state.keys import Keys
from stream.state.lua import LuaRunner
from stream.state.users import COMMITTED, CONFLICT, Lookup, UserStore

pytestmark = pytest.mark.integration

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


@pytest.mark.parametrize("seed", range(6))
async def test_cached_hashes_equal_redis_after_every_commit(private_redis: aioredis.Redis, lua: LuaRunner,
                                                           seed: int) -> None:
    keys = Keys(f"cache{seed}:")
    store = UserStore(private_redis, lua, keys, cache_size=100)
    await _exercise(store, private_redis, keys, random.Random(seed), seed)


async def _exercise(store: UserStore, private_redis: aioredis.Redis, keys: Keys, rng: random.Random,
                    seed: int) -> None:
    uids = [f"u{i}" for i in range(20)]
    now = NOW
    for step in range(15):
        now += rng.randrange(0, DAY // 2)
        users = await store.load([Lookup(uid) for uid in rng.sample(uids, 8)])
        for user in users:
            mask_before = user.mask
            if rng.random() < 0.4:
                apply_profile(user, ProfileUpdate(user.user_id, now, set={"city": rng.choice(["Pune", "Goa"]),
                                                                          "email": "a@b.c"},
                                                  subscriptions={"email": rng.random() < 0.5}))
            for n in range(rng.randrange(0, 4)):
                apply_event(user, Event(f"e{seed}-{step}-{user.user_id}-{n}", user.user_id,
                                        rng.choice(["Charged", "Viewed", "Other"]), now - rng.randrange(0, 3 * DAY)),
                            INDEX, now)
            reevaluate(user, INDEX, INDEX.ruled, now, mask_before)
            update_due(user, INDEX, now)
        results = await store.commit(users)
        assert set(results) <= {COMMITTED}
        for user in users:
            store.settle(user)
    cached = dict(store.cache._hashes)
    assert cached, "users were committed and cached"
    for uid, fields in cached.items():
        assert fields == await private_redis.hgetall(keys.user(uid)), uid


async def test_a_write_from_elsewhere_is_caught_by_the_version(private_redis: aioredis.Redis, lua: LuaRunner) -> None:
    keys = Keys("cachex:")
    store = UserStore(private_redis, lua, keys, cache_size=10)
    other = UserStore(private_redis, lua, keys)  # the API's list upload: no cache
    await _race(store, other)


async def _race(store: UserStore, other: UserStore) -> None:
    [user] = await store.load([Lookup("u1")])
    apply_profile(user, ProfileUpdate("u1", NOW, set={"city": "Pune"}))
    assert await store.commit([user]) == [COMMITTED]
    store.settle(user)
    [theirs] = await other.load([Lookup("u1")])
    apply_profile(theirs, ProfileUpdate("u1", NOW + 1, set={"city": "Goa"}))
    assert await other.commit([theirs]) == [COMMITTED]
    [stale] = await store.load([Lookup("u1")])
    assert stale.profile["city"] == "Pune", "served from the cache"
    apply_profile(stale, ProfileUpdate("u1", NOW + 2, set={"age": 3}))
    assert await store.commit([stale]) == [CONFLICT]
    [fresh] = await store.load([Lookup("u1")])
    assert fresh.profile == {"city": "Goa"}
