"""Jobs (segment backfills, exact recounts) as Redis records split by partition.

A job is done partition by partition by whichever worker owns each one, so
a recount runs in parallel across workers and resumes after a crash: a part
whose lock expired is simply run again by the partition's new owner.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from stream.state.keys import Keys

BACKFILL, RECOUNT, CLEANUP = "backfill", "recount", "cleanup"
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
LOCK_SECONDS = 30
FINISHED_TTL_SECONDS = 7 * 86400


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    type: str
    segment_id: str
    status: str
    partitions: int
    created_at_ms: int
    progress: float
    result: dict[str, Any] | None
    error: str | None


class JobStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def create(self, job_type: str, segment_id: str, partitions: int) -> str:
        """Starts a job, or returns the running one of the same type for the segment."""
        job_id = f"j-{uuid.uuid4().hex[:12]}"
        claim = self.keys.segment_job(segment_id, job_type)
        if not await self.redis.set(claim, job_id, nx=True):
            existing = await self.redis.get(claim)
            if existing and await self.get(str(existing)) is not None:
                return str(existing)
            await self.redis.set(claim, job_id)
        record: dict[str, str | int] = {
            "id": job_id, "type": job_type, "segment_id": segment_id, "status": QUEUED,
            "partitions": partitions, "created_at_ms": int(time.time() * 1000),
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.job(job_id), items=[part for kv in record.items() for part in kv])
        pipe.sadd(self.keys.jobs_active, job_id)
        await pipe.execute()
        return job_id

    async def get(self, job_id: str) -> Job | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.job(job_id))
        pipe.hgetall(self.keys.job_parts(job_id))
        raw, parts = await pipe.execute()
        if not raw:
            return None
        total = int(raw["partitions"])
        done = sum(1 for k in parts if not k.startswith("prog:"))
        running = sum(float(v) for k, v in parts.items() if k.startswith("prog:") and k[5:] not in parts)
        progress = 1.0 if raw["status"] == DONE else min(1.0, (done + running) / total) if total else 0.0
        return Job(
            id=job_id, type=raw["type"], segment_id=raw["segment_id"], status=raw["status"],
            partitions=total, created_at_ms=int(raw["created_at_ms"]), progress=round(progress, 4),
            result=json.loads(raw["result"]) if raw.get("result") else None, error=raw.get("error"),
        )

    async def active(self) -> list[str]:
        return sorted(str(j) for j in await self.redis.smembers(self.keys.jobs_active))

    async def parts_done(self, job_id: str) -> set[int]:
        fields = [str(k) for k in await self.redis.hkeys(self.keys.job_parts(job_id))]
        return {int(k) for k in fields if not k.startswith("prog:")}

    async def lock(self, job_id: str, partition: int, owner: str) -> bool:
        return bool(await self.redis.set(self.keys.job_lock(job_id, partition), owner, nx=True, ex=LOCK_SECONDS))

    async def progress(self, job_id: str, partition: int, fraction: float, owner: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys.job_parts(job_id), f"prog:{partition}", f"{fraction:.4f}")
        pipe.set(self.keys.job_lock(job_id, partition), owner, ex=LOCK_SECONDS)
        pipe.hset(self.keys.job(job_id), "status", RUNNING)
        await pipe.execute()

    async def finish_part(self, job_id: str, partition: int, result: dict[str, Any]) -> bool:
        """Records a part; True for the one caller that completed the last part."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.job_parts(job_id), str(partition), json.dumps(result))
        pipe.hgetall(self.keys.job_parts(job_id))
        pipe.hget(self.keys.job(job_id), "partitions")
        pipe.delete(self.keys.job_lock(job_id, partition))
        _, parts, total, _ = await pipe.execute()
        done = sum(1 for k in parts if not k.startswith("prog:"))
        if done < int(total or 0):
            return False
        return bool(await self.redis.hsetnx(self.keys.job(job_id), "finalizing", "1"))

    async def part_results(self, job_id: str) -> list[dict[str, Any]]:
        parts = await self.redis.hgetall(self.keys.job_parts(job_id))
        return [json.loads(v) for k, v in parts.items() if not str(k).startswith("prog:")]

    async def complete(self, job: Job, result: dict[str, Any] | None, error: str | None = None) -> None:
        pipe = self.redis.pipeline(transaction=True)
        fields: dict[str, str] = {"status": FAILED if error else DONE, "finished_at_ms": str(int(time.time() * 1000))}
        if result is not None:
            fields["result"] = json.dumps(result)
        if error:
            fields["error"] = error
        pipe.hset(self.keys.job(job.id), items=[part for kv in fields.items() for part in kv])
        pipe.srem(self.keys.jobs_active, job.id)
        if job.type != BACKFILL:  # a backfill's id stays, so the segment can report how it went
            pipe.delete(self.keys.segment_job(job.segment_id, job.type))
        # Finished jobs stay readable for a week (GET /jobs), then go: no record outlives its use.
        pipe.expire(self.keys.job(job.id), FINISHED_TTL_SECONDS)
        pipe.expire(self.keys.job_parts(job.id), FINISHED_TTL_SECONDS)
        await pipe.execute()

    async def for_segment(self, segment_id: str, job_type: str) -> Job | None:
        job_id = await self.redis.get(self.keys.segment_job(segment_id, job_type))
        return await self.get(str(job_id)) if job_id else None
