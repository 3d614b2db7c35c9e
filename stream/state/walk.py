"""A walk over a segment's members, bucket by bucket, for exports, exact overlaps and samples.

The members live in MEMBER_BUCKETS hashes (`stream.state.members`); a step
reads a group of buckets with HKEYS in one round trip. Each bucket's ids
come in one reply, so no member is given twice and nothing needs to be
remembered between steps: API memory stays flat and Redis keeps no state for
the walk. (The set-based design needed a script per step and a temporary set
of every id given, ~50 bytes per member, because SSCAN repeats members of a
set that rehashes mid-walk; Redis spent 1.3-1.7 s on it per 1M members.)

The group grows or shrinks until a step gives about CHUNK ids, so a small
segment takes a few round trips and a large one windows of ~1,000-4,000 ids,
whatever its size (API memory stays flat). The
next step is already asked for while the caller works on this one.

Members joining or leaving during the walk may or may not be given; one who
stays a member throughout is given exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from stream.state.bulk import Row, windows_with_fields
from stream.state.client import Endpoint
from stream.state.keys import MEMBER_BUCKETS, Keys
from stream.state.resp import RespRouter

CHUNK = 2000  # ids per window, about
FIRST_GROUP = 16  # buckets in the first step; doubled while steps give under CHUNK / 2 ids,
MAX_GROUP = 512  # halved while they give over 2 * CHUNK (a 10M-member segment: ~2,400 ids a bucket)


def _texts(reply: Any) -> list[str]:
    if isinstance(reply, Exception):
        raise reply
    return [x.decode() if isinstance(x, bytes) else str(x) for x in reply]


async def bucket_ids(router: RespRouter, keys: Keys, sid: str, first: int, last: int) -> list[list[str]]:
    """The ids of buckets first..last-1 of a segment, one list per bucket, in one round trip."""
    names = [keys.member_bucket(sid, b) for b in range(first, last)]
    replies = await router.execute([(name, [b"HKEYS", name.encode()]) for name in names])
    return [_texts(r) for r in replies]


class MemberWalk:
    def __init__(self, router: RespRouter, keys: Keys, sid: str, chunk: int = CHUNK) -> None:
        self.router = router
        self.keys = keys
        self.sid = sid
        self.chunk = chunk
        self.total = 0  # members given so far

    async def _step(self, first: int, last: int) -> list[str]:
        return [uid for ids in await bucket_ids(self.router, self.keys, self.sid, first, last) for uid in ids]

    async def windows(self) -> AsyncIterator[list[str]]:
        """The members, a window at a time (empty windows skipped); the next step is already
        being read while the caller holds this one."""
        group, first = FIRST_GROUP, 0
        step: asyncio.Task[list[str]] | None = asyncio.ensure_future(self._step(0, group))
        try:
            while step is not None:
                ids = await step
                first += group
                if len(ids) < self.chunk // 2:
                    group = min(group * 2, MAX_GROUP)
                elif len(ids) > 2 * self.chunk:
                    group = max(group // 2, 1)
                last = min(first + group, MEMBER_BUCKETS)
                step = asyncio.ensure_future(self._step(first, last)) if first < MEMBER_BUCKETS else None
                group = last - first
                if ids:
                    self.total += len(ids)
                    yield ids
        finally:
            if step is not None and not step.done():
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)


async def member_rows(keys: Keys, ep: Endpoint, sid: str,
                      fields: Sequence[str]) -> AsyncIterator[tuple[list[str], list[Row]]]:
    """The walk with each member's user fields, window by window.

    The export's own raw router (its own connections, so a long export never
    holds up the API's other requests) keeps the next window's reads queued
    while the caller formats this one."""
    router = RespRouter(ep)
    try:
        async for ids, rows in windows_with_fields(router, keys, MemberWalk(router, keys, sid).windows(), fields):
            yield ids, rows
    finally:
        await router.close()
