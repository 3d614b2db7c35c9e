"""The one way Lua runs: scripts that name their inputs, and a runner that owns NOSCRIPT and routing.

Each file in `state/lua/` starts with two header lines, as arq names its
scripts' inputs:

    --! keys: trend count ...
    --! args: expected_version n_set ...

`Script` reads them, so a call with the wrong number of keys fails here, in
Python, with the script's name, instead of inside Redis. The names in the
header are the `local` names the script gives `KEYS[i]`/`ARGV[i]` (a trailing
`...` marks a variadic tail, in keys or args). `LuaRunner.call` runs one script call through
redis-py (pooled connections, safe for an API's concurrent requests);
`LuaRunner.call_many` runs a batch over the raw RESP router (hiredis packing
and parsing, grouped by cluster node). Both load a script
(`SCRIPT LOAD` on the node that refused it) when Redis answers NOSCRIPT, after a
restart or a `SCRIPT FLUSH`, and re-send only the refused calls.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

import hiredis
from redis.exceptions import NoScriptError, ResponseError

from stream.state.client import RedisClient
from stream.state.resp import Command, RespRouter

Arg = str | int | float


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    keys: tuple[str, ...]
    args: tuple[str, ...]
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    @property
    def variadic(self) -> bool:
        return _variadic(self.args)

    def check(self, keys: Sequence[str], args: Sequence[Arg]) -> None:
        for label, names, given in (("keys", self.keys, len(keys)), ("args", self.args, len(args))):
            fixed = len(names) - 1 if _variadic(names) else len(names)
            if given < fixed or (not _variadic(names) and given != fixed):
                raise ValueError(f"{self.name}.lua takes {label} ({', '.join(names)}), got {given}")

    def command(self, keys: Sequence[str], args: Sequence[Arg]) -> Command:
        return keys[0], ["EVALSHA", self.sha, len(keys), *keys, *args]


def _variadic(names: tuple[str, ...]) -> bool:
    return bool(names) and names[-1] == "..."


def _header(source: str, name: str, label: str) -> tuple[str, ...]:
    for line in source.splitlines()[:5]:
        if line.startswith(f"--! {label}:"):
            return tuple(line.split(":", 1)[1].split())
    raise ValueError(f"{name}.lua must declare its {label} in a '--! {label}:' header line")


@cache
def script(name: str) -> Script:
    source = (files("stream.state") / "lua" / f"{name}.lua").read_text(encoding="utf-8")
    return Script(name, source, _header(source, name, "keys"), _header(source, name, "args"))


class LuaRunner:
    def __init__(self, redis: RedisClient, router: RespRouter) -> None:
        self.redis = redis
        self.router = router
        self._lock = asyncio.Lock()

    async def call(self, s: Script, keys: Sequence[str], args: Sequence[Arg] = ()) -> Any:
        s.check(keys, args)
        try:
            return await self.redis.evalsha(s.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.redis.script_load(s.source)
            return await self.redis.evalsha(s.sha, len(keys), *keys, *args)

    async def call_many(self, calls: Sequence[tuple[Script, Sequence[str], Sequence[Arg]]],
                        raise_errors: bool = True) -> list[Any]:
        """Replies in call order; with `raise_errors` false, error replies come back as values."""
        commands: list[Command] = []
        for s, keys, args in calls:
            s.check(keys, args)
            commands.append(s.command(keys, args))
        async with self._lock:
            replies = await self.router.execute(commands)
            refused = [i for i, r in enumerate(replies)
                       if isinstance(r, hiredis.ReplyError) and str(r).startswith("NOSCRIPT")]
            if refused:
                for s in {calls[i][0].name: calls[i][0] for i in refused}.values():
                    for reply in (await self.router.on_every_master([b"SCRIPT", b"LOAD", s.source.encode()])).values():
                        if isinstance(reply, hiredis.ReplyError):
                            raise ResponseError(f"{s.name}.lua: {reply}")
                again = await self.router.execute([commands[i] for i in refused])
                for i, reply in zip(refused, again, strict=True):
                    replies[i] = reply
        if raise_errors:
            for (s, _, _), reply in zip(calls, replies, strict=True):
                if isinstance(reply, hiredis.ReplyError):
                    raise ResponseError(f"{s.name}.lua: {reply}")
        return replies

    async def close(self) -> None:
        async with self._lock:
            await self.router.close()
