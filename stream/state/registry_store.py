"""Campaigns and journeys: the things that use segments, and the guard on deleting one.

Every key here is hash-tagged with the segment catalog's own key name, so it
lives in the catalog's Redis Cluster slot and one script can check "segment
exists" and "segment unused" atomically with the write. Without that, a
campaign created while its segment is being deleted would point at nothing.
Usage is kept as counters so the delete check is O(1) however many campaigns
exist.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from stream.state.keys import Keys

CAMPAIGN, JOURNEY = "c", "j"
DELETE_GUARD_MS = 60_000  # a crashed delete stops blocking new campaigns after this long

_ADD = """
for i = 6, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then return ARGV[i] end
  local since = redis.call('HGET', KEYS[4], ARGV[i])
  if since and tonumber(ARGV[4]) - tonumber(since) < tonumber(ARGV[5]) then return ARGV[i] end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
for i = 6, #ARGV do redis.call('HINCRBY', KEYS[3], ARGV[3] .. ':' .. ARGV[i], 1) end
return 1
"""
_REMOVE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
for _, sid in ipairs(cjson.decode(raw)['segment_ids']) do
  local field = ARGV[2] .. ':' .. sid
  if redis.call('HINCRBY', KEYS[2], field, -1) <= 0 then redis.call('HDEL', KEYS[2], field) end
end
return 1
"""
_GUARD = """
local c = tonumber(redis.call('HGET', KEYS[1], 'c:' .. ARGV[1]) or '0')
local j = tonumber(redis.call('HGET', KEYS[1], 'j:' .. ARGV[1]) or '0')
if c > 0 or j > 0 then return {c, j} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return {0, 0}
"""


@dataclass(frozen=True, slots=True)
class Usage:
    campaigns: int
    journeys: int


class RegistryStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.catalog = keys.segments
        tag = "{" + keys.segments + "}"
        self._items = {CAMPAIGN: f"{tag}:campaigns", JOURNEY: f"{tag}:journeys"}
        self._usage = f"{tag}:usage"
        self._deleting = f"{tag}:deleting"
        self._add = redis.register_script(_ADD)
        self._remove = redis.register_script(_REMOVE)
        self._guard = redis.register_script(_GUARD)

    async def add(self, kind: str, fields: dict[str, Any], segment_ids: list[str]) -> dict[str, Any] | str:
        """Stores the item and returns it, or returns the first segment id that does not exist."""
        item_id = f"{'cmp' if kind == CAMPAIGN else 'jrn'}-{uuid.uuid4().hex[:10]}"
        now = int(time.time() * 1000)
        item = {"id": item_id, **fields, "segment_ids": segment_ids, "created_at_ms": now}
        reply = await self._add(
            keys=[self.catalog, self._items[kind], self._usage, self._deleting],
            args=[item_id, json.dumps(item, separators=(",", ":")), kind, now, DELETE_GUARD_MS, *segment_ids],
        )
        return item if reply == 1 else str(reply)

    async def items(self, kind: str) -> list[dict[str, Any]]:
        raw = await self.redis.hvals(self._items[kind])
        return sorted((json.loads(r) for r in raw), key=lambda it: (it["created_at_ms"], it["id"]))

    async def get(self, kind: str, item_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(self._items[kind], item_id)
        return dict(json.loads(raw)) if raw else None

    async def remove(self, kind: str, item_id: str) -> bool:
        return bool(await self._remove(keys=[self._items[kind], self._usage], args=[item_id, kind]))

    async def usage(self, sid: str) -> Usage:
        c, j = await self.redis.hmget(self._usage, [f"{CAMPAIGN}:{sid}", f"{JOURNEY}:{sid}"])
        return Usage(int(c or 0), int(j or 0))

    async def users_of(self, sid: str) -> list[dict[str, Any]]:
        """The campaigns and journeys naming `sid`, for a 409 that says what to detach first."""
        found = [it for kind in (CAMPAIGN, JOURNEY) for it in await self.items(kind)]
        return [it for it in found if sid in it["segment_ids"]]

    async def begin_delete(self, sid: str) -> Usage:
        """Blocks new users of `sid` unless it already has some (then returns them, nothing held)."""
        c, j = await self._guard(keys=[self._usage, self._deleting], args=[sid, int(time.time() * 1000)])
        return Usage(int(c), int(j))

    async def end_delete(self, sid: str) -> None:
        await self.redis.hdel(self._deleting, sid)
