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
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from stream.state.keys import Keys

CHUNK = 2000
TTL_MS = 15 * 60 * 1000  # refreshed on every window, so only an abandoned snapshot expires

_COPY_PAGE = """
local page = redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local ids = page[2]
for i = 1, #ids, 1000 do
  local args = {}
  for j = i, math.min(i + 999, #ids) do
    args[#args + 1] = 0
    args[#args + 1] = ids[j]
  end
  redis.call('ZADD', KEYS[2], unpack(args))
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return page[1]
"""


class MemberSnapshot:
    def __init__(self, redis: Redis, keys: Keys, sid: str) -> None:
        self.redis = redis
        self.members = keys.members(sid)
        self.key = f"{keys.prefix}seg:{{{sid}}}:export:{uuid.uuid4().hex}"
        self._copy = redis.register_script(_COPY_PAGE)
        self.total = 0

    async def take(self) -> None:
        """Copies the members as they are now; members joining meanwhile may or may not be in."""
        cursor = "0"
        while True:
            cursor = str(await self._copy(keys=[self.members, self.key], args=[cursor, CHUNK, TTL_MS]))
            if cursor == "0":
                break
        self.total = int(await self.redis.zcard(self.key))

    async def windows(self, size: int = CHUNK) -> AsyncIterator[list[str]]:
        start = 0
        while True:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrange(self.key, start, start + size - 1)
            pipe.pexpire(self.key, TTL_MS)
            ids, _ = await pipe.execute()
            if not ids:
                if start < self.total:  # expired under a reader stalled past TTL_MS: fail, never truncate quietly
                    raise RuntimeError(f"export snapshot {self.key} expired after {start} of {self.total} members")
                return
            yield [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
            start += size

    async def drop(self) -> None:
        await self.redis.delete(self.key)
