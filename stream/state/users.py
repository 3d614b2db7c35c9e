"""Reads and writes per-user state with compare-and-set, one pipeline per batch.

A worker owns a partition, so conflicts only come from its own timers and
jobs racing the event path, or a zombie after a rebalance; the version check
turns those into a retry instead of a lost update.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from stream.membership import UserState, apply_commit, changed_fields, load_user
from stream.state.keys import Keys
from stream.state.raw_scripts import RawScript
from stream.state.scripts import lua_source


@dataclass(frozen=True, slots=True)
class Lookup:
    user_id: str
    event_ids: Sequence[str] = ()
    # False: trust the commit script to refuse an already-applied id (-1) instead of
    # asking first; duplicates are rare, so this saves a command for most users.
    check_dedupe: bool = True


COMMITTED, CONFLICT, DUPLICATE = 1, 0, -1


def dedupe_token(event_id: str) -> str:
    """A signed 64-bit hash of the event id, in decimal.

    Redis keeps a set of integers as an intset: 8 bytes per id instead of a
    hashtable entry of ~50 bytes plus the id itself. Two of one user's ids
    colliding within the dedupe window has odds near n^2 / 2^64.
    """
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return str(int.from_bytes(digest, "big", signed=True))


class UserStore:
    """Loads and commits users; with `cache_size` > 0 it also keeps the hash of each
    user it committed, so a worker's next touch of a user costs no read.

    The cache holds exactly what Redis holds: the hash as read, with each
    committed write applied as the script applied it (`apply_commit`). Plain
    dicts of strings, which Python's cyclic GC does not track: a cache of
    decoded users made every full collection walk millions of objects. No
    invalidation is needed for safety: a cached hash carries its version, so if
    anyone else wrote the user since (a zombie, the API's list upload, the
    partition's new owner) the commit answers CONFLICT and the user is read
    again. A hash leaves the cache while work runs on its user and returns
    only once that user's batch is out.
    """

    def __init__(self, redis: Redis, keys: Keys, dedupe_ttl_seconds: int, cache_size: int = 0) -> None:
        self.redis = redis
        self.keys = keys
        self.dedupe_ttl = dedupe_ttl_seconds
        self.cache_size = cache_size
        self._cache: dict[str, dict[str, str]] = {}  # insertion order = least recently used first
        self._commit = redis.register_script(lua_source("user_commit"))
        self._raw_commit = RawScript(redis, lua_source("user_commit"))

    async def load(self, lookups: Sequence[Lookup], use_cache: bool = True) -> list[UserState]:
        """Users plus which of the given event ids they already applied.

        `use_cache=False` for readers that may not commit (a recount's tally): only a
        commit checks the version, so what they read must come from Redis."""
        pipe = self.redis.pipeline(transaction=False)
        cached: dict[str, dict[str, str]] = {}
        for lk in lookups:
            fields = self._cache.pop(lk.user_id, None)
            if fields is not None and use_cache and not lk.check_dedupe:
                cached[lk.user_id] = fields
                continue
            pipe.hgetall(self.keys.user(lk.user_id))
            if lk.event_ids and lk.check_dedupe:
                pipe.smismember(self.keys.dedupe(lk.user_id), [dedupe_token(e) for e in lk.event_ids])
        replies = iter(await pipe.execute() if len(pipe) else [])
        users: list[UserState] = []
        for lk in lookups:
            fields = cached.get(lk.user_id)
            if fields is None:
                fields = _decode_hash(next(replies))
            user = load_user(lk.user_id, fields)
            if self.cache_size > 0:
                user.stored = fields
            if lk.user_id not in cached and lk.event_ids and lk.check_dedupe:
                flags = next(replies)
                user.seen_event_ids = {eid for eid, seen in zip(lk.event_ids, flags, strict=True) if seen}
            users.append(user)
        return users

    def settle(self, user: UserState) -> None:
        """Once every effect of a batch is out: caches the user's hash as Redis now holds it."""
        stored, written = user.stored, user.written
        user.stored = user.written = None
        if self.cache_size <= 0 or stored is None or not (stored or written):
            return
        if written is not None:
            apply_commit(stored, *written)
        self._cache.pop(user.user_id, None)
        self._cache[user.user_id] = stored
        while len(self._cache) > self.cache_size:
            del self._cache[next(iter(self._cache))]

    async def commit(self, users: Iterable[UserState]) -> list[int]:
        """One CAS script per user in one pipeline: COMMITTED, CONFLICT or DUPLICATE each.

        A committed user records what was written, for `settle`."""
        batch = list(users)
        written: list[tuple[dict[str, str], list[str]]] = []
        calls: list[tuple[list[str], list[str | int]]] = []
        for user in batch:
            to_set, to_del = changed_fields(user)
            written.append((to_set, to_del))
            args: list[str | int] = [user.version, self.dedupe_ttl, len(to_set)]
            for name, value in to_set.items():
                args += [name, value]
            args.append(len(to_del))
            args += to_del
            args += [dedupe_token(e) for e in user.new_event_ids]
            calls.append(([self.keys.user(user.user_id), self.keys.dedupe(user.user_id)], args))
        if self._raw_commit.supported:
            replies = await self._raw_commit.run_many(calls)
        else:
            pipe = self.redis.pipeline(transaction=False)
            for keys, args in calls:
                await self._commit(keys=keys, args=args, client=pipe)
            replies = await pipe.execute() if calls else []
        results = [int(r) for r in replies]
        for user, result, fields in zip(batch, results, written, strict=True):
            user.written = fields if result == COMMITTED else None
        return results

    async def close(self) -> None:
        """Closes the raw commit connection (opened on first commit)."""
        await self._raw_commit.close()

    async def read(self, user_id: str) -> UserState | None:
        fields = _decode_hash(await self.redis.hgetall(self.keys.user(user_id)))
        return load_user(user_id, fields) if fields else None


def _decode_hash(raw: Mapping[bytes | str, bytes | str] | Mapping[str, str]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }
