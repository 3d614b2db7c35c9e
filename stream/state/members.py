"""A segment's members: MEMBER_BUCKETS small hashes and an exact count, under the segment's tag.

One Redis set per segment cost ~61 bytes per membership (a hashtable entry
plus the id); at five memberships a user that was 311 of the bench's 2,153
bytes per user. Spread over 4,096 hashes (member id -> ""), each holds ~244
ids at a million members and stays a listpack: ~14 bytes per membership
with a 10-character id, plus ~90 bytes of key per bucket (~0.4 MB per large
segment). Which bucket is CRC32 of the id (`Keys.member_bucket_of`), so a
user has the same bucket number in every segment.

Reading them: the exact size is one GET (`seg:{sid}:n`, moved by the same
script as the buckets), a walk reads bucket after bucket (`stream.state.walk`:
each bucket's ids in one reply, so none is given twice), an overlap compares
bucket b of one segment with bucket b of the other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from stream.state.client import RedisClient
from stream.state.keys import MEMBER_BUCKETS, Keys, member_bucket_number
from stream.state.lua import Arg, Script, script

MEMBERS_APPLY = script("members_apply")

# (op "1"/"0", user_id, day "YYYY-MM-DD")
MemberChange = tuple[str, str, str]


def members_apply_call(keys: Keys, sid: str, changes: Sequence[MemberChange]) -> tuple[Script, list[str], list[Arg]]:
    """One lua/members_apply.lua call: the trend and count keys, then each bucket touched once."""
    call_keys = [keys.trend(sid), keys.member_count(sid)]
    slot: dict[int, int] = {}
    args: list[Arg] = []
    for op, uid, day in changes:
        b = member_bucket_number(uid)
        at = slot.get(b)
        if at is None:
            call_keys.append(keys.member_bucket(sid, b))
            at = slot[b] = len(call_keys)  # KEYS index, 1-based in Lua
        args += [op, at, uid, day]
    return MEMBERS_APPLY, call_keys, args


async def member_ids(redis: RedisClient, keys: Keys, sid: str) -> set[str]:
    """Every member at once: for tests, drills and small segments; large readers walk."""
    pipe = redis.pipeline(transaction=False)
    for b in range(MEMBER_BUCKETS):
        pipe.hkeys(keys.member_bucket(sid, b))
    return {k.decode() if isinstance(k, bytes) else str(k) for ids in await pipe.execute() for k in ids}


async def is_member(redis: RedisClient, keys: Keys, sid: str, uid: str) -> bool:
    return bool(await redis.hexists(keys.member_bucket_of(sid, uid), uid))


async def plant_members(redis: RedisClient, keys: Keys, sid: str, uids: Iterable[str]) -> int:
    """Adds members directly, count included, without trend or sample: for benches and tests
    that need a segment of a given size fast. Returns how many were new."""
    by_bucket: dict[int, list[str]] = defaultdict(list)
    for uid in uids:
        by_bucket[member_bucket_number(uid)].append(uid)
    pipe = redis.pipeline(transaction=False)
    for b, ids in by_bucket.items():
        pipe.hset(keys.member_bucket(sid, b), mapping=dict.fromkeys(ids, ""))
    added = sum(int(n) for n in await pipe.execute()) if by_bucket else 0
    if added:
        await redis.incrby(keys.member_count(sid), added)
    return added


async def drop_segment_keys(redis: RedisClient, keys: Keys, sid: str) -> None:
    """Unlinks every key of a deleted segment (its 4,096 buckets too), 512 per round trip."""
    names = keys.segment_keys(sid)
    for start in range(0, len(names), 512):
        pipe = redis.pipeline(transaction=False)
        for name in names[start:start + 512]:
            pipe.unlink(name)
        await pipe.execute()


async def member_count(redis: RedisClient, keys: Keys, sid: str) -> int:
    return int(await redis.get(keys.member_count(sid)) or 0)
