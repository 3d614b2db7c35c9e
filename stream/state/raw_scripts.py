"""One Lua script called for many users at once, over a raw RESP connection.

The worker commits one compare-and-set script per user per batch. redis-py
spends ~15 µs of Python packing each call and parsing its reply; here a call
is one bytes join and hiredis parses the batch's replies in C. Still one
command per user, so the cluster rule holds. The connection opens on first use
and is dropped on any error; a dropped connection is retried once on a fresh
one; NOSCRIPT (a Redis that restarted or flushed its script cache) loads the
script and re-sends only the calls that were refused.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from stream.state.bulk import BulkReader

Call = tuple[Sequence[str], Sequence[str | int]]  # (keys, args)


class RawScript:
    def __init__(self, redis: Redis, source: str) -> None:
        self.redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest().encode()
        self.supported = BulkReader(redis).supported
        self._conn: BulkReader | None = None
        self._lock = asyncio.Lock()  # the API may commit from concurrent requests

    async def run_many(self, calls: Sequence[Call]) -> list[Any]:
        if not calls:
            return []
        commands = [[b"EVALSHA", self.sha, b"%d" % len(keys), *(k.encode() for k in keys),
                     *(str(a).encode() for a in args)] for keys, args in calls]
        async with self._lock:
            try:
                replies = await self._run(commands)
            except OSError:
                # A dropped connection (Redis restarted): once more on a fresh one. Re-sending is
                # safe: a call that did apply answers "conflict" or "duplicate" the second time.
                await self.close()
                replies = await self._run(commands)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise ResponseError(str(reply))
        return replies

    async def _run(self, commands: list[list[bytes]]) -> list[Any]:
        try:
            if self._conn is None:
                self._conn = await BulkReader(self.redis).__aenter__()
            replies = await self._conn.call(commands, raise_errors=False)
            refused = [i for i, r in enumerate(replies)
                       if isinstance(r, hiredis.ReplyError) and str(r).startswith("NOSCRIPT")]
            if refused:
                await self._conn.call([[b"SCRIPT", b"LOAD", self.source.encode()]])
                again = await self._conn.call([commands[i] for i in refused], raise_errors=False)
                for i, reply in zip(refused, again, strict=True):
                    replies[i] = reply
            return replies
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.__aexit__(None, None, None)
