"""Bulk reads of many small keys over one raw RESP connection.

Exports and recounts read one hash per user, millions of times. Through
redis-py each pipelined command costs ~20 µs of Python (argument encoding,
command packing, a coroutine per reply); here a command is one bytes join and
hiredis parses the whole window of replies in C. Still one command per key,
so the cluster rule (no command spans two users' slots) holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

READ_CHUNK = 1 << 20


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class BulkReader:
    """A private connection made from the client's own settings (host, port, db, credentials).

    Only plain TCP: for TLS or unix-socket deployments `supported` is false and
    callers keep using redis-py.
    """

    def __init__(self, redis: Redis) -> None:
        self.kwargs: dict[str, Any] = dict(redis.connection_pool.connection_kwargs)
        self.supported = redis.connection_pool.connection_class is Connection  # not TLS, not a unix socket
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        # One parser for the connection's life: a read may hold the start of later replies.
        self._parser = hiredis.Reader(encoding="utf-8")

    async def __aenter__(self) -> BulkReader:
        if not self.supported:
            raise RuntimeError("BulkReader needs a plain TCP Redis URL")
        self._reader, self._writer = await asyncio.open_connection(self.kwargs["host"], self.kwargs.get("port", 6379))
        setup: list[list[bytes]] = []
        password, username = self.kwargs.get("password"), self.kwargs.get("username")
        if password:
            setup.append([b"AUTH", *([username.encode()] if username else []), password.encode()])
        if int(self.kwargs.get("db") or 0):
            setup.append([b"SELECT", str(self.kwargs["db"]).encode()])
        if setup:
            await self.call(setup)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    async def call(self, commands: Sequence[Sequence[bytes]], raise_errors: bool = True) -> list[Any]:
        """Sends every command at once and returns the replies in order (text decoded as UTF-8)."""
        self._write(b"".join(b"*%d\r\n%s" % (len(c), b"".join(map(_bulk, c))) for c in commands))
        return await self.receive(len(commands), raise_errors)

    def _write(self, payload: bytes) -> None:
        if self._writer is None:
            raise RuntimeError("use `async with BulkReader(...)`")
        self._writer.write(payload)

    async def receive(self, expected: int, raise_errors: bool = True) -> list[Any]:
        """The replies to the next `expected` commands sent (see `send_hmget`); with
        `raise_errors` false, error replies come back as `hiredis.ReplyError` values."""
        if self._reader is None or self._writer is None:
            raise RuntimeError("use `async with BulkReader(...)`")
        await self._writer.drain()
        parser = self._parser
        replies: list[Any] = []
        while len(replies) < expected:
            reply = parser.gets()
            if reply is False:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    raise ConnectionError("Redis closed the bulk connection")
                parser.feed(data)
                continue
            replies.append(reply)
        # Every reply is read first, so the connection stays in step for the next call.
        for reply in replies if raise_errors else ():
            if isinstance(reply, hiredis.ReplyError):
                raise ResponseError(str(reply))
        return replies

    async def hmget(self, keys: Sequence[str], fields: Sequence[str]) -> list[list[str | None]]:
        """HMGET of the same fields from each key (None where missing)."""
        return await self.receive(self.send_hmget(keys, fields))

    def send_hmget(self, keys: Sequence[str], fields: Sequence[str]) -> int:
        """Queues the HMGETs without waiting, so Redis works on them while the caller
        formats the previous window; `receive` (with the count returned) collects them."""
        head = b"*%d\r\n$5\r\nHMGET\r\n" % (len(fields) + 2)
        tail = b"".join(_bulk(f.encode()) for f in fields)
        self._write(b"".join(head + _bulk(k.encode()) + tail for k in keys))
        return len(keys)


async def read_fields(redis: Redis, bulk: BulkReader, keys: Sequence[str],
                      fields: Sequence[str]) -> list[list[str | None]]:
    """HMGET per key through the open bulk reader, or redis-py where it is unsupported."""
    if bulk.supported:
        return await bulk.hmget(keys, fields)
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, list(fields))
    return list(await pipe.execute())


@contextlib.asynccontextmanager
async def bulk_reader(redis: Redis) -> AsyncIterator[BulkReader]:
    """An open BulkReader, or an unopened one (`supported` false) for `read_fields` to fall back."""
    reader = BulkReader(redis)
    if not reader.supported:
        yield reader
        return
    async with reader:
        yield reader
