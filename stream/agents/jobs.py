"""Runs the parts of active jobs whose partitions this worker owns.

Backfill: replays a partition of the events log into a new segment's
aggregates (all retained history for past_behavior; the creation grace for
live), then evaluates every known user. Recount: re-evaluates every known
user from their stored state, corrects drift and tallies exact figures.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from stream import metrics
from stream.agents.backfill import read_partition
from stream.agents.engine import Engine
from stream.agents.recount import recount_partition
from stream.config import Settings
from stream.ingest import Invalid, parse_event
from stream.membership import UserState, forget_segments, merge_backfill, reevaluate
from stream.rules import CHANNELS, Aggregate, event_matches, fold, new_aggregate, reachability
from stream.rules import channel_mask as mask_of
from stream.segments import LIVE, Segment, SegmentIndex
from stream.state.bulk import bulk_reader, read_fields
from stream.state.jobs import BACKFILL, CLEANUP, Job, JobStore

log = logging.getLogger(__name__)
CHUNK = 500


class JobRunner:
    def __init__(self, engine: Engine, settings: Settings, owner: str) -> None:
        self.engine = engine
        self.settings = settings
        self.owner = owner
        self.jobs = JobStore(engine.redis, engine.keys)

    async def run_once(self, owned: list[int]) -> None:
        for job_id in await self.jobs.active():
            job = await self.jobs.get(job_id)
            if job is None:
                continue
            seg = (await self.engine.registry.reload()).segments.get(job.segment_id)
            if seg is None and job.type != CLEANUP:
                await self.jobs.complete(job, None, error="segment was deleted")
                continue
            await self._run_parts(job, owned, seg)

    async def _run_parts(self, job: Job, owned: list[int], seg: Segment | None) -> None:
        """Runs this worker's partitions of one job; seg is None only for a cleanup."""
        done = await self.jobs.parts_done(job.id)
        for p in owned:
            if p in done or p >= job.partitions or not await self.jobs.lock(job.id, p, self.owner):
                continue
            try:
                if seg is None:
                    result = await self._cleanup(job, p)
                elif job.type == BACKFILL:
                    result = await self._backfill(job, seg, p)
                else:
                    result = await self._recount(job, seg, p)
            except Exception as exc:
                log.exception("job %s partition %s failed", job.id, p)
                await self.jobs.complete(job, None, error=f"partition {p}: {exc}")
                return
            if await self.jobs.finish_part(job.id, p, result):
                await self._finalize(job, seg)

    async def _cleanup(self, job: Job, p: int) -> dict[str, Any]:
        """Drops a deleted segment from every known user of the partition, so nothing is orphaned."""
        cleaned = 0

        def work(user: UserState, idx: SegmentIndex) -> list[tuple[str, str]]:
            nonlocal cleaned
            before = len(user.dirty)
            forget_segments(user, idx.segments.keys())
            cleaned += int(len(user.dirty) > before)
            return []

        total, done = await self._known_count(p), 0
        async for chunk in self._users(p):
            await self.engine.run_users(chunk, p, work)
            done += len(chunk)
            await self.jobs.progress(job.id, p, min(1.0, done / total), self.owner)
        return {"users": done, "cleaned": cleaned}

    async def _users(self, partition: int) -> AsyncIterator[list[str]]:
        cursor = 0
        while True:
            cursor, chunk = await self.engine.redis.sscan(self.engine.keys.known(partition), cursor, count=CHUNK)
            if chunk:
                yield sorted(str(uid) for uid in chunk)
            if cursor == 0:
                return

    async def _known_count(self, partition: int) -> int:
        return max(1, int(await self.engine.redis.scard(self.engine.keys.known(partition))))

    # -- backfill ---------------------------------------------------------------------------

    async def _backfill(self, job: Job, seg: Segment, p: int) -> dict[str, Any]:
        # Only after the handover has passed is every pre-handover message in the log.
        delay = (seg.handover_ms + 1000) / 1000 - self.engine.clock()
        if delay > 0:
            await asyncio.sleep(delay)
        start_ms = seg.created_at_ms - self.settings.max_future_seconds * 1000 if seg.kind == LIVE else None
        history: dict[str, list[Aggregate]] = {}
        seen: dict[str, set[str]] = {}
        read = 0
        async for msg in read_partition(self.settings.kafka_bootstrap, self.settings.topic_events, p, start_ms,
                                        seg.handover_ms):
            read += 1
            try:
                ev = parse_event(msg.value, msg.timestamp_ms, self.settings.max_future_seconds * 1000)
            except Invalid:
                continue
            if not seg.counts(ev.ts_ms) or ev.event_id in seen.setdefault(ev.user_id, set()):
                continue
            seen[ev.user_id].add(ev.event_id)
            aggs = history.setdefault(ev.user_id, [new_aggregate() for _ in seg.conditions])
            for cond, agg in zip(seg.conditions, aggs, strict=True):
                if event_matches(cond, ev.name, ev.props):
                    fold(cond, agg, ev.ts_ms, ev.props)
        await self.jobs.progress(job.id, p, 0.5, self.owner)

        def work(user: UserState, idx: SegmentIndex) -> list[tuple[str, str]]:
            current = idx.segments.get(seg.id)
            if current is None:
                return []
            # A user met only here (the live agent lags behind the log) is a known user
            # all the same: decide every segment for them now, as the live path would.
            sids = {seg.id} if user.exists else idx.ruled
            user.exists = True
            merge_backfill(user, current, history.get(user.user_id) or [new_aggregate() for _ in seg.conditions])
            reevaluate(user, idx, sids, self.engine.now_ms())
            return []

        total = await self._known_count(p) + len(history)
        done = 0
        async for chunk in self._users(p):
            await self.engine.run_users(chunk, p, work)
            done += len(chunk)
            for uid in chunk:
                history.pop(uid, None)  # merged: the rest are users the live agent has not reached
            await self.jobs.progress(job.id, p, 0.5 + 0.5 * min(1.0, done / total), self.owner)
        unseen = sorted(history)
        for start in range(0, len(unseen), CHUNK):
            await self.engine.run_users(unseen[start : start + CHUNK], p, work, only_existing=False)
            done += len(unseen[start : start + CHUNK])
            await self.jobs.progress(job.id, p, 0.5 + 0.5 * min(1.0, done / total), self.owner)
        return {"events_read": read, "users": done}

    # -- recount ----------------------------------------------------------------------------

    async def _recount(self, job: Job, seg: Segment, p: int) -> dict[str, Any]:
        total = await self._known_count(p)

        async def progress(users: int) -> None:
            await self.jobs.progress(job.id, p, min(1.0, users / total), self.owner)

        return await recount_partition(self.engine, seg, p, self._users(p), progress)

    # -- completion -------------------------------------------------------------------------

    async def _finalize(self, job: Job, seg: Segment | None) -> None:
        parts = await self.jobs.part_results(job.id)
        result: dict[str, Any]
        if seg is None:
            result = {"users": sum(int(r["users"]) for r in parts), "cleaned": sum(int(r["cleaned"]) for r in parts)}
            # Every owner reloaded the definitions before its part, so no batch writes these again.
            await self.engine.segments.purge(job.segment_id)
            await self.engine.samples.delete(job.segment_id)
        elif job.type == BACKFILL:
            result = {
                "events_read": sum(int(r["events_read"]) for r in parts),
                "users": sum(int(r["users"]) for r in parts),
            }
        else:
            result = {
                "size": sum(int(r["size"]) for r in parts),
                "blacklisted": sum(int(r["blacklisted"]) for r in parts),
                "drift": sum(int(r["drift"]) for r in parts),
                "users_scanned": sum(int(r["users"]) for r in parts),
                "reachability": {c: sum(int(r["reachability"][c]) for r in parts) for c in CHANNELS},
                "computed_at_ms": int(time.time() * 1000),
            }
            await self._rebuild_sample(seg.id)
            await self.engine.redis.set(self.engine.keys.exact(seg.id), _json(result))
            metrics.RECOUNT_DURATION.observe(max(0.0, time.time() - job.created_at_ms / 1000))
        await self.jobs.complete(job, result)

    async def _rebuild_sample(self, sid: str) -> None:
        redis, keys = self.engine.redis, self.engine.keys

        async def members() -> AsyncIterator[tuple[str, int]]:
            cursor = 0
            async with bulk_reader(redis) as bulk:
                while True:
                    cursor, chunk = await redis.sscan(keys.members(sid), cursor, count=2000)
                    if chunk:
                        ids = [str(uid) for uid in chunk]
                        rows = await read_fields(redis, bulk, [keys.user(uid) for uid in ids], ("p", "s"))
                        for uid, (profile, subs) in zip(ids, rows, strict=True):
                            yield uid, mask_of(reachability(_loads(profile), _loads(subs)))
                    if cursor == 0:
                        return

        await self.engine.samples.rebuild(sid, members())


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def _loads(raw: str | None) -> dict[str, Any]:
    return dict(json.loads(raw)) if raw else {}
