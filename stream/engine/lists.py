"""Custom list segments: resolving uploaded identities and adding the users found.

Adding goes through `Committer.run` like every other membership change, so
the user's `m` field, the member set, the trend counters, the sample and the
`segment-changes` topic all move together, with the same crash-safety (the
outbox) and the same compare-and-set against a worker touching that user.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from stream.engine.commit import Committer
from stream.membership import ENTER, Transition, UserState, cascade
from stream.segments import SegmentIndex
from stream.state.client import RedisClient
from stream.state.keys import Keys
from stream.state.users import Lookup

CHUNK = 1000


async def resolve(redis: RedisClient, keys: Keys, kind: str, values: Sequence[str]) -> list[list[str]]:
    """Per value, the user ids it may name; whether they exist is `add_members`' answer.

    A user_id names itself (the commit's own load then tells whether the user
    is known, so nothing is read twice); email and phone go through the
    identity index the worker keeps, one pipelined HGET each, no scan.
    """
    if kind == "user_id":
        return [[v] if v else [] for v in values]
    asked = [i for i, v in enumerate(values) if v]
    pipe = redis.pipeline(transaction=False)
    for i in asked:
        pipe.hget(keys.identity(kind, values[i]), values[i])
    replies = await pipe.execute() if asked else []
    out: list[list[str]] = [[] for _ in values]
    for i, reply in zip(asked, replies, strict=True):
        out[i] = sorted(str(u) for u in json.loads(reply)) if reply else []
    return out


async def known_users(redis: RedisClient, keys: Keys, user_ids: Sequence[str]) -> set[str]:
    """Which of the ids are known users: only those are logged in a list chunk."""
    unique = list(dict.fromkeys(user_ids))
    pipe = redis.pipeline(transaction=False)
    for uid in unique:
        pipe.exists(keys.user(uid))
    flags = await pipe.execute() if unique else []
    return {uid for uid, flag in zip(unique, flags, strict=True) if flag}


async def add_members(committer: Committer, index: SegmentIndex, sid: str, user_ids: Sequence[str],
                      now_ms: int) -> set[str]:
    """Adds the known users among `user_ids` to list segment `sid`; returns those known users.

    Unknown ids are dropped by the commit's load (`only_existing`), never created.
    """
    unique = list(dict.fromkeys(user_ids))
    known: set[str] = set()

    def work(user: UserState, idx: SegmentIndex) -> list[tuple[str, str]]:
        if sid in idx.segments and sid not in user.members:
            user.members.add(sid)
            user.outbox.append(Transition(sid, ENTER, now_ms, user.mask))
            user.dirty_members = True
            cascade(user, idx, {sid}, now_ms)  # segments with `in_segment` of this list follow
        return []

    for start in range(0, len(unique), CHUNK):
        chunk = unique[start:start + CHUNK]
        partitions: dict[str, int | None] = dict.fromkeys(chunk)
        report = await committer.run([Lookup(u) for u in chunk], partitions, work, index, now_ms,
                                     only_existing=True)
        known.update(u.user_id for u in report.applied)
    return known
