"""Everything people author, as operations: check, log to Kafka, materialise, start follow-up jobs.

The API, `stream keys`, the demo and the tests all create segments, lists,
campaigns, keys and forgets here, so a thing is always born the same way:
acknowledged by the broker before anyone is told it exists (docs/DURABILITY.md).
Checks that span two things (a campaign's segment exists; a used segment is
not deleted) run under the control lock, so a delete and an attach cannot
interleave between check and log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from stream.control.log import ControlLog
from stream.control.records import ControlKind
from stream.rules import SegmentSpec, referenced_segments
from stream.segments import CUSTOM_LIST, Segment, make_segment
from stream.state.campaigns import CampaignStore, Usage, UserKind
from stream.state.client import RedisClient
from stream.state.keys import Keys
from stream.state.segments import SegmentStore

LOCK_MS = 10_000
SCOPES = ("read", "pii", "write", "admin")


class InUse(Exception):
    def __init__(self, usage: Usage) -> None:
        super().__init__(f"in use: {usage}")
        self.usage = usage


class Missing(Exception):
    def __init__(self, segment_id: str) -> None:
        super().__init__(f"segment {segment_id!r} does not exist")
        self.segment_id = segment_id


@dataclass(frozen=True)
class NewKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    token: str  # shown once; only its hash is stored


def key_hash(secret: str) -> str:
    """Keys carry >= 192 random bits, so a fast hash is enough (no password stretching needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """`lsk_<id>_<secret>` -> (id, secret): the id finds the record, the secret is compared in constant time."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "lsk" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def segment_record(seg: Segment) -> dict[str, Any]:
    return {**seg.to_dict(), "uses": sorted(referenced_segments(seg.rule)) if seg.rule is not None else []}


class Catalog:
    def __init__(self, redis: RedisClient, keys: Keys, log: ControlLog, partitions: int) -> None:
        self.redis = redis
        self.keys = keys
        self.log = log
        self.partitions = partitions
        self.segments = SegmentStore(redis, log.materializer.lua, keys)
        self.campaigns = CampaignStore(redis, keys)

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        token = uuid.uuid4().hex
        delay = 0.005
        while not await self.redis.set(self.keys.control_lock, token, nx=True, px=LOCK_MS):
            await asyncio.sleep(delay)  # held for one check-and-log (ms); a crashed holder expires
            delay = min(delay * 2, 0.1)
        try:
            yield
        finally:
            if await self.redis.get(self.keys.control_lock) == token:
                await self.redis.delete(self.keys.control_lock)

    # -- segments ---------------------------------------------------------------------------------

    async def create_segment(self, spec: SegmentSpec, created_ms: int | None = None,
                             segment_id: str | None = None) -> tuple[Segment, str | None]:
        """Logs the definition and queues (or joins) its creation backfill; returns (segment, job id)."""
        created = int(time.time() * 1000) if created_ms is None else created_ms
        seg = make_segment(segment_id or f"s-{uuid.uuid4().hex[:10]}", spec.name, spec.kind, spec.rule, created)
        uses = referenced_segments(seg.rule) if seg.rule is not None else set()
        if uses:
            async with self.locked():
                for sid in sorted(uses):
                    if not await self.segments.exists(sid):
                        raise Missing(sid)
                applied = await self.log.write(ControlKind.SEGMENT, seg.id, segment_record(seg))
        else:
            applied = await self.log.write(ControlKind.SEGMENT, seg.id, segment_record(seg))
        return seg, (applied.job_id if seg.kind != CUSTOM_LIST else None)

    async def update_segment(self, seg: Segment) -> bool:
        """Rename or hide; False when the segment is gone (a rename cannot resurrect it)."""
        async with self.locked():
            if not await self.segments.exists(seg.id):
                return False
            await self.log.write(ControlKind.SEGMENT, seg.id, segment_record(seg))
            return True

    async def delete_segment(self, sid: str) -> str | None:
        """Tombstones the definition (and its list chunks); returns the cleanup job id.
        Raises InUse when campaigns, journeys or other segments still use it."""
        async with self.locked():
            usage = await self.campaigns.usage(sid)
            if usage.total:
                raise InUse(usage)
            chunks = [f for f in await self.redis.hkeys(self.keys.list_chunks) if str(f).startswith(f"{sid}:")]
            for chunk in chunks:
                await self.log.write(ControlKind.LIST, str(chunk), None)
            applied = await self.log.write(ControlKind.SEGMENT, sid, None)
        return applied.job_id

    async def mark_backfilled(self, sid: str) -> None:
        await self.log.write(ControlKind.BACKFILLED, sid, {"segment_id": sid, "at_ms": int(time.time() * 1000)})

    # -- lists ------------------------------------------------------------------------------------

    async def add_list_chunk(self, sid: str, user_ids: Sequence[str]) -> None:
        """Logs resolved, known user ids as one chunk, then adds them (a replay adds the same)."""
        if not user_ids:
            return
        chunk = uuid.uuid4().hex[:12]
        await self.log.write(ControlKind.LIST, f"{sid}:{chunk}", {"segment_id": sid, "user_ids": list(user_ids)})

    # -- campaigns and journeys ---------------------------------------------------------------------

    async def add_user_of(self, kind: UserKind, fields: dict[str, Any], segment_ids: list[str]) -> dict[str, Any]:
        """Stores a campaign or journey; raises Missing naming the first segment that does not exist."""
        item_id = f"{'cmp' if kind == UserKind.CAMPAIGN else 'jrn'}-{uuid.uuid4().hex[:10]}"
        item = {"id": item_id, **fields, "segment_ids": segment_ids, "uses": segment_ids,
                "created_at_ms": int(time.time() * 1000)}
        async with self.locked():
            for sid in segment_ids:
                if not await self.segments.exists(sid):
                    raise Missing(sid)
            await self.log.write(_KIND_OF[kind], item_id, item)
        return item

    async def remove_user_of(self, kind: UserKind, item_id: str) -> bool:
        if await self.campaigns.get(kind, item_id) is None:
            return False
        await self.log.write(_KIND_OF[kind], item_id, None)
        return True

    # -- API keys ---------------------------------------------------------------------------------

    async def create_key(self, name: str, scopes: Sequence[str]) -> NewKey:
        bad = [s for s in scopes if s not in SCOPES]
        if bad or not scopes:
            raise ValueError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
        async with self.locked():
            if await self.key_by_name(name) is not None:
                raise ValueError(f"a key named {name!r} exists; revoke it first")
            key_id = secrets.token_hex(6)
            secret = secrets.token_urlsafe(32)  # 256 random bits
            record = {"id": key_id, "name": name, "scopes": sorted(set(scopes), key=SCOPES.index),
                      "sha256": key_hash(secret), "created_at_ms": int(time.time() * 1000)}
            await self.log.write(ControlKind.API_KEY, key_id, record)
        return NewKey(key_id, name, tuple(sorted(set(scopes), key=SCOPES.index)), f"lsk_{key_id}_{secret}")

    async def keys_list(self) -> list[dict[str, Any]]:
        raw = await self.redis.hvals(self.keys.api_keys)
        return sorted((json.loads(r) for r in raw), key=lambda r: (r["created_at_ms"], r["name"]))

    async def key_by_name(self, name: str) -> dict[str, Any] | None:
        return next((k for k in await self.keys_list() if k["name"] == name), None)

    async def revoke_key(self, name: str) -> bool:
        found = await self.key_by_name(name)
        if found is None:
            return False
        await self.log.write(ControlKind.API_KEY, str(found["id"]), None)
        return True

    # -- forgetting users ---------------------------------------------------------------------------

    async def forget_user(self, uid: str) -> str | None:
        """Logs the forget (its append instant marks what input is never applied again) and
        starts the job that ends the user's memberships and removes their state."""
        applied = await self.log.write(ControlKind.FORGET, uid, {"user_id": uid})
        return applied.job_id


_KIND_OF = {UserKind.CAMPAIGN: ControlKind.CAMPAIGN, UserKind.JOURNEY: ControlKind.JOURNEY}

