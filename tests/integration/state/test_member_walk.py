"""The member walk on a real redis-server: each member once, a repeated page given once, expiry fails loudly."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from stream.state.keys import Keys
from stream.state.lua import LuaRunner
from stream.state.walk import MEMBER_WALK, TTL_MS, MemberWalk, WalkExpired

pytestmark = pytest.mark.integration

KEYS = Keys("t:")


async def test_members_staying_throughout_are_given_once_while_others_come_and_go(
        lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    staying = [f"s{i}" for i in range(3_000)]
    leaving = [f"l{i}" for i in range(2_000)]
    await private_redis.sadd(KEYS.members("a"), *staying, *leaving)
    walk = MemberWalk(private_redis, lua, KEYS, "a", chunk=250)
    given: list[str] = []
    steps = 0
    async for ids in walk.windows():
        given += ids
        steps += 1
        if steps == 3:  # the set grows ninefold and loses a block mid-walk: it rehashes under the cursor
            await private_redis.srem(KEYS.members("a"), *leaving)
            for start in range(0, 40_000, 2_000):
                await private_redis.sadd(KEYS.members("a"), *(f"j{i}" for i in range(start, start + 2_000)))
    assert steps > 3
    assert len(given) == len(set(given)) == walk.total, "a member was given twice"
    assert set(staying) <= set(given)
    assert set(given) <= set(staying) | set(leaving) | {f"j{i}" for i in range(40_000)}
    await walk.drop()
    assert await private_redis.exists(walk.seen) == 0


async def test_a_page_seen_again_gives_only_the_ids_not_given_yet(lua: LuaRunner,
                                                                 private_redis: aioredis.Redis) -> None:
    """What SSCAN does when the set rehashes mid-walk, forced: the cursor goes back to the start."""
    members, seen = KEYS.members("a"), KEYS.member_walk("a", "t")
    await private_redis.sadd(members, *(f"u{i}" for i in range(100)))
    cursor, first, existed = await lua.call(MEMBER_WALK, [members, seen], ["0", 1000, TTL_MS])
    assert (cursor, len(set(first)), existed) == ("0", 100, 0)
    await private_redis.sadd(members, "late")
    _, again, existed = await lua.call(MEMBER_WALK, [members, seen], ["0", 1000, TTL_MS])
    assert (again, existed) == (["late"], 1)
    assert 0 < await private_redis.pttl(seen) <= TTL_MS


async def test_a_walk_whose_memory_expired_fails_instead_of_repeating(lua: LuaRunner,
                                                                     private_redis: aioredis.Redis) -> None:
    await private_redis.sadd(KEYS.members("a"), *(f"u{i}" for i in range(5_000)))
    walk = MemberWalk(private_redis, lua, KEYS, "a", chunk=100)

    async def read_while_forgetting() -> None:
        async for _ in walk.windows():
            await private_redis.delete(walk.seen)  # as if the reader stalled past the TTL

    with pytest.raises(WalkExpired, match="expired after"):
        await read_while_forgetting()
    await walk.drop()


async def test_an_empty_or_missing_set_gives_nothing(lua: LuaRunner, private_redis: aioredis.Redis) -> None:
    walk = MemberWalk(private_redis, lua, KEYS, "nobody")
    assert [ids async for ids in walk.windows()] == []
    assert walk.total == 0
