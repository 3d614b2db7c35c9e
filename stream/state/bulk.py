"""Bulk reads of many users' hashes over the raw RESP router: exports, recounts, sample rebuilds.

One HMGET per user (the cluster rule: no command spans two users' slots),
a window of them written at once and parsed by hiredis in C. `Windows` keeps
the next window's reads queued in Redis while the caller formats the current
one, so Redis and the Python side work side by side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import hiredis
from redis.exceptions import ResponseError

from stream.state.keys import Keys
from stream.state.resp import Command, Pending, RespRouter

Row = list[str | None]


def _hmget(keys: Keys, uid: str, fields: Sequence[bytes]) -> Command:
    key = keys.user(uid)
    return key, [b"HMGET", key.encode(), *fields]


def _checked(replies: list[Any]) -> list[Row]:
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
    return replies


async def read_users(router: RespRouter, keys: Keys, user_ids: Sequence[str], fields: Sequence[str]) -> list[Row]:
    """The same fields of each user's hash (None where missing), in order."""
    encoded = [f.encode() for f in fields]
    return _checked(await router.execute([_hmget(keys, uid, encoded) for uid in user_ids]))


async def windows_with_fields(router: RespRouter, keys: Keys, windows: AsyncIterator[list[str]],
                              fields: Sequence[str]) -> AsyncIterator[tuple[list[str], list[Row]]]:
    """Each window of user ids with their fields; the next window is already queued while the
    caller works on this one."""
    encoded = [f.encode() for f in fields]
    queued: tuple[list[str], Pending] | None = None
    async for ids in windows:
        pending = await router.submit([_hmget(keys, uid, encoded) for uid in ids])
        if queued is not None:
            yield queued[0], _checked(await router.result(queued[1]))
        queued = (ids, pending)
    if queued is not None:
        yield queued[0], _checked(await router.result(queued[1]))
