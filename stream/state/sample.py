"""Per-segment retained sample in Redis: size and reachability estimates under churn.

The algorithm is ``stream.sketches.RetainedSample``; this is its shared,
atomic form. Each segment has three keys under one hash tag so that the Lua
script touching them stays on one Redis Cluster slot:

- ``{prefix}sk:{sid}:z`` ZSET user_id -> u, the sampled current members;
- ``{prefix}sk:{sid}:m`` HASH user_id -> channel mask of those members;
- ``{prefix}sk:{sid}:s`` HASH theta, n, n0..n4, maintained by the script so
  that reading an estimate is one HMGET whatever the segment's size.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Mapping, Sequence
from typing import Final

from redis.asyncio.client import Pipeline

from stream.sketches import CHANNELS, NUM_CHANNELS, Estimate, estimate_from_sample, hash_unit
from stream.state.client import RedisClient, atomic
from stream.state.keys import Keys
from stream.state.lua import LuaRunner, script

__all__ = ["SampleStore"]

SAMPLE_UPDATE = script("sample_update")
_COUNTER_FIELDS: Final = ("theta", "n", *(f"n{c}" for c in range(NUM_CHANNELS)))
# One EVALSHA: the segment's three keys and ARGV (lg_k, then user/u/mask triples).
_Call = tuple[tuple[str, str, str], list[str | int]]
# Transitions per script call: bounds how long one call holds Redis' single thread.
_CHUNK: Final = 2000
# Rebuild keys outlive a crashed rebuild by this much, refreshed on every chunk.
_REBUILD_TTL_SECONDS: Final = 3600


class SampleStore:
    """Retained-entries sample per segment, updated by exact transitions.

    Leaves remove entries outright (no tombstones), so the sample stays a
    Bernoulli(theta) sample of the *current* members and the estimates stay
    unbiased however many members leave.
    """

    def __init__(self, redis: RedisClient, lua: LuaRunner, keys: Keys, lg_k: int) -> None:
        if not 4 <= lg_k <= 26:
            raise ValueError(f"lg_k must be in [4, 26], got {lg_k}")
        self._redis = redis
        self._lua = lua
        self._keys = keys
        self._lg_k = lg_k

    def keys(self, sid: str) -> tuple[str, str, str]:
        """The segment's (entries ZSET, masks HASH, counters HASH) key names."""
        return self._keys.sample(sid)

    async def apply(self, changes: Mapping[str, Sequence[tuple[str, int | None]]]) -> None:
        """Apply each segment's transitions, in one pipeline round trip.

        A transition is (user_id, channel mask) for a member, (user_id, None)
        for a user who is not one. Each states the user's current state, so a
        redelivered batch changes nothing. Within one segment's list the last
        transition of a user wins (kept at the position of its first): were
        a user to join and leave inside one batch, a replay would otherwise
        briefly admit them again and could trigger a trim that the first pass
        did not.
        """
        calls: list[_Call] = []
        for sid, transitions in changes.items():
            latest: dict[str, int] = {}
            for user_id, mask in transitions:
                latest[user_id] = -1 if mask is None else _checked_mask(mask)
            calls += self._script_calls(self.keys(sid), list(latest.items()))
        if calls:
            await self._run(calls)

    async def estimate(self, sid: str) -> tuple[Estimate, dict[str, Estimate]]:
        """Size and reachability per channel name: one HMGET, O(1) at any size.

        Exact (bounds equal to the estimate) until the segment first held more
        than 2K sampled members; a segment never seen reads as empty.
        """
        values = await self._redis.hmget(self.keys(sid)[2], list(_COUNTER_FIELDS))
        theta = float(values[0]) if values[0] is not None else 1.0
        counts = [int(v) if v is not None else 0 for v in values[1:]]
        size = estimate_from_sample(counts[0], theta)
        reach = {name: estimate_from_sample(counts[1 + c], theta) for c, name in enumerate(CHANNELS)}
        return size, reach

    async def counters(self, sid: str) -> tuple[float, int, tuple[int, ...]]:
        """(theta, n, per-channel counts) as stored, for checks and diagnostics."""
        values = await self._redis.hmget(self.keys(sid)[2], list(_COUNTER_FIELDS))
        theta = float(values[0]) if values[0] is not None else 1.0
        counts = [int(v) if v is not None else 0 for v in values[1:]]
        return theta, counts[0], tuple(counts[1:])

    async def entries_below(self, sid: str, below: float = 1.0) -> tuple[float, dict[str, float]]:
        """(t, entries user id -> u): exactly the segment's members with u < t, t = min(below, theta).

        The segment's overlap with another is counted below the smaller of the
        two thetas (``stream.overlap``); ``below`` lets the caller fetch only
        the entries it will keep. Theta and entries are read in one MULTI
        because a trim in between would lower theta and drop entries (and a
        recount's rebuild raise it): the caller would then take the sample as
        covering members it does not hold. Both keys are the segment's own
        (one hash tag, one slot). A segment never seen reads as no entries.
        """
        if not 0.0 < below <= 1.0:
            raise ValueError(f"below must be in (0, 1], got {below}")
        z, _, s = self.keys(sid)
        raw_theta, rows = await atomic(self._redis, s, lambda pipe: (
            pipe.hget(s, "theta"), pipe.zrangebyscore(z, "-inf", f"({below!r}", withscores=True)))
        covered = min(below, float(raw_theta) if raw_theta is not None else 1.0)
        return covered, {str(uid): float(u) for uid, u in rows if float(u) < covered}

    async def reset(self, sid: str) -> None:
        """Empty the sample and put theta back to 1, so small segments are exact again."""
        z, m, s = self.keys(sid)
        await atomic(self._redis, s, lambda pipe: (pipe.delete(z, m, s), pipe.hset(s, items=_empty_counters())))

    async def delete(self, sid: str) -> None:
        """Drop every key of the segment's sample."""
        await self._redis.delete(*self.keys(sid))

    async def rebuild(self, sid: str, members: AsyncIterable[tuple[str, int]]) -> None:
        """Replace the sample by one built from a full member list, with theta reset to 1.

        Built under temporary keys (same hash tag) and renamed over the live
        ones in one MULTI, so readers never see a half-built sample. Caveat:
        transitions applied to the live keys while ``members`` is being read
        are overwritten by the swap; a user whose transition raced the scan
        keeps the scanned state until their next transition. Callers should
        take the member list as late as they can.
        """
        live = self.keys(sid)
        tmp = self._keys.sample_rebuild(sid, uuid.uuid4().hex)
        try:
            batch: dict[str, int] = {}
            async for user_id, mask in members:
                batch[user_id] = _checked_mask(mask)
                if len(batch) >= _CHUNK:
                    await self._write_tmp(tmp, list(batch.items()))
                    batch = {}
            await self._write_tmp(tmp, list(batch.items()))
            n = await self._redis.hget(tmp[2], "n")

            def swap(pipe: Pipeline) -> None:
                pipe.delete(*live)
                pipe.rename(tmp[2], live[2])
                if n is not None and int(n) > 0:
                    pipe.rename(tmp[0], live[0])
                    pipe.rename(tmp[1], live[1])
                # RENAME carries the temporary TTL over; the live sample must not expire.
                for key in live:
                    pipe.persist(key)

            await atomic(self._redis, live[2], swap)
        finally:
            await self._redis.delete(*tmp)

    async def _write_tmp(self, tmp: tuple[str, str, str], items: list[tuple[str, int]]) -> None:
        # An empty call too, so that the counters hash exists even for no members.
        calls = self._script_calls(tmp, items) or [(tmp, [self._lg_k])]
        await self._run(calls, expire=tmp)

    def _script_calls(self, keys: tuple[str, str, str], items: list[tuple[str, int]]) -> list[_Call]:
        """Split one segment's transitions into script calls of at most _CHUNK, in order."""
        calls: list[_Call] = []
        for start in range(0, len(items), _CHUNK):
            args: list[str | int] = [self._lg_k]
            for user_id, mask in items[start : start + _CHUNK]:
                args += (user_id, repr(hash_unit(user_id)), mask)
            calls.append((keys, args))
        return calls

    async def _run(self, calls: list[_Call], expire: Sequence[str] = ()) -> None:
        """The calls in one round trip; every transition is idempotent, so a re-sent call is harmless."""
        await self._lua.call_many([(SAMPLE_UPDATE, list(keys), args) for keys, args in calls])
        if expire:
            pipe = self._redis.pipeline(transaction=False)
            for key in expire:
                pipe.expire(key, _REBUILD_TTL_SECONDS)
            await pipe.execute()


def _checked_mask(mask: int) -> int:
    if not 0 <= mask < 1 << NUM_CHANNELS:
        raise ValueError(f"channel mask must be in [0, {1 << NUM_CHANNELS}), got {mask}")
    return mask


def _empty_counters() -> list[str | int]:
    items: list[str | int] = ["theta", "1", "n", 0]
    for c in range(NUM_CHANNELS):
        items += (f"n{c}", 0)
    return items
