"""Reads and writes per-user state with compare-and-set, one round trip per batch each way.

A worker owns a partition, so conflicts only come from its own timers and
jobs racing the event path, or a zombie after a rebalance; the version check
turns those into a retry instead of a lost update.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from stream.membership import UserState
from stream.state.client import RedisClient
from stream.state.keys import Keys
from stream.state.lua import LuaRunner, script
from stream.state.userhash import apply_commit, changed_fields, commit_args, decode_hash, load_user

USER_COMMIT = script("user_commit")


@dataclass(frozen=True, slots=True)
class Lookup:
    """A user to load. The dedupe window is a field of the hash, so nothing else is asked."""
    user_id: str


COMMITTED, CONFLICT = 1, 0


class UserCache:
    """The hashes of users a worker committed, exactly as Redis holds them after the commit.

    Plain dicts of strings, which Python's cyclic GC does not track: a cache of
    decoded users made every full collection walk millions of objects (p99
    latency 0.25 s -> 0.9 s). No invalidation is needed for safety: a cached
    hash carries its version, so if anyone else wrote the user since (a zombie,
    the API's list upload, the partition's new owner) the commit answers
    CONFLICT and the user is read again. A hash leaves the cache while work
    runs on its user and returns only once that user's batch is out.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._hashes: dict[str, dict[str, str]] = {}  # insertion order = least recently used first

    def take(self, uid: str) -> dict[str, str] | None:
        return self._hashes.pop(uid, None)

    def put(self, uid: str, fields: dict[str, str]) -> None:
        if self.size <= 0:
            return
        self._hashes.pop(uid, None)
        self._hashes[uid] = fields
        while len(self._hashes) > self.size:
            del self._hashes[next(iter(self._hashes))]

    def clear(self) -> None:
        self._hashes.clear()

    def __len__(self) -> int:
        return len(self._hashes)


def settle_into(cache: UserCache, user: UserState) -> None:
    """Once every effect of a batch is out: the user's hash as Redis now holds it goes to the cache."""
    stored, written = user.stored, user.written
    user.stored = user.written = None
    if cache.size <= 0 or stored is None or not (stored or written):
        return
    if written is not None:
        apply_commit(stored, *written)
    cache.put(user.user_id, stored)


class UserStore:
    def __init__(self, redis: RedisClient, lua: LuaRunner, keys: Keys, cache_size: int = 0) -> None:
        self.redis = redis
        self.lua = lua
        self.keys = keys
        self.cache = UserCache(cache_size)

    async def load(self, lookups: Sequence[Lookup], use_cache: bool = True) -> list[UserState]:
        """Users as stored (their dedupe window included), from the cache where it has them.

        `use_cache=False` for readers that may not commit (a recount's tally): only a
        commit checks the version, so what they read must come from Redis."""
        pipe = self.redis.pipeline(transaction=False)
        cached: dict[str, dict[str, str]] = {}
        asked = 0
        for lk in lookups:
            fields = self.cache.take(lk.user_id)
            if fields is not None and use_cache:
                cached[lk.user_id] = fields
                continue
            pipe.hgetall(self.keys.user(lk.user_id))
            asked += 1
        replies = iter(await pipe.execute() if asked else [])
        users: list[UserState] = []
        for lk in lookups:
            fields = cached.get(lk.user_id)
            if fields is None:
                fields = decode_hash(next(replies))
            user = load_user(lk.user_id, fields)
            user.stored = fields
            users.append(user)
        return users

    def settle(self, user: UserState) -> None:
        settle_into(self.cache, user)

    async def commit(self, users: Iterable[UserState]) -> list[int]:
        """One CAS script per user in one round trip: COMMITTED or CONFLICT each.

        A committed user records what was written, for `settle` and the changelog."""
        batch = list(users)
        written = [changed_fields(user) for user in batch]
        calls = [(USER_COMMIT, [self.keys.user(u.user_id)], commit_args(u, w))
                 for u, w in zip(batch, written, strict=True)]
        results = [int(r) for r in await self.lua.call_many(calls)] if calls else []
        for user, result, fields in zip(batch, results, written, strict=True):
            user.written = fields if result == COMMITTED else None
        return results

    async def read(self, user_id: str) -> UserState | None:
        fields = decode_hash(await self.redis.hgetall(self.keys.user(user_id)))
        return load_user(user_id, fields) if fields else None
