"""What the engine asks of its state, as one interface with a Redis and an in-memory implementation.

The engine (`stream.engine`) only talks to an `EngineStore`; `RedisEngineStore`
is production (one Redis or a cluster), `stream.state.memory.MemoryEngineStore`
is the same semantics in dicts, so the engine's unit tests run without Redis
(as quix-streams' `state/memory` and bytewax's `testing` do). The Redis side's
commands all touch one hash tag each (cluster rule); its batches go over the
raw RESP router.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import hiredis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from stream.membership import UserState
from stream.segments import SegmentIndex
from stream.state.client import RedisClient
from stream.state.keys import Keys
from stream.state.lua import LuaRunner, script
from stream.state.members import MemberChange
from stream.state.resp import Command, RedisRestarted
from stream.state.sample import SampleStore
from stream.state.segments import MembersApplied, SegmentStore
from stream.state.users import Lookup, UserStore

IDENTITY_UPDATE = script("identity_update")
RESUME_ADVANCE = script("resume_advance")
REPLICA_INFO_SECONDS = 5.0

Resume = dict[str, int]  # topic -> next offset


class ReplicasBehind(RedisConnectionError):
    """A Redis master's replicas did not acknowledge the batch's writes in time."""




@dataclass
class SideEffects:
    """Per-partition and per-identity writes that follow a batch's commits."""

    known: dict[int, list[str]] = field(default_factory=dict)
    due: dict[int, dict[str, int]] = field(default_factory=dict)
    undue: dict[int, list[str]] = field(default_factory=dict)
    identity: list[tuple[str, str, str, str]] = field(default_factory=list)  # (op, kind, value, user id)
    sizes: list[str] = field(default_factory=list)  # segments whose size to report


class EngineStore(Protocol):
    async def load_users(self, lookups: Sequence[Lookup], use_cache: bool = True) -> list[UserState]: ...
    async def commit_users(self, users: Sequence[UserState]) -> list[int]: ...
    def settle(self, user: UserState) -> None: ...
    def drop_cache(self) -> None: ...
    async def apply_members(self, changes: Mapping[str, Sequence[MemberChange]]) -> dict[str, MembersApplied]: ...
    async def apply_samples(self, changes: Mapping[str, Sequence[tuple[str, int | None]]]) -> None: ...
    async def side_effects(self, effects: SideEffects) -> dict[str, int]: ...
    async def due_users(self, partitions: Sequence[int], now_ms: int, limit: int) -> list[tuple[str, int, int]]: ...
    async def definitions_version(self) -> int: ...
    async def load_definitions(self) -> SegmentIndex: ...
    async def read_resume(self, partition: int) -> tuple[Resume, str | None]: ...
    async def advance_resume(self, partition: int, token: str, expected: str | None,
                             offsets: Resume) -> tuple[Resume, str | None] | None: ...
    async def wait_durable(self) -> None: ...
    async def delete_user(self, user_id: str, partition: int, identities: Sequence[tuple[str, str]]) -> None: ...
    async def instance(self) -> str: ...
    def restart_seen(self) -> bool: ...
    async def close(self) -> None: ...


def parse_resume(flat: Mapping[str, str]) -> tuple[Resume, str | None]:
    return {k: int(v) for k, v in flat.items() if k != "w"}, flat.get("w")


class RedisEngineStore:
    def __init__(self, redis: RedisClient, lua: LuaRunner, keys: Keys, users: UserStore, segments: SegmentStore,
                 samples: SampleStore, wait_replicas: int = 0, wait_timeout_ms: int = 1000) -> None:
        self.redis = redis
        self.lua = lua
        self.keys = keys
        self.users = users
        self.segments = segments
        self.samples = samples
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._replicas: dict[tuple[str, int], int] = {}
        self._replicas_at = 0.0
        self._tags: dict[tuple[str, int], str] = {}
        self._run_ids: dict[tuple[str, int], str] = {}  # from the last instance(): what a resume move checks

    async def load_users(self, lookups: Sequence[Lookup], use_cache: bool = True) -> list[UserState]:
        return await self.users.load(lookups, use_cache)

    async def commit_users(self, users: Sequence[UserState]) -> list[int]:
        return await self.users.commit(users)

    def settle(self, user: UserState) -> None:
        self.users.settle(user)

    def drop_cache(self) -> None:
        self.users.cache.clear()

    async def apply_members(self, changes: Mapping[str, Sequence[MemberChange]]) -> dict[str, MembersApplied]:
        return await self.segments.apply_members(changes)

    async def apply_samples(self, changes: Mapping[str, Sequence[tuple[str, int | None]]]) -> None:
        await self.samples.apply(changes)

    async def side_effects(self, effects: SideEffects) -> dict[str, int]:
        """Over the raw router, like the commits they follow: a Redis that restarted under the
        batch makes this fail (RedisRestarted) rather than drop a timer on a state it lost."""
        commands: list[Command] = []
        for partition, uids in effects.known.items():
            key = self.keys.known(partition)
            commands.append((key, [b"SADD", key.encode(), *(u.encode() for u in uids)]))
        for partition, scores in effects.due.items():  # one command per partition, not per user
            key = self.keys.due(partition)
            pairs = [part for uid, at in scores.items() for part in (str(at).encode(), uid.encode())]
            commands.append((key, [b"ZADD", key.encode(), *pairs]))
        for partition, uids in effects.undue.items():
            key = self.keys.due(partition)
            commands.append((key, [b"ZREM", key.encode(), *(u.encode() for u in uids)]))
        for sid in effects.sizes:
            key = self.keys.member_count(sid)
            commands.append((key, [b"GET", key.encode()]))
        replies = await self.lua.router.execute(commands)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise ResponseError(str(reply))
        if effects.identity:
            await self.lua.call_many([(IDENTITY_UPDATE, [self.keys.identity(kind, value)], [op, value, uid])
                                      for op, kind, value, uid in effects.identity])
        sizes = replies[len(replies) - len(effects.sizes):] if effects.sizes else []
        return {sid: int(n or 0) for sid, n in zip(effects.sizes, sizes, strict=True)}

    async def due_users(self, partitions: Sequence[int], now_ms: int, limit: int) -> list[tuple[str, int, int]]:
        pipe = self.redis.pipeline(transaction=False)
        for p in partitions:
            pipe.zrangebyscore(self.keys.due(p), "-inf", now_ms, start=0, num=limit, withscores=True)
        found: list[tuple[str, int, int]] = []
        for p, rows in zip(partitions, await pipe.execute() if partitions else [], strict=True):
            found += [(str(uid), p, int(score)) for uid, score in rows]
        return found

    async def definitions_version(self) -> int:
        return await self.segments.version()

    async def load_definitions(self) -> SegmentIndex:
        return await self.segments.load_index()

    async def read_resume(self, partition: int) -> tuple[Resume, str | None]:
        flat = await self.redis.hgetall(self.keys.resume(partition))
        return parse_resume({str(k): str(v) for k, v in flat.items()})

    async def advance_resume(self, partition: int, token: str, expected: str | None,
                             offsets: Resume) -> tuple[Resume, str | None] | None:
        key = self.keys.resume(partition)
        run_id = self._run_ids.get(await self.lua.router.node_for(key), "*")
        args: list[str | int] = [token, "*" if expected is None else expected, run_id]
        for topic, offset in sorted(offsets.items()):
            args += [topic, offset]
        reply = await self.lua.call(RESUME_ADVANCE, [key], args)
        if int(reply[0]) == 1:
            return None
        if int(reply[0]) == -1:
            raise RedisRestarted(f"Redis restarted (run_id {run_id} -> {reply[1]}) before the resume point moved")
        flat = [str(x) for x in reply[1:]]
        return parse_resume(dict(zip(flat[::2], flat[1::2], strict=True)))

    def restart_seen(self) -> bool:
        """A command was refused because its Redis is another process now (see `RespRouter._fence`)."""
        return self.lua.router.restart_seen

    async def instance(self) -> str:
        """Which Redis processes hold the data now: each master's address and run_id (a new one
        after a restart or a failover). A change during a batch means its writes may be gone."""
        infos = await self.lua.router.on_every_master([b"INFO", b"server"], fenced=False)
        ids = []
        self._run_ids = {}
        for node, info in sorted(infos.items()):
            run_id = next((line.split(":", 1)[1].strip() for line in str(info).splitlines()
                           if line.startswith("run_id:")), "")
            if not run_id:  # not INFO's answer: never take it for a restart; start the connections afresh
                await self.lua.router.close()
                raise RedisConnectionError(f"redis {node[0]}:{node[1]} answered INFO with {str(info)[:80]!r}")
            self._run_ids[node] = run_id
            ids.append(f"{node[0]}:{node[1]}={run_id}")
        # From here on, commands reach these processes: the caller compares the answer with the
        # instance it last saw and, on a change, stops its step or reconciles before the next.
        self.lua.router.accept(self._run_ids)
        return ",".join(ids)

    async def delete_user(self, user_id: str, partition: int, identities: Sequence[tuple[str, str]]) -> None:
        self.users.cache.take(user_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(self.keys.user(user_id))
        pipe.srem(self.keys.known(partition), user_id)
        pipe.zrem(self.keys.due(partition), user_id)
        await pipe.execute()
        if identities:
            await self.lua.call_many([(IDENTITY_UPDATE, [self.keys.identity(kind, value)], ["-", value, user_id])
                                      for kind, value in identities])

    async def wait_durable(self) -> None:
        """WAIT on every master for the replicas attached to it (none attached: nothing to wait for).

        WAIT covers the writes of the connection it runs on, up to that
        connection's last write; a watermark SET first makes that "everything
        this master executed so far", whichever connection wrote it."""
        if self.wait_replicas <= 0:
            return
        router = self.lua.router
        now = time.monotonic()
        masters = await router.masters()
        if now - self._replicas_at > REPLICA_INFO_SECONDS or set(masters) != set(self._replicas):
            # Also at once after a failover: the old master is gone and the new one's replicas
            # are what must acknowledge.
            self._replicas_at = now
            infos = await router.on_every_master([b"INFO", b"replication"])
            self._replicas = {node: _connected_replicas(str(info)) for node, info in infos.items()}
        for node, attached in self._replicas.items():
            want = min(self.wait_replicas, attached)
            if want <= 0:
                continue
            tag = await self._tag_for(node)
            reply = await router.on_node(node, [
                [b"SET", self.keys.watermark(tag).encode(), str(time.time_ns()).encode()],
                [b"WAIT", str(want).encode(), str(self.wait_timeout_ms).encode()]])
            if isinstance(reply[0], hiredis.ReplyError):
                # The watermark did not land (its slot moved: MOVED): a WAIT behind no write of its
                # own connection returns at once and proves nothing.
                self._tags.pop(node, None)
                self._replicas_at = 0.0
                raise ReplicasBehind(f"redis {node[0]}:{node[1]}: watermark refused ({reply[0]})")
            if isinstance(reply[1], hiredis.ReplyError) or int(reply[1]) < want:
                self._replicas_at = 0.0  # look again: a replica may have gone
                raise ReplicasBehind(f"redis {node[0]}:{node[1]}: {reply[1]} of {want} replicas acknowledged "
                                     f"within {self.wait_timeout_ms} ms")

    async def _tag_for(self, node: tuple[str, int]) -> str:
        router = self.lua.router
        if not router.ep.cluster:
            return "w"
        if node not in self._tags:
            await router.node_for(None)
            slots = router._slots or []
            owned = {s for s, n in enumerate(slots) if n == node}
            if not owned:  # not a master any more: the map is read again on the next round
                raise RedisConnectionError(f"redis {node[0]}:{node[1]} serves no slot")
            i = 0
            while int(key_slot(f"w{i}".encode())) not in owned:
                i += 1
            self._tags[node] = f"w{i}"
        return self._tags[node]

    async def close(self) -> None:
        await self.lua.close()


def _connected_replicas(info: str) -> int:
    """Replicas that can acknowledge now: `state=online` in INFO replication. One still loading
    its first sync (a restarted old master rejoining) counts once it is, so WAIT does not block
    on it for the whole timeout meanwhile."""
    online = 0
    for line in info.splitlines():
        if line.startswith("slave") and ":" in line and "state=online" in line.split(":", 1)[1]:
            online += 1
    return online
