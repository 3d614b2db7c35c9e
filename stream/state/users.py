"""Reads and writes per-user state with compare-and-set, one pipeline per batch.

A worker owns a partition, so conflicts only come from its own timers and
jobs racing the event path, or a zombie after a rebalance; the version check
turns those into a retry instead of a lost update.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from stream.membership import UserState, changed_fields, load_user
from stream.state.keys import Keys
from stream.state.scripts import lua_source


@dataclass(frozen=True, slots=True)
class Lookup:
    user_id: str
    event_ids: Sequence[str] = ()
    # False: trust the commit script to refuse an already-applied id (-1) instead of
    # asking first; duplicates are rare, so this saves a command for most users.
    check_dedupe: bool = True


COMMITTED, CONFLICT, DUPLICATE = 1, 0, -1


class UserStore:
    def __init__(self, redis: Redis, keys: Keys, dedupe_ttl_seconds: int) -> None:
        self.redis = redis
        self.keys = keys
        self.dedupe_ttl = dedupe_ttl_seconds
        self._commit = redis.register_script(lua_source("user_commit"))

    async def load(self, lookups: Sequence[Lookup]) -> list[UserState]:
        """Users plus which of the given event ids they already applied."""
        pipe = self.redis.pipeline(transaction=False)
        for lk in lookups:
            pipe.hgetall(self.keys.user(lk.user_id))
            if lk.event_ids and lk.check_dedupe:
                pipe.smismember(self.keys.dedupe(lk.user_id), list(lk.event_ids))
        replies = iter(await pipe.execute())
        users: list[UserState] = []
        for lk in lookups:
            user = load_user(lk.user_id, _decode_hash(next(replies)))
            if lk.event_ids and lk.check_dedupe:
                flags = next(replies)
                user.seen_event_ids = {eid for eid, seen in zip(lk.event_ids, flags, strict=True) if seen}
            users.append(user)
        return users

    async def commit(self, users: Iterable[UserState]) -> list[int]:
        """One CAS script per user in one pipeline: COMMITTED, CONFLICT or DUPLICATE each."""
        pipe = self.redis.pipeline(transaction=False)
        batch = list(users)
        for user in batch:
            to_set, to_del = changed_fields(user)
            args: list[str | int] = [user.version, self.dedupe_ttl, len(to_set)]
            for name, value in to_set.items():
                args += [name, value]
            args.append(len(to_del))
            args += to_del
            args += user.new_event_ids
            await self._commit(
                keys=[self.keys.user(user.user_id), self.keys.dedupe(user.user_id)], args=args, client=pipe
            )
        results = await pipe.execute() if batch else []
        return [int(r) for r in results]

    async def read(self, user_id: str) -> UserState | None:
        fields = _decode_hash(await self.redis.hgetall(self.keys.user(user_id)))
        return load_user(user_id, fields) if fields else None


def _decode_hash(raw: Mapping[bytes | str, bytes | str] | Mapping[str, str]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }
