"""A duplicate-free, stable walk over a segment's members, for exports.

SSCAN over the live set may return a member twice (when the set rehashes as
it grows or shrinks mid-walk), and deduplicating in Python would need a set
of every id sent: ~100 MB at 1M members, not flat. So the export first copies
the members, a SSCAN page per script call, into a temporary sorted set (all
scores 0, so ZADD collapses any repeat) under the segment's hash tag, then
reads it by index windows, which on a set nobody changes never repeat or
skip. The copy costs Redis ~100 bytes per member for the export's duration;
it expires on its own if the API dies mid-export.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

from stream.state.bulk import Row, windows_with_fields
from stream.state.client import Endpoint, RedisClient
from stream.state.keys import Keys
from stream.state.lua import LuaRunner, script
from stream.state.resp import RespRouter

CHUNK = 2000
PAGE = 5 * CHUNK  # ids read per ZRANGE: one round trip per five windows, not one per window
TTL_MS = 15 * 60 * 1000  # refreshed on every window, so only an abandoned snapshot expires

SNAPSHOT_COPY = script("snapshot_copy")


class MemberSnapshot:
    def __init__(self, redis: RedisClient, lua: LuaRunner, keys: Keys, sid: str) -> None:
        self.redis = redis
        self.lua = lua
        self.members = keys.members(sid)
        self.key = keys.export_snapshot(sid, uuid.uuid4().hex)
        self.total = 0

    async def take(self) -> None:
        """Copies the members as they are now; members joining meanwhile may or may not be in."""
        cursor = "0"
        while True:
            cursor = str(await self.lua.call(SNAPSHOT_COPY, [self.members, self.key], [cursor, CHUNK, TTL_MS]))
            if cursor == "0":
                break
        self.total = int(await self.redis.zcard(self.key))

    async def windows(self, size: int = CHUNK, page: int = PAGE) -> AsyncIterator[list[str]]:
        start = 0
        while True:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrange(self.key, start, start + page - 1)
            pipe.pexpire(self.key, TTL_MS)
            ids, _ = await pipe.execute()
            if not ids:
                if start < self.total:  # expired under a reader stalled past TTL_MS: fail, never truncate quietly
                    raise RuntimeError(f"export snapshot {self.key} expired after {start} of {self.total} members")
                return
            text = [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
            for at in range(0, len(text), size):
                yield text[at:at + size]
            start += page

    async def drop(self) -> None:
        await self.redis.delete(self.key)


async def member_rows(redis: RedisClient, lua: LuaRunner, keys: Keys, ep: Endpoint, sid: str,
                      fields: Sequence[str]) -> AsyncIterator[tuple[list[str], list[Row]]]:
    """A stable walk over the segment's members with their user fields, window by window.

    The export's own raw router (its own connections, so a long export never
    holds up the API's other requests) keeps the next window's reads queued
    while the caller formats this one."""
    snapshot = MemberSnapshot(redis, lua, keys, sid)
    router = RespRouter(ep)
    try:
        await snapshot.take()
        async for ids, rows in windows_with_fields(router, keys, snapshot.windows(), fields):
            yield ids, rows
    finally:
        await router.close()
        await snapshot.drop()
