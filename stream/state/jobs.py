"""Jobs (backfills, recounts, cleanups, forgets) as Redis records split by partition.

A job is done partition by partition by whichever worker owns each one, so
a recount runs in parallel across workers and resumes after a crash: a part
whose lock expired is simply run again by the partition's new owner. Every
job key shares the `{jobs}` tag, so creating a job and listing it as active
is one transaction, on one Redis Cluster slot.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis.asyncio.client import Pipeline

from stream.state.client import RedisClient, atomic
from stream.state.keys import Keys
from stream.state.lua import LuaRunner, script

BACKFILL_JOIN = script("backfill_join")
LOCK_SECONDS = 30
FINISHED_TTL_SECONDS = 7 * 86400


class JobKind(StrEnum):
    BACKFILL = "backfill"
    RECOUNT = "recount"
    CLEANUP = "cleanup"
    FORGET = "forget"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    kind: JobKind
    segment_id: str  # the segment (backfill: the first of `targets`), or the user for a forget
    targets: tuple[str, ...]  # backfill: every segment sharing the scan; forget: the user id
    status: JobStatus
    partitions: int
    only_partition: int | None  # a forget runs on its user's partition only
    created_at_ms: int
    progress: float
    result: dict[str, Any] | None
    error: str | None
    open_until_ms: int = 0  # a backfill gathers segments until then
    sealed: bool = False

    def covers(self, partition: int) -> bool:
        return partition < self.partitions and (self.only_partition is None or partition == self.only_partition)

    @property
    def part_count(self) -> int:
        return 1 if self.only_partition is not None else self.partitions


class JobStore:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def create(self, kind: JobKind, subject: str, partitions: int, targets: tuple[str, ...] = (),
                     only_partition: int | None = None) -> str:
        """Starts a job, or returns the unfinished one of the same kind for the same subject."""
        job_id = f"j-{uuid.uuid4().hex[:12]}"
        claim = self.keys.segment_job(subject, kind)
        if not await self.redis.set(claim, job_id, nx=True):
            existing = await self.redis.get(claim)
            if existing:
                job = await self.get(str(existing))
                if job is not None and (kind == JobKind.BACKFILL or job.status not in (JobStatus.DONE,
                                                                                      JobStatus.FAILED)):
                    return str(existing)
            await self.redis.set(claim, job_id)
        record: dict[str, str | int] = {
            "id": job_id, "type": str(kind), "segment_id": subject, "status": str(JobStatus.QUEUED),
            "partitions": partitions, "created_at_ms": int(time.time() * 1000),
            "targets": json.dumps(list(targets or (subject,))),
        }
        if only_partition is not None:
            record["only_partition"] = only_partition
        await atomic(self.redis, self.keys.jobs_active, lambda pipe: (
            pipe.hset(self.keys.job(job_id), items=[part for kv in record.items() for part in kv]),
            pipe.sadd(self.keys.jobs_active, job_id)))
        return job_id

    async def share(self, job_id: str, kind: JobKind, subject: str) -> None:
        """Points another subject at an existing job (segments sharing one backfill scan)."""
        await self.redis.set(self.keys.segment_job(subject, kind), job_id)

    async def get(self, job_id: str) -> Job | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.job(job_id))
        pipe.hgetall(self.keys.job_parts(job_id))
        raw, parts = await pipe.execute()
        if not raw:
            return None
        only = int(raw["only_partition"]) if "only_partition" in raw else None
        total = 1 if only is not None else int(raw["partitions"])
        done = sum(1 for k in parts if not k.startswith("prog:"))
        running = sum(float(v) for k, v in parts.items() if k.startswith("prog:") and k[5:] not in parts)
        status = JobStatus(raw["status"])
        progress = 1.0 if status == JobStatus.DONE else min(1.0, (done + running) / total) if total else 0.0
        return Job(
            id=job_id, kind=JobKind(raw["type"]), segment_id=raw["segment_id"],
            targets=tuple(json.loads(raw.get("targets") or json.dumps([raw["segment_id"]]))), status=status,
            partitions=int(raw["partitions"]), only_partition=only, created_at_ms=int(raw["created_at_ms"]),
            progress=round(progress, 4), result=json.loads(raw["result"]) if raw.get("result") else None,
            error=raw.get("error"), open_until_ms=int(raw.get("open_until_ms", 0)), sealed="sealed" in raw,
        )

    async def active(self) -> list[str]:
        return sorted(str(j) for j in await self.redis.smembers(self.keys.jobs_active))

    async def parts_done(self, job_id: str) -> set[int]:
        fields = [str(k) for k in await self.redis.hkeys(self.keys.job_parts(job_id))]
        return {int(k) for k in fields if not k.startswith("prog:")}

    async def lock(self, job_id: str, partition: int, owner: str) -> bool:
        return bool(await self.redis.set(self.keys.job_lock(job_id, partition), owner, nx=True, ex=LOCK_SECONDS))

    async def progress(self, job_id: str, partition: int, fraction: float, owner: str) -> None:
        await atomic(self.redis, self.keys.job(job_id), lambda pipe: (
            pipe.hset(self.keys.job_parts(job_id), f"prog:{partition}", f"{fraction:.4f}"),
            pipe.set(self.keys.job_lock(job_id, partition), owner, ex=LOCK_SECONDS),
            pipe.hset(self.keys.job(job_id), "status", str(JobStatus.RUNNING))))

    async def finish_part(self, job_id: str, partition: int, result: dict[str, Any]) -> bool:
        """Records a part; True for the one caller that completed the last part."""
        _, parts, (total, only), _ = await atomic(self.redis, self.keys.job(job_id), lambda pipe: (
            pipe.hset(self.keys.job_parts(job_id), str(partition), json.dumps(result)),
            pipe.hgetall(self.keys.job_parts(job_id)),
            pipe.hmget(self.keys.job(job_id), ["partitions", "only_partition"]),
            pipe.delete(self.keys.job_lock(job_id, partition))))
        done = sum(1 for k in parts if not k.startswith("prog:"))
        if done < (1 if only is not None else int(total or 0)):
            return False
        return bool(await self.redis.hsetnx(self.keys.job(job_id), "finalizing", "1"))

    async def part_results(self, job_id: str) -> list[dict[str, Any]]:
        parts = await self.redis.hgetall(self.keys.job_parts(job_id))
        return [json.loads(v) for k, v in parts.items() if not str(k).startswith("prog:")]

    async def complete(self, job: Job, result: dict[str, Any] | None, error: str | None = None) -> None:
        fields: dict[str, str] = {"status": str(JobStatus.FAILED if error else JobStatus.DONE),
                                  "finished_at_ms": str(int(time.time() * 1000))}
        if result is not None:
            fields["result"] = json.dumps(result)
        if error:
            fields["error"] = error

        def build(pipe: Pipeline) -> None:
            pipe.hset(self.keys.job(job.id), items=[part for kv in fields.items() for part in kv])
            pipe.srem(self.keys.jobs_active, job.id)
            if job.kind != JobKind.BACKFILL:  # a backfill's id stays, so the segment can report how it went
                pipe.delete(self.keys.segment_job(job.segment_id, job.kind))
            # Finished jobs stay readable for a week (GET /jobs), then go: no record outlives its use.
            pipe.expire(self.keys.job(job.id), FINISHED_TTL_SECONDS)
            pipe.expire(self.keys.job_parts(job.id), FINISHED_TTL_SECONDS)

        await atomic(self.redis, self.keys.job(job.id), build)

    async def for_segment(self, segment_id: str, kind: JobKind) -> Job | None:
        job_id = await self.redis.get(self.keys.segment_job(segment_id, kind))
        return await self.get(str(job_id)) if job_id else None

    # -- creation backfills shared by segments created together ------------------------------------

    async def join_backfill(self, lua: LuaRunner, segment_id: str, partitions: int, group_ms: int,
                            now_ms: int) -> str:
        """The backfill job of a new segment: the one still gathering segments, or a new one that
        gathers for `group_ms` (segments created within it share one scan and one user pass)."""
        open_id = await self.redis.get(self.keys.backfill_open)
        if open_id and await lua.call(BACKFILL_JOIN, [self.keys.backfill_open, self.keys.job(str(open_id)),
                                                      self.keys.segment_job(segment_id, JobKind.BACKFILL)],
                                      [str(open_id), segment_id, now_ms]):
            return str(open_id)
        job_id = await self.create(JobKind.BACKFILL, segment_id, partitions, (segment_id,))
        await atomic(self.redis, self.keys.backfill_open, lambda pipe: (
            pipe.hset(self.keys.job(job_id), "open_until_ms", now_ms + group_ms),
            pipe.set(self.keys.backfill_open, job_id)))
        return job_id

    async def seal(self, job_id: str) -> tuple[str, ...] | None:
        """Closes a gathering backfill to new segments; returns its targets (None: not sealable yet)."""
        _, targets = await atomic(self.redis, self.keys.job(job_id), lambda pipe: (
            pipe.hsetnx(self.keys.job(job_id), "sealed", "1"), pipe.hget(self.keys.job(job_id), "targets")))
        return tuple(json.loads(targets)) if targets else None
