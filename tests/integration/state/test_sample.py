"""The Redis sample store against its in-memory specification, on a real redis-server."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from stream.sketches import CHANNELS, NUM_CHANNELS, Estimate, RetainedSample, hash_unit
from stream.state.keys import Keys
from stream.state.lua import LuaRunner
from stream.state.sample import SampleStore

pytestmark = pytest.mark.integration

PREFIX = "t:"

Snapshot = tuple[float, int, tuple[int, ...], dict[str, tuple[float, int]]]


async def snapshot(client: aioredis.Redis, store: SampleStore, sid: str) -> Snapshot:
    """Everything the store holds for a segment, in RetainedSample's terms."""
    z, m, _ = store.keys(sid)
    scores = dict(await client.zrange(z, 0, -1, withscores=True))
    masks = await client.hgetall(m)
    assert set(scores) == set(masks), "entries ZSET and masks HASH disagree"
    theta, n, counts = await store.counters(sid)
    return theta, n, counts, {uid: (float(scores[uid]), int(masks[uid])) for uid in scores}


def reference_snapshot(ref: RetainedSample) -> Snapshot:
    return ref.theta, ref.retained, ref.channel_counts(), ref.entries()


def feed(ref: RetainedSample, transitions: Sequence[tuple[str, int | None]]) -> None:
    """What SampleStore.apply does with one segment's list: last state per user, first position."""
    latest: dict[str, int | None] = {}
    for uid, mask in transitions:
        latest[uid] = mask
    for uid, mask in latest.items():
        ref.update(uid, mask is not None, mask or 0)


def random_batch(rng: random.Random, users: int, size: int) -> list[tuple[str, int | None]]:
    return [(f"u{rng.randrange(users)}", rng.randrange(32) if rng.random() < 0.6 else None) for _ in range(size)]


async def aiter_of(items: list[tuple[str, int]]) -> AsyncIterator[tuple[str, int]]:
    for item in items:
        yield item


async def test_keys_share_one_cluster_slot(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    store = SampleStore(private_redis, lua, Keys(PREFIX), 5)
    keys = store.keys("seg-1")
    assert keys == ("t:sk:{seg-1}:z", "t:sk:{seg-1}:m", "t:sk:{seg-1}:s")
    assert len({key_slot(k.encode()) for k in keys}) == 1


async def test_store_equals_reference_through_random_transitions(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    rng = random.Random(5)
    store = SampleStore(private_redis, lua, Keys(PREFIX), 5)  # K = 32: trims happen often
    refs = {"a": RetainedSample(5), "b": RetainedSample(5)}
    for _ in range(80):
        batch = random_batch(rng, 700, rng.randrange(1, 150))
        changes = {"a": batch, "b": batch[::-1][: len(batch) // 2]}
        await store.apply(changes)
        for sid, transitions in changes.items():
            feed(refs[sid], transitions)
            assert await snapshot(private_redis, store, sid) == reference_snapshot(refs[sid])
    assert refs["a"].theta < 0.2, "the run must have trimmed"
    size, reach = await store.estimate("a")
    assert size == refs["a"].size()
    assert reach == {name: refs["a"].reach(c) for c, name in enumerate(CHANNELS)}


async def test_hashes_are_stored_exactly(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    store = SampleStore(private_redis, lua, Keys(PREFIX), 10)
    users = [f"exact-{i}" for i in range(500)]
    await store.apply({"s": [(uid, 1) for uid in users]})
    z, _, _ = store.keys("s")
    for uid in users:
        assert await private_redis.zscore(z, uid) == hash_unit(uid)


async def test_replaying_a_batch_changes_nothing(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    rng = random.Random(9)
    store = SampleStore(private_redis, lua, Keys(PREFIX), 4)
    for _ in range(60):
        # Users repeat inside a batch (join then leave, say): the replay must still be a no-op.
        changes = {"s": random_batch(rng, 400, rng.randrange(1, 120))}
        await store.apply(changes)
        before = await snapshot(private_redis, store, "s")
        await store.apply(changes)
        assert await snapshot(private_redis, store, "s") == before
    assert before[0] < 1.0


async def test_replaying_a_suffix_keeps_exactly_the_members_below_theta(lua: LuaRunner,
    private_redis: aioredis.Redis,
) -> None:
    """At-least-once redelivery of several batches may lower theta, never corrupt the sample."""
    rng = random.Random(13)
    store = SampleStore(private_redis, lua, Keys(PREFIX), 4)
    batches = [{"s": random_batch(rng, 300, 60)} for _ in range(40)]
    for changes in batches + batches[25:]:
        await store.apply(changes)
    members: dict[str, int] = {}
    for changes in batches:
        for uid, mask in changes["s"]:
            if mask is None:
                members.pop(uid, None)
            else:
                members[uid] = mask
    theta, n, counts, entries = await snapshot(private_redis, store, "s")
    assert entries == {uid: (hash_unit(uid), m) for uid, m in members.items() if hash_unit(uid) < theta}
    assert n == len(entries)
    assert counts == tuple(sum(1 for _, m in entries.values() if m >> c & 1) for c in range(NUM_CHANNELS))


async def test_estimate_is_exact_below_nominal_entries(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    rng = random.Random(17)
    store = SampleStore(private_redis, lua, Keys(PREFIX), 10)  # K = 1024
    members = {f"m-{i}": rng.randrange(32) for i in range(1800)}
    await store.apply({"s": list(members.items())})
    leaving = rng.sample(sorted(members), 600)
    await store.apply({"s": [(uid, None) for uid in leaving]})
    for uid in leaving:
        del members[uid]
    switched = rng.sample(sorted(members), 200)
    for uid in switched:
        members[uid] = rng.randrange(32)
    await store.apply({"s": [(uid, members[uid]) for uid in switched]})

    size, reach = await store.estimate("s")
    assert size == Estimate(1200, 1200, 1200)
    for c, name in enumerate(CHANNELS):
        exact = sum(1 for mask in members.values() if mask >> c & 1)
        assert reach[name] == Estimate(exact, exact, exact)


async def test_estimate_of_an_unknown_segment_is_an_exact_zero(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    size, reach = await SampleStore(private_redis, lua, Keys(PREFIX), 12).estimate("nope")
    assert size == Estimate(0, 0, 0)
    assert set(reach) == set(CHANNELS)
    assert all(e == Estimate(0, 0, 0) for e in reach.values())


async def test_rejects_masks_outside_the_channels(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    store = SampleStore(private_redis, lua, Keys(PREFIX), 4)
    with pytest.raises(ValueError, match="mask"):
        await store.apply({"s": [("u", 32)]})
    with pytest.raises(ValueError, match="lg_k"):
        SampleStore(private_redis, lua, Keys(PREFIX), 2)


async def test_reset_and_delete(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    store = SampleStore(private_redis, lua, Keys(PREFIX), 4)
    await store.apply({"s": [(f"r-{i}", 3) for i in range(200)]})
    assert (await store.counters("s"))[0] < 1.0
    await store.reset("s")
    assert await store.counters("s") == (1.0, 0, (0,) * NUM_CHANNELS)
    assert await private_redis.exists(*store.keys("s")[:2]) == 0
    await store.apply({"s": [("again", 1)]})
    assert (await store.estimate("s"))[0] == Estimate(1, 1, 1)
    await store.delete("s")
    assert await private_redis.exists(*store.keys("s")) == 0


async def test_rebuild_restores_exactness_after_churn(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    rng = random.Random(21)
    store = SampleStore(private_redis, lua, Keys(PREFIX), 5)  # 2K = 64
    everyone = [f"c-{i}" for i in range(3000)]
    await store.apply({"s": [(uid, rng.randrange(32)) for uid in everyone]})
    stayers = {uid: rng.randrange(32) for uid in rng.sample(everyone, 50)}
    await store.apply({"s": [(uid, stayers.get(uid)) for uid in everyone]})
    assert (await store.counters("s"))[0] < 0.05, "after the churn the sample only estimates"

    await store.rebuild("s", aiter_of(list(stayers.items())))

    theta, n, _, entries = await snapshot(private_redis, store, "s")
    assert (theta, n) == (1.0, 50)
    assert entries == {uid: (hash_unit(uid), mask) for uid, mask in stayers.items()}
    size, reach = await store.estimate("s")
    assert size == Estimate(50, 50, 50)
    for c, name in enumerate(CHANNELS):
        exact = sum(1 for m in stayers.values() if m >> c & 1)
        assert reach[name] == Estimate(exact, exact, exact)
    assert [await private_redis.ttl(k) for k in store.keys("s")] == [-1, -1, -1]
    assert sorted(await private_redis.keys("*")) == sorted(store.keys("s"))


async def test_rebuild_of_a_large_segment_equals_the_reference(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    rng = random.Random(23)
    store = SampleStore(private_redis, lua, Keys(PREFIX), 6)
    await store.apply({"s": [(f"old-{i}", 1) for i in range(500)]})
    members = [(f"big-{i}", rng.randrange(32)) for i in range(7000)]  # several rebuild chunks
    await store.rebuild("s", aiter_of(members))
    ref = RetainedSample(6)
    feed(ref, list(members))
    assert await snapshot(private_redis, store, "s") == reference_snapshot(ref)
    assert ref.theta < 1.0
    assert sorted(await private_redis.keys("*")) == sorted(store.keys("s"))


async def test_rebuild_to_empty_and_failed_rebuild(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    store = SampleStore(private_redis, lua, Keys(PREFIX), 4)
    await store.apply({"s": [(f"e-{i}", 7) for i in range(100)]})
    before = await snapshot(private_redis, store, "s")

    async def broken() -> AsyncIterator[tuple[str, int]]:
        for i in range(5000):
            yield f"x-{i}", 1
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError, match="went away"):
        await store.rebuild("s", broken())
    after_failure = await snapshot(private_redis, store, "s")
    assert after_failure == before, "a failed rebuild leaves the live sample alone"
    assert sorted(await private_redis.keys("*")) == sorted(store.keys("s")), "and no temporary keys"

    await store.rebuild("s", aiter_of([]))
    assert await store.estimate("s") == (Estimate(0, 0, 0), {name: Estimate(0, 0, 0) for name in CHANNELS})
    assert await private_redis.exists(*store.keys("s")[:2]) == 0


async def test_survives_a_script_cache_flush(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    """A Redis restart or failover empties the script cache; the next apply must reload, not fail."""
    store = SampleStore(private_redis, lua, Keys(PREFIX), 4)
    ref = RetainedSample(4)
    first: list[tuple[str, int | None]] = [(f"f-{i}", 1) for i in range(50)]
    await store.apply({"s": first})
    await private_redis.script_flush()
    second: list[tuple[str, int | None]] = [(f"f-{i}", None) for i in range(10)] + [("g", 2)]
    await store.apply({"s": second})
    feed(ref, first)
    feed(ref, second)
    assert await snapshot(private_redis, store, "s") == reference_snapshot(ref)
