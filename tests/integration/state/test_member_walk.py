"""The member walk on a real redis-server: bucket by bucket, each member once, windows near CHUNK."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from stream.state.keys import MEMBER_BUCKETS, Keys
from stream.state.lua import LuaRunner
from stream.state.members import drop_segment_keys, member_count, member_ids, plant_members
from stream.state.walk import MemberWalk

pytestmark = pytest.mark.integration

KEYS = Keys("t:")


async def test_members_staying_throughout_are_given_once_while_others_come_and_go(
        lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    staying = [f"s{i}" for i in range(3_000)]
    leaving = [f"l{i}" for i in range(2_000)]
    assert await plant_members(private_redis, KEYS, "a", [*staying, *leaving]) == 5_000
    walk = MemberWalk(lua.router, KEYS, "a", chunk=250)
    given: list[str] = []
    steps = 0
    async for ids in walk.windows():
        given += ids
        steps += 1
        if steps == 3:  # members leave and ~40k join mid-walk, in buckets read and not read yet
            for uid in leaving:
                await private_redis.hdel(KEYS.member_bucket_of("a", uid), uid)
            await plant_members(private_redis, KEYS, "a", (f"j{i}" for i in range(40_000)))
    assert steps > 3
    assert len(given) == len(set(given)) == walk.total, "a member was given twice"
    assert set(staying) <= set(given)
    assert set(given) <= set(staying) | set(leaving) | {f"j{i}" for i in range(40_000)}


async def test_windows_grow_to_about_a_chunk_and_cover_every_bucket(lua: LuaRunner,
                                                                    private_redis: aioredis.Redis) -> None:
    ids = [f"u{i}" for i in range(20_000)]
    await plant_members(private_redis, KEYS, "a", ids)
    assert await member_count(private_redis, KEYS, "a") == 20_000
    walk = MemberWalk(lua.router, KEYS, "a", chunk=2_000)
    windows = [w async for w in walk.windows()]
    assert sorted(uid for w in windows for uid in w) == sorted(ids)
    assert max(len(w) for w in windows) <= 4 * 2_000
    assert len(windows) <= 20, "a small first group doubles until windows near the chunk"
    assert await member_ids(private_redis, KEYS, "a") == set(ids)


async def test_windows_shrink_to_about_a_chunk_when_buckets_are_full(lua: LuaRunner,
                                                                      private_redis: aioredis.Redis) -> None:
    """~24 ids a bucket against a chunk of 100: the first group of 16 gives ~390, then it halves."""
    await plant_members(private_redis, KEYS, "a", (f"u{i}" for i in range(100_000)))
    walk = MemberWalk(lua.router, KEYS, "a", chunk=100)
    sizes = [len(w) async for w in walk.windows()]
    assert sum(sizes) == walk.total == 100_000
    assert sizes[0] > 2 * 100 and max(sizes[3:]) <= 3 * 100, sizes[:6]


async def test_dropping_a_segment_unlinks_its_buckets_and_count(lua: LuaRunner,
                                                                private_redis: aioredis.Redis) -> None:
    await plant_members(private_redis, KEYS, "a", (f"u{i}" for i in range(10_000)))
    await plant_members(private_redis, KEYS, "b", ["x"])
    assert len(await private_redis.keys("t:seg:{a}:m:*")) > MEMBER_BUCKETS // 2
    await drop_segment_keys(private_redis, KEYS, "a")
    assert await private_redis.keys("t:seg:{a}*") == []
    assert await member_ids(private_redis, KEYS, "b") == {"x"}


async def test_an_empty_or_missing_segment_gives_nothing(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    walk = MemberWalk(lua.router, KEYS, "nobody")
    assert [ids async for ids in walk.windows()] == []
    assert walk.total == 0
