"""Runs the parts of active jobs whose partitions this worker owns, several at once.

Job kinds are a table (`KINDS`): each says how to run one partition's part
and how to combine the parts. Parts run as concurrent tasks, up to
`STREAM_JOB_CONCURRENCY` for backfills and cleanups, and recounts and
forgets in a pool of their own, so an interactive Exact recount never waits
behind a wave of creation backfills; while one runs, backfill and cleanup
parts of the same process pause between chunks (`Yield`). Every chunk of a
part takes the engine lock like a batch, so jobs and the stream interleave
safely.

- backfill: one scan of a partition's events for every segment created
  together (`stream.engine.backfill`), then one pass over the users who can
  enter (those with history, or every known user when a rule needs to);
- recount: re-evaluates every known user from their stored state, corrects
  drift and tallies exact figures;
- cleanup: drops a deleted segment from every known user;
- forget: ends a forgotten user's memberships and removes their state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream import metrics
from stream.config import Settings
from stream.engine.backfill import LogSource, SourceUnavailable, fold_partition
from stream.engine.engine import Engine
from stream.engine.recount import recount_partition
from stream.membership import EXIT, Transition, UserState, forget_segments, merge_backfill, reevaluate
from stream.outputs import OutputUnavailable
from stream.rules import CHANNELS, channel_mask, reachability
from stream.rules.jsonio import loads
from stream.segments import Segment, SegmentIndex
from stream.state.bulk import read_users, windows_with_fields
from stream.state.client import RedisClient
from stream.state.jobs import Job, JobKind, JobStore
from stream.state.keys import Keys
from stream.state.members import drop_segment_keys
from stream.state.resp import RedisRestarted, RespRouter
from stream.state.sample import SampleStore
from stream.state.userhash import PROFILE, SUBSCRIPTIONS
from stream.state.walk import MemberWalk

log = logging.getLogger(__name__)
CHUNK = 500
TRANSIENT = (SourceUnavailable, OutputUnavailable, RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
Result = dict[str, Any]


@dataclass(frozen=True)
class KindSpec:
    part: Callable[[JobRunner, Job, int], Awaitable[Result]]
    finish: Callable[[JobRunner, Job, list[Result]], Awaitable[Result]]
    needs_segment: bool
    interactive: bool  # runs in the pool that backfills cannot fill


class Yield:
    """Interactive parts (recounts, forgets) running in this process, which backfill and cleanup
    chunks wait for: all share one event loop and one core, so a recount beside four backfill
    parts ran at a fifth of the loop (3.3 s alone, 10.8 s beside a 50+50 creation at 100k users).
    Interactive parts are short; a backfill resumes as soon as none runs."""

    def __init__(self) -> None:
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def interactive(self) -> Iterator[None]:
        self._running += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._running -= 1
            if not self._running:
                self._idle.set()

    async def wait(self) -> None:
        await self._idle.wait()


class JobRunner:
    def __init__(self, engine: Engine, settings: Settings, owner: str, redis: RedisClient, keys: Keys,
                 router: RespRouter, samples: SampleStore, log_source: LogSource,
                 on_backfilled: Callable[[Sequence[str]], Awaitable[None]]) -> None:
        self.engine = engine
        self.settings = settings
        self.owner = owner
        self.redis = redis
        self.keys = keys
        self.router = router
        self.samples = samples
        self.log = log_source
        self.on_backfilled = on_backfilled
        self.jobs = JobStore(redis, keys)
        self._running: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._interactive: dict[str, bool] = {}
        self.yielding = Yield()

    async def run_once(self, owned: Sequence[int]) -> None:
        """Starts the parts this worker may run now; returns without waiting for them."""
        self._running = {k: t for k, t in self._running.items() if not t.done()}
        busy = {False: 0, True: 0}
        for (job_id, _), _task in self._running.items():
            busy[self._interactive.get(job_id, False)] += 1
        index = await self.engine.definitions.reload()
        found = [j for j in [await self.jobs.get(i) for i in await self.jobs.active()] if j is not None]
        found.sort(key=lambda j: (not KINDS[j.kind].interactive, j.created_at_ms))
        for job in found:
            spec = KINDS[job.kind]
            if spec.needs_segment and not any(t in index.segments for t in job.targets):
                await self.jobs.complete(job, None, error="segment was deleted")
                continue
            if job.kind == JobKind.BACKFILL and not await self._backfill_ready(job, index):
                continue
            done = await self.jobs.parts_done(job.id)
            for p in owned:
                if busy[spec.interactive] >= self.settings.job_concurrency:
                    break
                if not job.covers(p) or p in done or (job.id, p) in self._running:
                    continue
                if not await self.jobs.lock(job.id, p, self.owner):
                    continue
                self._interactive[job.id] = spec.interactive
                busy[spec.interactive] += 1
                self._running[job.id, p] = asyncio.create_task(self._run_part(job, p))

    async def drain(self) -> None:
        """Waits for every running part (tests, shutdown)."""
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _run_part(self, job: Job, p: int) -> None:
        spec = KINDS[job.kind]
        restarts = self.engine.restarts
        try:
            with self.yielding.interactive() if spec.interactive else contextlib.nullcontext():
                result = await spec.part(self, job, p)
            if self.engine.restarts != restarts:
                # Redis restarted under the part: what it wrote before may be gone (a copy restored
                # older) while its own progress is in memory. It runs again, whole; parts are
                # idempotent (a backfill merges a user once, a recount tallies afresh).
                raise RedisRestarted(f"Redis restarted while job {job.id} ran partition {p}")
        except TRANSIENT as exc:  # an outage is not the job's failure: the part runs again later
            log.warning("job %s (%s) partition %s paused by an outage (%s); it will run again", job.id,
                        job.kind, p, exc)
            with contextlib.suppress(*TRANSIENT):
                await self.redis.delete(self.keys.job_lock(job.id, p))
            return
        except Exception as exc:
            log.exception("job %s (%s) partition %s failed", job.id, job.kind, p)
            metrics.JOB_FAILURES.labels(str(job.kind)).inc()
            await self.jobs.complete(job, None, error=f"partition {p}: {exc}")
            return
        if await self.jobs.finish_part(job.id, p, result):
            fresh = await self.jobs.get(job.id) or job
            result = await spec.finish(self, fresh, await self.jobs.part_results(job.id))
            await self.jobs.complete(fresh, result)

    # -- helpers ------------------------------------------------------------------------------------

    async def users(self, partition: int, background: bool = False) -> AsyncIterator[list[str]]:
        """The partition's known users in chunks; `background` chunks wait for interactive parts."""
        cursor = 0
        while True:
            cursor, chunk = await self.redis.sscan(self.keys.known(partition), cursor, count=CHUNK)
            if chunk:
                if background:
                    await self.yielding.wait()
                yield sorted(str(uid) for uid in chunk)
            if cursor == 0:
                return

    async def known_count(self, partition: int) -> int:
        return max(1, int(await self.redis.scard(self.keys.known(partition))))

    async def progress(self, job: Job, p: int, fraction: float) -> None:
        await self.jobs.progress(job.id, p, min(1.0, fraction), self.owner)

    def targets(self, job: Job) -> list[Segment]:
        index = self.engine.definitions.index
        return [index.segments[t] for t in job.targets if t in index.segments]

    # -- backfill -----------------------------------------------------------------------------------

    async def _backfill_ready(self, job: Job, index: SegmentIndex) -> bool:
        """A shared backfill starts once it stopped gathering segments and every target's
        handover has passed (only then is every pre-handover message in the log)."""
        now = self.engine.now_ms()
        if now < job.open_until_ms:
            return False
        targets = await self.jobs.seal(job.id) if not job.sealed else job.targets
        handovers = [index.segments[t].handover_ms for t in targets or () if t in index.segments]
        return bool(handovers) and now >= max(handovers) + 1000


async def _backfill_part(runner: JobRunner, job: Job, p: int) -> Result:
    """One scan of the partition's log for every target, then a pass over the users who can
    enter: every known user only when some target's verdict needs their profile (or admits
    users without events); else only the users the scan found events of. So a wave of "did X"
    segments costs one scan plus the users with history, not known users x segments."""
    targets = runner.targets(job)
    history = await fold_partition(runner.log, runner.settings.topic_events, p, targets, runner.engine.limits,
                                   runner.engine.definitions.index.forgotten, runner.yielding.wait)
    await runner.progress(job, p, 0.5)
    loud = frozenset(s.id for s in targets if s.without_events is not False)

    def work(user: UserState, idx: SegmentIndex) -> list[tuple[str, str]]:
        found: set[str] = set()
        for sid in history.segments_of(user.user_id) & idx.segments.keys():
            extra = history.for_user(user.user_id, idx.segments[sid])
            if extra is not None:
                merge_backfill(user, idx.segments[sid], extra)
                found.add(sid)
        # A user met only here (the live agent lags behind the log) is a known user all the
        # same: decide every segment for them now, as the live path would.
        sids = (loud | found) if user.exists else idx.ruled
        user.exists = True
        reevaluate(user, idx, sids & idx.segments.keys(), runner.engine.now_ms())
        return []

    total = (await runner.known_count(p) if loud else 0) + len(history.entries)
    done = 0
    if loud:
        async for chunk in runner.users(p, background=True):
            await runner.engine.run_users(chunk, p, work)
            done += len(chunk)
            for uid in chunk:
                history.done(uid)  # merged: the rest are users the pass has not reached
            await runner.progress(job, p, 0.5 + 0.5 * done / total)
    rest = history.users()
    for start in range(0, len(rest), CHUNK):
        await runner.yielding.wait()
        await runner.engine.run_users(rest[start:start + CHUNK], p, work, only_existing=False)
        done += len(rest[start:start + CHUNK])
        await runner.progress(job, p, 0.5 + 0.5 * done / max(1, total))
    return {"events_read": history.events_read, "users": done}


async def _backfill_finish(runner: JobRunner, job: Job, parts: list[Result]) -> Result:
    await runner.on_backfilled([t.id for t in runner.targets(job)])
    return {"events_read": sum(int(r["events_read"]) for r in parts), "users": sum(int(r["users"]) for r in parts),
            "segments": list(job.targets)}


# -- recount --------------------------------------------------------------------------------------


async def _recount_part(runner: JobRunner, job: Job, p: int) -> Result:
    seg = runner.targets(job)[0]
    total = await runner.known_count(p)

    async def progress(users: int) -> None:
        await runner.progress(job, p, users / total)

    router = RespRouter(runner.router.ep)  # parts run concurrently; a router has one owner at a time

    async def read(ids: Sequence[str], fields: Sequence[str]) -> list[list[str | None]]:
        return await read_users(router, runner.keys, ids, fields)

    try:
        return await recount_partition(runner.engine, seg, p, runner.users(p), read, progress)
    finally:
        await router.close()


async def _recount_finish(runner: JobRunner, job: Job, parts: list[Result]) -> Result:
    sid = job.segment_id
    result = {
        "size": sum(int(r["size"]) for r in parts),
        "blacklisted": sum(int(r["blacklisted"]) for r in parts),
        "drift": sum(int(r["drift"]) for r in parts),
        "users_scanned": sum(int(r["users"]) for r in parts),
        "reachability": {c: sum(int(r["reachability"][c]) for r in parts) for c in CHANNELS},
        "computed_at_ms": int(time.time() * 1000),
    }
    router = RespRouter(runner.router.ep)
    try:
        await rebuild_sample(runner.redis, router, runner.keys, runner.samples, sid)
    finally:
        await router.close()
    await runner.redis.set(runner.keys.exact(sid), json.dumps(result, separators=(",", ":")))
    metrics.RECOUNT_DURATION.observe(max(0.0, time.time() - job.created_at_ms / 1000))
    return result


async def rebuild_sample(redis: RedisClient, router: RespRouter, keys: Keys, samples: SampleStore,
                         sid: str) -> None:
    """The segment's estimate sample rebuilt from its member set (theta back to 1)."""

    async def members() -> AsyncIterator[tuple[str, int]]:
        walk = MemberWalk(router, keys, sid).windows()
        async for ids, rows in windows_with_fields(router, keys, walk, (PROFILE, SUBSCRIPTIONS)):
            for uid, (profile, subs) in zip(ids, rows, strict=True):
                yield uid, channel_mask(reachability(loads(profile) if profile else {}, loads(subs) if subs else {}))

    await samples.rebuild(sid, members())


# -- cleanup --------------------------------------------------------------------------------------


async def _cleanup_part(runner: JobRunner, job: Job, p: int) -> Result:
    cleaned = 0

    def work(user: UserState, idx: SegmentIndex) -> list[tuple[str, str]]:
        nonlocal cleaned
        was = user.dirty
        forget_segments(user, idx.segments.keys())
        cleaned += int(user.dirty and not was)
        return []

    total, done = await runner.known_count(p), 0
    async for chunk in runner.users(p, background=True):
        await runner.engine.run_users(chunk, p, work)
        done += len(chunk)
        await runner.progress(job, p, done / total)
    return {"users": done, "cleaned": cleaned}


async def _cleanup_finish(runner: JobRunner, job: Job, parts: list[Result]) -> Result:
    # Every owner reloaded the definitions before its part, so no batch writes these again.
    await drop_segment_keys(runner.redis, runner.keys, job.segment_id)
    await runner.redis.delete(runner.keys.segment_job(job.segment_id, JobKind.BACKFILL))
    return {"users": sum(int(r["users"]) for r in parts), "cleaned": sum(int(r["cleaned"]) for r in parts)}


# -- forget ---------------------------------------------------------------------------------------


async def _forget_part(runner: JobRunner, job: Job, p: int) -> Result:
    """Ends every membership with an `exited` change (member sets, trend, samples and the
    segment-changes topic follow through the outbox), then removes the user's state, identity
    entries, timer and known-set entry, and tombstones their changelog record."""
    uid = job.targets[0]
    ended: list[str] = []

    def work(user: UserState, idx: SegmentIndex) -> list[tuple[str, str]]:
        now = runner.engine.now_ms()
        for sid in sorted(user.members):
            user.outbox.append(Transition(sid, EXIT, now, user.mask))
            ended.append(sid)
        if user.members:
            user.members.clear()
            user.dirty_members = True
        return []

    report = await runner.engine.run_users([uid], p, work)
    identities = [(k, str(v)) for u in report.applied for k, v in u.profile.items()
                  if k in ("email", "phone") and isinstance(v, str)]
    blocks = [name for u in report.applied for name in u.stored_blocks]
    await runner.engine.forget_user(uid, p, identities, blocks)
    return {"user_id": uid, "memberships_ended": len(ended), "found": bool(report.applied)}


async def _forget_finish(runner: JobRunner, job: Job, parts: list[Result]) -> Result:
    return parts[0] if parts else {"user_id": job.segment_id}


KINDS: dict[JobKind, KindSpec] = {
    JobKind.BACKFILL: KindSpec(_backfill_part, _backfill_finish, needs_segment=True, interactive=False),
    JobKind.RECOUNT: KindSpec(_recount_part, _recount_finish, needs_segment=True, interactive=True),
    JobKind.CLEANUP: KindSpec(_cleanup_part, _cleanup_finish, needs_segment=False, interactive=False),
    JobKind.FORGET: KindSpec(_forget_part, _forget_finish, needs_segment=False, interactive=True),
}
