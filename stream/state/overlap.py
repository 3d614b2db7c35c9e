"""Exact overlap of two segments, from their member sets, one segment's slot at a time.

The two member sets carry different hash tags, so on a Redis Cluster they
live on different slots and no single command (SINTERCARD, SINTER) may touch
both. Instead the smaller set is walked and each window of its ids is asked
of the other set with SMISMEMBER. The walk is the export's
(``stream.state.walk``): SSCAN over a live set may return an id twice when
the set rehashes mid-walk, which would count it twice; the walk gives each
id once, and the walked set's size is the number of ids it gave, so "only in
the walked set" cannot go negative.

Members joining or leaving during the walk may or may not be counted; the
answer is exact for a segment nobody is changing and off by at most the
changes made meanwhile otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream.state.client import RedisClient
from stream.state.keys import Keys
from stream.state.lua import LuaRunner
from stream.state.walk import MemberWalk

__all__ = ["ExactOverlap", "exact_overlap"]


@dataclass(frozen=True, slots=True)
class ExactOverlap:
    """Members of both segments, of the first only and of the second only."""

    both: int
    only_a: int
    only_b: int


async def exact_overlap(redis: RedisClient, lua: LuaRunner, keys: Keys, sid_a: str, sid_b: str) -> ExactOverlap:
    """Count the overlap exactly: O(min(|A|, |B|)) ids read, a window of SMISMEMBER per 2,000.

    Walking the smaller set bounds both the work and the walk's temporary
    memory in Redis (about 50 bytes per walked member, dropped at the end,
    expiring by itself if the API dies mid-walk).
    """
    if sid_a == sid_b:
        return ExactOverlap(both=int(await redis.scard(keys.members(sid_a))), only_a=0, only_b=0)
    size_a = int(await redis.scard(keys.members(sid_a)))
    size_b = int(await redis.scard(keys.members(sid_b)))
    walked, probed = (sid_a, sid_b) if size_a <= size_b else (sid_b, sid_a)
    walk = MemberWalk(redis, lua, keys, walked)
    both = 0
    try:
        async for ids in walk.windows():
            both += sum(1 for hit in await redis.smismember(keys.members(probed), ids) if hit)
        walked_size = walk.total
    finally:
        await walk.drop()
    probed_size = int(await redis.scard(keys.members(probed)))
    only_walked, only_probed = walked_size - both, max(0, probed_size - both)
    if walked == sid_a:
        return ExactOverlap(both=both, only_a=only_walked, only_b=only_probed)
    return ExactOverlap(both=both, only_a=only_probed, only_b=only_walked)
