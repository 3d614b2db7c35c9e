"""Segment definitions, member sets and trend counters in Redis.

Definitions live in one hash with a version counter: a worker checks the
counter before each batch (one GET) and reloads only when it moved, so a
created or deleted segment takes effect everywhere within a batch or two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.exceptions import WatchError

from stream.segments import Segment, SegmentIndex, segment_from_json
from stream.state.keys import Keys
from stream.state.scripts import lua_source

# (op "1"/"0", user_id, day "YYYY-MM-DD")
MemberChange = tuple[str, str, str]


class SegmentStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._apply = redis.register_script(lua_source("members_apply"))

    async def version(self) -> int:
        return int(await self.redis.get(self.keys.segments_version) or 0)

    async def load_index(self) -> SegmentIndex:
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(self.keys.segments_version)
        pipe.hvals(self.keys.segments)
        version, raws = await pipe.execute()
        return SegmentIndex.build((segment_from_json(r) for r in raws), int(version or 0))

    async def get(self, sid: str) -> Segment | None:
        raw = await self.redis.hget(self.keys.segments, sid)
        return segment_from_json(raw) if raw else None

    async def put(self, seg: Segment) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.segments, seg.id, seg.to_json())
        pipe.incr(self.keys.segments_version)
        pipe.publish(self.keys.segments_channel, seg.id)
        await pipe.execute()

    async def put_existing(self, seg: Segment) -> bool:
        """put() only while the definition exists, so a rename racing a delete cannot resurrect it."""
        while True:
            async with self.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(self.keys.segments)
                if not await pipe.hexists(self.keys.segments, seg.id):
                    return False
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.hset(self.keys.segments, seg.id, seg.to_json())
                pipe.incr(self.keys.segments_version)
                pipe.publish(self.keys.segments_channel, seg.id)
                try:
                    await pipe.execute()
                    return True
                except WatchError:  # another definition changed meanwhile: look again
                    continue

    async def remove(self, sid: str) -> None:
        """Drops the definition and the segment-side keys; user-side leftovers go with the cleanup job."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.segments, sid)
        pipe.incr(self.keys.segments_version)
        pipe.publish(self.keys.segments_channel, sid)
        await pipe.execute()
        await self.purge(sid)

    async def purge(self, sid: str) -> None:
        """Deletes a removed segment's own keys. Run again when its cleanup job ends: a batch
        in flight on a worker that had not yet seen the deletion may have written them back."""
        await self.redis.delete(self.keys.members(sid), self.keys.trend(sid), self.keys.exact(sid),
                                self.keys.segment_job(sid, "backfill"))

    async def apply_members(self, changes: Mapping[str, Sequence[MemberChange]]) -> dict[str, list[bool]]:
        """Returns, per segment, which transitions really changed the member set."""
        if not changes:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        order = list(changes)
        for sid in order:
            args = [part for change in changes[sid] for part in change]
            await self._apply(keys=[self.keys.members(sid), self.keys.trend(sid)], args=args, client=pipe)
        replies = await pipe.execute()
        return {sid: [bool(x) for x in reply] for sid, reply in zip(order, replies, strict=True)}

    async def size(self, sid: str) -> int:
        return int(await self.redis.scard(self.keys.members(sid)))

    async def trend_counters(self, sid: str) -> dict[str, int]:
        raw = await self.redis.hgetall(self.keys.trend(sid))
        return {str(k): int(v) for k, v in raw.items()}
