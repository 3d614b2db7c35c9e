"""Segment definitions as materialised in Redis, member sets and trend counters.

Definitions are written only by the control plane (`stream.control`), which
logs them to Kafka first; here they are read. A version counter moves with
every change: a worker checks it before each batch (one GET) and reloads the
definitions only when it moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stream.segments import Segment, SegmentIndex, segment_from_json
from stream.state.client import RedisClient, atomic
from stream.state.keys import Keys
from stream.state.lua import LuaRunner
from stream.state.members import MemberChange, drop_segment_keys, members_apply_call


@dataclass(frozen=True, slots=True)
class MembersApplied:
    """Which transitions changed the set, and the day totals the trend changelog records."""

    flags: list[bool]
    days: dict[str, tuple[int, int]]  # day -> (entered, exited) as now stored


# Parsed definitions by their stored JSON: a Segment is immutable and any edit changes the JSON,
# so a hit is always current. The API reads one definition per request; parsing its rule was ~8%
# of the API's CPU under the bench's load (parse_rule, make_segment). Bounded: a full cache is
# cleared, not evicted one by one (definitions are few; the bound only guards against churn).
PARSED_CACHE_SIZE = 4096


class SegmentStore:
    def __init__(self, redis: RedisClient, lua: LuaRunner, keys: Keys) -> None:
        self.redis = redis
        self.lua = lua
        self.keys = keys
        self._parsed: dict[str | bytes, Segment] = {}

    def parsed(self, raw: str | bytes) -> Segment:
        """The Segment a stored definition holds, parsed once per distinct JSON."""
        seg = self._parsed.get(raw)
        if seg is None:
            if len(self._parsed) >= PARSED_CACHE_SIZE:
                self._parsed.clear()
            seg = self._parsed[raw] = segment_from_json(raw)
        return seg

    async def version(self) -> int:
        return int(await self.redis.get(self.keys.segments_version) or 0)

    async def load_index(self) -> SegmentIndex:
        version, raws, forgotten = await atomic(self.redis, self.keys.segments, lambda pipe: (
            pipe.get(self.keys.segments_version), pipe.hvals(self.keys.segments), pipe.hgetall(self.keys.forgotten)))
        return SegmentIndex.build((self.parsed(r) for r in raws), int(version or 0),
                                  {str(k): int(v) for k, v in forgotten.items()})

    async def get(self, sid: str) -> Segment | None:
        raw = await self.redis.hget(self.keys.segments, sid)
        return self.parsed(raw) if raw else None

    async def exists(self, sid: str) -> bool:
        return bool(await self.redis.hexists(self.keys.segments, sid))

    async def purge(self, sid: str) -> None:
        """Deletes a removed segment's own keys. Run again when its cleanup job ends: a batch
        in flight on a worker that had not yet seen the deletion may have written them back."""
        await drop_segment_keys(self.redis, self.keys, sid)

    async def apply_members(self, changes: Mapping[str, Sequence[MemberChange]]) -> dict[str, MembersApplied]:
        if not changes:
            return {}
        order = list(changes)
        calls = [members_apply_call(self.keys, sid, changes[sid]) for sid in order]
        replies = await self.lua.call_many(calls)
        out: dict[str, MembersApplied] = {}
        for sid, (flags, totals) in zip(order, replies, strict=True):
            days = {str(totals[i]): (int(totals[i + 1]), int(totals[i + 2])) for i in range(0, len(totals), 3)}
            out[sid] = MembersApplied([bool(int(x)) for x in flags], days)
        return out

    async def size(self, sid: str) -> int:
        return int(await self.redis.get(self.keys.member_count(sid)) or 0)

    async def sizes(self, sids: Sequence[str]) -> dict[str, int]:
        if not sids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for sid in sids:
            pipe.get(self.keys.member_count(sid))
        counts = await pipe.execute()
        return {sid: int(n or 0) for sid, n in zip(sids, counts, strict=True)}

    async def trend_counters(self, sid: str) -> dict[str, int]:
        raw = await self.redis.hgetall(self.keys.trend(sid))
        return {str(k): int(v) for k, v in raw.items()}
