"""Exact recount of N users next to a bare pipelined scan of the same user keys.

Users are written straight into Redis in the engine's own format (no Kafka
needed to get a million users), the recount job then runs in-process through
the real JobRunner over every partition, and the bare scan reads exactly what
the recount reads, the same way (SSCAN the known sets, HMGET of the fields that
decide the segment over the same raw bulk connection) and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from stream.config import Settings
from stream.control.catalog import segment_record
from stream.control.records import ControlKind, ControlRecord, record_key
from stream.engine.engine import Engine
from stream.engine.jobs import CHUNK, JobRunner
from stream.kafkaio.log import KafkaLog
from stream.outputs import MemoryOutputs
from stream.rules import parse_segment
from stream.segments import make_segment
from stream.state.bulk import read_users
from stream.state.jobs import JobKind
from stream.state.members import plant_members
from stream.state.resp import RespRouter
from stream.state.userhash import DECIDING, agg_field
from stream.wiring import Core

RULE = {"all": [{"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
                {"event": {"name": "Charged", "count": {"op": "gte", "value": 2}}}]}
CITIES = ["Pune", "Mumbai", "Delhi", "Goa"]


async def fill(core: Core, sid: str, users: int, partitions: int, chunk: int = 10_000) -> None:
    keys, redis = core.keys, core.redis
    for start in range(0, users, chunk):
        pipe = redis.pipeline(transaction=False)
        by_partition: dict[int, list[str]] = {}
        members: list[str] = []
        for i in range(start, min(start + chunk, users)):
            uid = f"r{i}"
            member = i % 4 == 0 and i % 3 == 2  # Pune, and at least two Charged
            pipe.hset(keys.user(uid), mapping={
                "v": 1, "p": json.dumps({"city": CITIES[i % 4], "email": f"{uid}@example.com"}), "s": "{}",
                "b": "1" if i % 50 == 0 else "0", "m": json.dumps([sid] if member else []),
                f"a:{sid}": json.dumps([[i % 3, 0]]), "n": "-"})
            by_partition.setdefault(i % partitions, []).append(uid)
            if member:
                members.append(uid)
        for p, uids in by_partition.items():
            pipe.sadd(keys.known(p), *uids)
        await pipe.execute()
        if members:
            await plant_members(redis, keys, sid, members)


async def redis_py_scan(core: Core, partitions: int) -> float:
    """The conventional read: SSCAN and a redis-py pipeline of HGETALL per chunk."""
    started = time.perf_counter()
    for p in range(partitions):
        cursor = 0
        while True:
            cursor, chunk = await core.redis.sscan(core.keys.known(p), cursor, count=CHUNK)
            pipe = core.redis.pipeline(transaction=False)
            for uid in chunk:
                pipe.hgetall(core.keys.user(str(uid)))
            await pipe.execute()
            if cursor == 0:
                break
    return time.perf_counter() - started


async def bare_scan(core: Core, sid: str, partitions: int) -> float:
    """The same fields the recount reads, over the same raw router, and nothing else."""
    started = time.perf_counter()
    fields = [*DECIDING, agg_field(sid)]
    router = RespRouter(core.router.ep)
    try:
        for p in range(partitions):
            cursor = 0
            while True:
                cursor, chunk = await core.redis.sscan(core.keys.known(p), cursor, count=CHUNK)
                await read_users(router, core.keys, [str(u) for u in chunk], fields)
                if cursor == 0:
                    break
    finally:
        await router.close()
    return time.perf_counter() - started


async def run(redis_url: str, users: int, partitions: int = 8) -> dict[str, Any]:
    settings = Settings(redis_url=redis_url, key_prefix=f"rb{uuid.uuid4().hex[:6]}:", partitions=partitions,
                        changelog=False)
    core = Core.build(settings)
    engine = Engine(core.store, settings, MemoryOutputs())
    try:
        # Users are written directly, not backfilled: the definition is materialised without its job.
        seg = make_segment(f"s-{uuid.uuid4().hex[:10]}", "bench", "past_behavior",
                           parse_segment({"name": "bench", "kind": "past_behavior", "rule": RULE}).rule,
                           int(time.time() * 1000))
        await core.materializer.apply(ControlRecord(record_key(ControlKind.SEGMENT, seg.id), segment_record(seg),
                                                    0, seg.created_at_ms), follow_up=False)
        await engine.definitions.reload()
        await fill(core, seg.id, users, partitions)
        scan = await bare_scan(core, seg.id, partitions)
        pipelined = await redis_py_scan(core, partitions)
        job_id = await core.jobs.create(JobKind.RECOUNT, seg.id, partitions)
        started = time.perf_counter()
        runner = JobRunner(engine, settings.model_copy(update={"job_concurrency": partitions}), "bench", core.redis,
                           core.keys, core.router, core.samples, KafkaLog(settings), _no_backfills)
        await runner.run_once(list(range(partitions)))
        await runner.drain()
        recount = time.perf_counter() - started
        job = await core.jobs.get(job_id)
        if job is None or job.status != "done" or job.result is None:
            raise RuntimeError(f"recount did not finish: {job}")
        expected = sum(1 for i in range(users) if i % 4 == 0 and i % 3 == 2)
        if job.result["size"] != expected or job.result["drift"] != 0:
            raise RuntimeError(f"recount is wrong: {job.result}")
        return {"users": users, "bare_scan_s": scan, "recount_s": recount, "recount_over_scan": recount / scan,
                "redis_py_scan_s": pipelined, "recount_over_redis_py_scan": recount / pipelined}
    finally:
        keys = [k async for k in core.redis.scan_iter(match=settings.key_prefix + "*", count=5000)]
        for i in range(0, len(keys), 5000):
            await core.redis.delete(*keys[i : i + 5000])
        await core.close()


async def _no_backfills(_: object) -> None:
    raise AssertionError("the recount bench starts no backfill")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6380/0")
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.redis_url, args.users)), indent=2))


if __name__ == "__main__":
    main()
