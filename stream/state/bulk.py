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
from stream.state.resp import Command, Frame, Pending, RespRouter, encode

Row = list[str | None]


class HmgetTemplate:
    """HMGET of fixed fields in RESP form, built once per read: a user's command is the head,
    its key, and the encoded fields, instead of every argument encoded again per user."""

    def __init__(self, keys: Keys, fields: Sequence[str]) -> None:
        self.keys = keys
        self.head = b"*%d\r\n$5\r\nHMGET\r\n" % (len(fields) + 2)
        self.tail = encode([f.encode() for f in fields])[len(b"*%d\r\n" % len(fields)):]

    def commands(self, user_ids: Sequence[str]) -> list[Command]:
        head, tail, user = self.head, self.tail, self.keys.user
        out: list[Command] = []
        for uid in user_ids:
            key = user(uid)
            raw = key.encode()
            out.append((key, Frame(b"%s$%d\r\n%s\r\n%s" % (head, len(raw), raw, tail))))
        return out


def _checked(replies: list[Any]) -> list[Row]:
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
    return replies


async def read_users(router: RespRouter, keys: Keys, user_ids: Sequence[str], fields: Sequence[str]) -> list[Row]:
    """The same fields of each user's hash (None where missing), in order."""
    return _checked(await router.execute(HmgetTemplate(keys, fields).commands(user_ids)))


async def windows_with_fields(router: RespRouter, keys: Keys, windows: AsyncIterator[list[str]],
                              fields: Sequence[str]) -> AsyncIterator[tuple[list[str], list[Row]]]:
    """Each window of user ids with their fields; the next window is already queued while the
    caller works on this one."""
    template = HmgetTemplate(keys, fields)
    queued: tuple[list[str], Pending] | None = None
    async for ids in windows:
        pending = await router.submit(template.commands(ids))
        if queued is not None:
            yield queued[0], _checked(await router.result(queued[1]))
        queued = (ids, pending)
    if queued is not None:
        yield queued[0], _checked(await router.result(queued[1]))
