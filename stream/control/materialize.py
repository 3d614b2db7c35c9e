"""Applies control-log records to Redis, idempotently, with their follow-up work.

The writer (an API process, `stream keys`, the demo) applies its own record
right after the broker acknowledged it, so its answer is already visible to
every other process; each worker also tails the log (`ControlTailer`) and
applies anything missing, which covers a writer that died between the two,
and `stream rebuild` replays the whole log into an empty Redis. The per-key
offset guard in `lua/control_apply.lua` makes all of these safe together.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from stream import metrics
from stream.control.records import KINDS, ControlKind, ControlRecord
from stream.engine.commit import partition_for
from stream.segments import CUSTOM_LIST, segment_from_json
from stream.state.client import RedisClient
from stream.state.jobs import JobKind, JobStore
from stream.state.keys import Keys
from stream.state.lua import LuaRunner, script
from stream.state.members import drop_segment_keys

log = logging.getLogger(__name__)
CONTROL_APPLY = script("control_apply")

# (segment id, user ids, the chunk's log instant) -> adds the known ones to the list segment
ListApplier = Callable[[str, Sequence[str], int], Awaitable[None]]


@dataclass
class Applied:
    record: ControlRecord
    changed: bool
    job_id: str | None = None  # the backfill, cleanup or forget job the record started


class Materializer:
    def __init__(self, redis: RedisClient, lua: LuaRunner, keys: Keys, partitions: int,
                 backfill_group_ms: int, add_list_members: ListApplier | None = None) -> None:
        self.redis = redis
        self.lua = lua
        self.keys = keys
        self.partitions = partitions
        self.backfill_group_ms = backfill_group_ms
        self.jobs = JobStore(redis, keys)
        self.add_list_members = add_list_members

    async def apply(self, record: ControlRecord, follow_up: bool = True) -> Applied:
        kind = record.kind
        spec = KINDS[kind]
        if record.value is None:
            stored = ""
        elif kind == ControlKind.FORGET:
            stored = str(record.timestamp_ms)
        elif kind == ControlKind.LIST:
            stored = str(record.offset)
        else:
            stored = json.dumps(record.value, separators=(",", ":"))
        changed = bool(await self.lua.call(CONTROL_APPLY, [
            self.keys.control_applied, spec.target(self.keys), self.keys.usage, self.keys.segments_version],
            [record.key, record.offset, record.ident, stored, spec.usage_prefix]))
        applied = Applied(record, changed)
        if follow_up and changed:
            applied.job_id = await self._follow_up(record)
        return applied

    async def _follow_up(self, record: ControlRecord) -> str | None:
        kind, value = record.kind, record.value
        if kind == ControlKind.SEGMENT and value is not None:
            seg = segment_from_json(json.dumps(value))
            if seg.kind == CUSTOM_LIST or await self.redis.hexists(self.keys.backfilled, seg.id):
                return None
            found = await self.jobs.for_segment(seg.id, JobKind.BACKFILL)
            if found is not None:
                return found.id
            return await self.jobs.join_backfill(self.lua, seg.id, self.partitions, self.backfill_group_ms,
                                                 int(time.time() * 1000))
        if kind == ControlKind.SEGMENT:
            sid = record.ident
            await drop_segment_keys(self.redis, self.keys, sid)
            with_metrics_removed(sid)
            return await self.jobs.create(JobKind.CLEANUP, sid, self.partitions)
        if kind == ControlKind.FORGET and value is not None:
            uid = record.ident
            return await self.jobs.create(JobKind.FORGET, uid, self.partitions, (uid,),
                                          only_partition=partition_for(uid, self.partitions))
        if kind == ControlKind.LIST and value is not None and self.add_list_members is not None:
            uids = [str(u) for u in value["user_ids"]]
            # A user forgotten after the upload stays out of the list across replays and rebuilds.
            gone = await self.redis.hmget(self.keys.forgotten, uids) if uids else []
            keep = [u for u, at in zip(uids, gone, strict=True) if at is None or int(at) < record.timestamp_ms]
            await self.add_list_members(str(value["segment_id"]), keep, record.timestamp_ms)
        return None

    async def position(self) -> int:
        return int(await self.redis.get(self.keys.control_position) or 0)

    async def set_position(self, offset: int) -> None:
        """Every record below `offset` is applied. Only moves forward (a slower tailer cannot undo)."""
        current = await self.position()
        if offset > current:
            await self.redis.set(self.keys.control_position, offset)


def with_metrics_removed(sid: str) -> None:
    """A deleted segment's gauges go with it, so dashboards do not show ghosts."""
    for gauge in (metrics.SEGMENT_MEMBERS,):
        with contextlib.suppress(KeyError):
            gauge.remove(sid)
