"""A duplicate-free walk over a segment's members, for exports and exact overlaps.

SSCAN over the live set may return a member twice (when the set rehashes as
it grows or shrinks mid-walk), and deduplicating in Python would need a set
of every id sent: ~100 MB at 1M members, not flat. So each step of the walk
is one script call (`member_walk.lua`): an SSCAN page, less the ids an
earlier page gave, which Redis remembers in a temporary set under the
segment's hash tag (~50 bytes per member for the walk's duration; it expires
on its own if the API dies mid-walk).

The walk starts giving ids at once; an earlier design copied the whole set
into a sorted set first, which at 1M members kept the first window waiting
4.4 s and cost Redis more than the walk's 1.7 s in all. The next step is
already asked for while the caller works on this one.

Members joining or leaving during the walk may or may not be given; one who
stays a member throughout is given exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from stream.state.bulk import Row, windows_with_fields
from stream.state.client import Endpoint, RedisClient
from stream.state.keys import Keys
from stream.state.lua import LuaRunner, script
from stream.state.resp import RespRouter

CHUNK = 2000  # the SSCAN COUNT per step: ids per window, about
TTL_MS = 15 * 60 * 1000  # refreshed on every step, so only an abandoned walk's set expires

MEMBER_WALK = script("member_walk")


class WalkExpired(RuntimeError):
    """The walk's memory of given ids expired under a reader stalled past TTL_MS: going on
    could repeat members, so the walk fails rather than answer wrong."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class MemberWalk:
    def __init__(self, redis: RedisClient, lua: LuaRunner, keys: Keys, sid: str, chunk: int = CHUNK) -> None:
        self.lua = lua
        self.redis = redis
        self.members = keys.members(sid)
        self.seen = keys.member_walk(sid, uuid.uuid4().hex)
        self.chunk = chunk
        self.total = 0  # distinct members given so far

    async def _step(self, cursor: str) -> tuple[str, list[str], bool]:
        next_cursor, fresh, existed = await self.lua.call(MEMBER_WALK, [self.members, self.seen],
                                                          [cursor, self.chunk, TTL_MS])
        return _text(next_cursor), [_text(i) for i in fresh], bool(int(existed))

    async def windows(self) -> AsyncIterator[list[str]]:
        """The members, a page at a time (empty pages skipped); the next page is already
        being read while the caller holds this one."""
        step: asyncio.Task[tuple[str, list[str], bool]] | None = asyncio.ensure_future(self._step("0"))
        try:
            while step is not None:
                cursor, ids, existed = await step
                if self.total and not existed:
                    raise WalkExpired(f"member walk {self.seen} expired after {self.total} members")
                step = asyncio.ensure_future(self._step(cursor)) if cursor != "0" else None
                if ids:
                    self.total += len(ids)
                    yield ids
        finally:
            if step is not None and not step.done():
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)

    async def drop(self) -> None:
        await self.redis.delete(self.seen)


async def member_rows(redis: RedisClient, lua: LuaRunner, keys: Keys, ep: Endpoint, sid: str,
                      fields: Sequence[str]) -> AsyncIterator[tuple[list[str], list[Row]]]:
    """The walk with each member's user fields, window by window.

    The export's own raw router (its own connections, so a long export never
    holds up the API's other requests) keeps the next window's reads queued
    while the caller formats this one."""
    walk = MemberWalk(redis, lua, keys, sid)
    router = RespRouter(ep)
    try:
        async for ids, rows in windows_with_fields(router, keys, walk.windows(), fields):
            yield ids, rows
    finally:
        await router.close()
        await walk.drop()
