"""The engine's store in dicts: the semantics of the Lua scripts, without Redis.

Each method does what its Redis counterpart's script or command does (the
commit's compare-and-set (the dedupe window is a field of the hash), members_apply's set operations and
day counters, sample_update's retained sample via `stream.sketches`), so a
unit test of the engine exercises the same protocol as production. The
integration tier checks the Redis side against the same expectations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from stream.membership import UserState
from stream.segments import EMPTY_INDEX, SegmentIndex
from stream.sketches import RetainedSample
from stream.state.members import MemberChange
from stream.state.segments import MembersApplied
from stream.state.store import Resume, SideEffects
from stream.state.userhash import apply_commit, changed_fields, load_user
from stream.state.users import COMMITTED, CONFLICT, Lookup, UserCache, settle_into


@dataclass
class MemoryEngineStore:
    lg_k: int = 12
    cache_size: int = 0
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    trend: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    samples: dict[str, RetainedSample] = field(default_factory=dict)
    known: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    due: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    identity: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    index: SegmentIndex = EMPTY_INDEX
    resume: dict[int, tuple[Resume, str | None]] = field(default_factory=dict)
    durable_waits: int = 0
    instance_id: str = "memory"

    def __post_init__(self) -> None:
        self.cache = UserCache(self.cache_size)

    def set_definitions(self, index: SegmentIndex) -> None:
        self.index = index

    async def load_users(self, lookups: Sequence[Lookup], use_cache: bool = True) -> list[UserState]:
        out: list[UserState] = []
        for lk in lookups:
            cached = self.cache.take(lk.user_id)
            fields = cached if (cached is not None and use_cache) else dict(self.users.get(lk.user_id, {}))
            user = load_user(lk.user_id, fields)
            user.stored = fields
            out.append(user)
        return out

    async def commit_users(self, users: Sequence[UserState]) -> list[int]:
        results: list[int] = []
        for user in users:
            current = self.users.get(user.user_id, {})
            written = changed_fields(user)
            if current.get("v", "0") != str(user.version):
                results.append(CONFLICT)
                user.written = None
                continue
            stored = dict(current)
            apply_commit(stored, *written)
            self.users[user.user_id] = stored
            user.written = written
            results.append(COMMITTED)
        return results

    def settle(self, user: UserState) -> None:
        settle_into(self.cache, user)

    def drop_cache(self) -> None:
        self.cache.clear()

    async def apply_members(self, changes: Mapping[str, Sequence[MemberChange]]) -> dict[str, MembersApplied]:
        out: dict[str, MembersApplied] = {}
        for sid, rows in changes.items():
            flags: list[bool] = []
            days: dict[str, tuple[int, int]] = {}
            counters = self.trend[sid]
            for op, uid, day in rows:
                if op == "1":
                    changed = uid not in self.members[sid]
                    self.members[sid].add(uid)
                    field_name = f"e:{day}"
                else:
                    changed = uid in self.members[sid]
                    self.members[sid].discard(uid)
                    field_name = f"x:{day}"
                if changed:
                    counters[field_name] = counters.get(field_name, 0) + 1
                    days[day] = (counters.get(f"e:{day}", 0), counters.get(f"x:{day}", 0))
                flags.append(changed)
            out[sid] = MembersApplied(flags, days)
        return out

    async def apply_samples(self, changes: Mapping[str, Sequence[tuple[str, int | None]]]) -> None:
        for sid, rows in changes.items():
            sample = self.samples.setdefault(sid, RetainedSample(self.lg_k))
            latest: dict[str, int | None] = {}
            for uid, mask in rows:
                latest[uid] = mask
            for uid, mask in latest.items():
                sample.update(uid, mask is not None, mask or 0)

    async def side_effects(self, effects: SideEffects) -> dict[str, int]:
        for p, uids in effects.known.items():
            self.known[p].update(uids)
        for p, scores in effects.due.items():
            self.due[p].update(scores)
        for p, uids in effects.undue.items():
            for uid in uids:
                self.due[p].pop(uid, None)
        for op, kind, value, uid in effects.identity:
            ids = self.identity.setdefault((kind, value), [])
            if op == "+" and uid not in ids:
                ids.append(uid)
            elif op == "-" and uid in ids:
                ids.remove(uid)
            if not ids:
                self.identity.pop((kind, value))
        return {sid: len(self.members[sid]) for sid in effects.sizes}

    async def due_users(self, partitions: Sequence[int], now_ms: int, limit: int) -> list[tuple[str, int, int]]:
        found: list[tuple[str, int, int]] = []
        for p in partitions:
            rows = sorted((score, uid) for uid, score in self.due[p].items() if score <= now_ms)[:limit]
            found += [(uid, p, score) for score, uid in rows]
        return found

    async def definitions_version(self) -> int:
        return self.index.version

    async def load_definitions(self) -> SegmentIndex:
        return self.index

    async def read_resume(self, partition: int) -> tuple[Resume, str | None]:
        offsets, token = self.resume.get(partition, ({}, None))
        return dict(offsets), token

    async def advance_resume(self, partition: int, token: str, expected: str | None,
                             offsets: Resume) -> tuple[Resume, str | None] | None:
        current, current_token = self.resume.get(partition, ({}, None))
        if expected is not None and current_token != expected:
            return dict(current), current_token
        self.resume[partition] = ({**current, **offsets}, token)
        return None

    async def wait_durable(self) -> None:
        self.durable_waits += 1

    async def instance(self) -> str:
        return self.instance_id

    def restart_seen(self) -> bool:
        return False

    async def delete_user(self, user_id: str, partition: int, identities: Sequence[tuple[str, str]]) -> None:
        self.cache.take(user_id)
        self.users.pop(user_id, None)
        self.known[partition].discard(user_id)
        self.due[partition].pop(user_id, None)
        for kind, value in identities:
            ids = self.identity.get((kind, value), [])
            if user_id in ids:
                ids.remove(user_id)
            if not ids:
                self.identity.pop((kind, value), None)

    async def close(self) -> None:
        return None
