"""The overlap's Redis reads on a real redis-server: sample entries below a theta, exact set overlap."""

from __future__ import annotations

import random

import pytest
import redis.asyncio as aioredis

from stream.overlap import count_overlap
from stream.sketches import RetainedSample
from stream.state.keys import Keys
from stream.state.lua import LuaRunner
from stream.state.members import plant_members
from stream.state.overlap import ExactOverlap, exact_overlap
from stream.state.sample import SampleStore

pytestmark = pytest.mark.integration

KEYS = Keys("t:")


async def test_entries_below_are_the_reference_entries_below_the_covered_theta(
        lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    rng = random.Random(3)
    store = SampleStore(private_redis, lua, KEYS, 5)  # K = 32: a few hundred members trim it
    ref = RetainedSample(5)
    members = [f"u{i}" for i in range(600)]
    await store.apply({"a": [(uid, rng.randrange(32)) for uid in members]})
    leaving = rng.sample(members, 200)
    await store.apply({"a": [(uid, None) for uid in leaving]})
    for uid in members:
        ref.update(uid, True, 1)
    for uid in leaving:
        ref.update(uid, False)
    expected = {uid: u for uid, (u, _) in ref.entries().items()}
    assert ref.theta < 1.0

    theta, entries = await store.entries_below("a")
    assert (theta, entries) == (ref.theta, expected)
    half = ref.theta / 2
    theta, entries = await store.entries_below("a", half)
    assert theta == half
    assert entries == {uid: u for uid, u in expected.items() if u < half}
    assert 0 < len(entries) < len(expected)
    assert await store.entries_below("never-seen") == (1.0, {})
    with pytest.raises(ValueError, match="below"):
        await store.entries_below("a", 0.0)


async def test_sample_overlap_equals_the_reference_overlap(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    store = SampleStore(private_redis, lua, KEYS, 5)
    a = [f"u{i}" for i in range(0, 500)]
    b = [f"u{i}" for i in range(300, 1500)]
    await store.apply({"a": [(uid, 1) for uid in a], "b": [(uid, 1) for uid in b]})
    ra, rb = RetainedSample(5), RetainedSample(5)
    for uid in a:
        ra.update(uid, True, 1)
    for uid in b:
        rb.update(uid, True, 1)
    (_, _, _), (theta_b, _, _) = await store.counters("a"), await store.counters("b")
    ta, ea = await store.entries_below("a", theta_b)
    tb, eb = await store.entries_below("b", theta_b)
    expected = count_overlap({u: x for u, (x, _) in ra.entries().items()}, ra.theta,
                             {u: x for u, (x, _) in rb.entries().items()}, rb.theta)
    assert count_overlap(ea, ta, eb, tb) == expected
    assert expected.both > 0


async def test_exact_overlap_is_the_set_intersection(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    rng = random.Random(11)
    everyone = [f"user-{i}" for i in range(12_000)]
    a = set(rng.sample(everyone, 7_000))  # more than one 2,000-id window on either side
    b = set(rng.sample(everyone, 4_500))
    for sid, ids in (("a", a), ("b", b)):
        await plant_members(private_redis, KEYS, sid, sorted(ids))
    before = sorted(await private_redis.keys("t:*"))
    expected = ExactOverlap(both=len(a & b), only_a=len(a - b), only_b=len(b - a))
    router = lua.router
    assert await exact_overlap(router, KEYS, "a", "b") == expected
    assert await exact_overlap(router, KEYS, "b", "a") == ExactOverlap(expected.both, expected.only_b, expected.only_a)
    assert await exact_overlap(router, KEYS, "a", "a") == ExactOverlap(len(a), 0, 0)
    assert await exact_overlap(router, KEYS, "a", "empty") == ExactOverlap(0, len(a), 0)
    assert await exact_overlap(router, KEYS, "empty", "a") == ExactOverlap(0, 0, len(a))
    assert sorted(await private_redis.keys("t:*")) == before, "the overlap reads; it writes nothing"
