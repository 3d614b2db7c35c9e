"""Custom list segments: resolving uploaded identities and adding the users found.

Adding goes through `Committer.run` like every other membership change, so
the user's `m` field, the member set, the trend counters, the sample and the
`segment-changes` topic all move together, with the same crash-safety (the
outbox) and the same compare-and-set against a worker touching that user.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from stream.membership import ENTER, Transition, UserState
from stream.segments import SegmentIndex
from stream.state.commit import Committer
from stream.state.keys import Keys
from stream.state.users import Lookup

CHUNK = 1000


async def resolve(redis: Redis, keys: Keys, kind: str, values: Sequence[str]) -> list[list[str]]:
    """Per value, the known users it names; `[]` is unmatched.

    user_id needs the user's hash to exist; email and phone use the identity
    index the worker keeps (one SMEMBERS each, no scan). All pipelined.
    """
    pipe = redis.pipeline(transaction=False)
    asked: list[int] = []
    for i, value in enumerate(values):
        if not value:
            continue
        asked.append(i)
        if kind == "user_id":
            pipe.hexists(keys.user(value), "v")
        else:
            pipe.smembers(keys.identity(kind, value))
    replies = await pipe.execute() if asked else []
    out: list[list[str]] = [[] for _ in values]
    for i, reply in zip(asked, replies, strict=True):
        if kind == "user_id":
            out[i] = [values[i]] if reply else []
        else:
            out[i] = sorted(str(u) for u in reply)
    return out


async def add_members(committer: Committer, index: SegmentIndex, sid: str, user_ids: Sequence[str],
                      now_ms: int) -> int:
    """Adds existing users to list segment `sid`; returns how many were not members yet."""
    unique = list(dict.fromkeys(user_ids))
    added = 0

    def work(user: UserState, idx: SegmentIndex) -> list[tuple[str, str]]:
        if sid in idx.segments and sid not in user.members:
            user.members.add(sid)
            user.outbox.append(Transition(sid, ENTER, now_ms, user.mask))
            user.dirty.add("m")
        return []

    for start in range(0, len(unique), CHUNK):
        chunk = unique[start:start + CHUNK]
        report = await committer.run([Lookup(u) for u in chunk], dict.fromkeys(chunk), work, index, now_ms,
                                     only_existing=True)
        added += sum(1 for _, _, t in report.transitions if t.segment_id == sid and t.op == ENTER)
    return added
