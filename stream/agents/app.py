"""The Faust worker: the thin adapter between Faust and the Kafka-free engine.

Faust owns the consumer group, the partitions and the worker's lifecycle.
One task takes batches over events+profiles (whole fetches, through
`stream.agents.intake`: Faust's per-message delivery cost a third of the time), hands them to the
engine and acknowledges only after every effect is stored and its resume
point moved, so a crash redelivers unfinished work and the engine's dedupe
makes that harmless. Timers drive window changes, jobs, gap replays, the
control-log tailer and the heartbeat.

Outages are not crashes: when Redis or Kafka is unreachable the ingest task keeps
the batch it holds, stops taking input, retries with back-off (up to
`STREAM_RETRY_MAX_SECONDS` between tries), reports it on /readyz and in
`stream_dependency_up` / `stream_outages_total`, and resumes by itself.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import faust
from aiokafka.errors import KafkaError
from faust.web import Request, Response, View
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream import metrics
from stream.agents.intake import BatchApp
from stream.config import Settings, get_settings
from stream.control.epoch import ensure_epoch
from stream.control.log import ControlTailer
from stream.engine.engine import Engine
from stream.engine.jobs import JobRunner
from stream.kafkaio.client import faust_credentials
from stream.kafkaio.log import KafkaLog
from stream.kafkaio.outputs import KafkaUnavailable
from stream.outputs import Message
from stream.state.client import refused as redis_refused
from stream.state.store import ReplicasBehind
from stream.wiring import Core

log = logging.getLogger(__name__)
T = TypeVar("T")

REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, ReplicasBehind, OSError)
KAFKA_ERRORS = (KafkaUnavailable, KafkaError)


def _to_message(m: Any) -> Message:
    ts = int(m.timestamp * 1000) if m.timestamp else 0
    return Message(m.topic, m.partition, m.offset, m.key, m.value, ts)


class Health:
    """Which dependency is down now, for /readyz and the metrics."""

    def __init__(self) -> None:
        self.down: dict[str, str] = {}
        self.rebuild_required = False
        for dep in ("redis", "kafka"):
            metrics.DEPENDENCY_UP.labels(dep).set(1)

    def failed(self, dep: str, exc: BaseException) -> None:
        if dep not in self.down:
            metrics.OUTAGES.labels(dep).inc()
            metrics.DEPENDENCY_UP.labels(dep).set(0)
            # a refused password or certificate is no outage, but a fixed ACL or CA is picked up on a retry
            what = "refused the connection" if dep == "redis" and redis_refused(exc) else "unreachable"
            log.warning("%s %s (%s); holding input and retrying", dep, what, exc)
        self.down[dep] = str(exc)[:300]

    def recovered(self) -> None:
        for dep in list(self.down):
            log.warning("%s reachable again; resuming", dep)
            metrics.DEPENDENCY_UP.labels(dep).set(1)
        self.down.clear()


def classify(exc: BaseException) -> str | None:
    if isinstance(exc, KAFKA_ERRORS):
        return "kafka"
    if isinstance(exc, REDIS_ERRORS):
        return "redis"
    return None


async def with_retries(health: Health, settings: Settings, step: Callable[[], Awaitable[T]],
                       on_recover: Callable[[], None] | None = None) -> T:
    """Runs `step` until it succeeds, backing off while a dependency is down; other errors raise."""
    delay = 0.1
    failed = False
    while True:
        try:
            result = await step()
        except Exception as exc:
            dep = classify(exc)
            if dep is None:
                raise
            health.failed(dep, exc)
            failed = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.retry_max_seconds)
            continue
        if failed:
            health.recovered()
            if on_recover is not None:
                on_recover()
        return result


def create_app(settings: Settings | None = None) -> faust.App:
    settings = settings or get_settings()
    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    app = BatchApp(
        settings.app_id,
        broker=settings.kafka_url,
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        web_port=settings.worker_web_port,
        web_bind="0.0.0.0",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        # A killed worker's partitions move after 10 s, not Kafka's default 45 s (drills measure this).
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
    )
    intake = app.batch_inputs(app.topic(settings.topic_events, settings.topic_profiles, key_serializer="raw",
                                        value_serializer="raw"))
    state: dict[str, Any] = {}
    health = Health()
    ready = asyncio.Event()

    def core() -> Core:
        if "core" not in state:
            c = state["core"] = Core.build(settings, cache_size=settings.user_cache_size)
            engine = state["engine"] = Engine(c.store, settings, c.outputs, writer=worker_id)
            state["jobs"] = JobRunner(engine, settings, worker_id, c.redis, c.keys, c.router, c.samples,
                                      KafkaLog(settings), on_backfilled)
            state["tailer"] = ControlTailer(settings, c.materializer)
        found: Core = state["core"]
        return found

    def engine() -> Engine:
        core()
        found: Engine = state["engine"]
        return found

    async def on_backfilled(sids: Any) -> None:
        for sid in sids:
            await core().catalog.mark_backfilled(sid)

    def owned_partitions() -> list[int]:
        return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == settings.topic_events)

    def after_outage() -> None:
        # Redis may have come back older than it was (AOF loss, restore): cached hashes are
        # dropped, and the resume points are compared on the next batch's compare-and-set.
        core().store.drop_cache()

    async def check_usable() -> bool:
        """Redis holds state (or this is a fresh install): input may be applied."""
        ok = await ensure_epoch(settings, core().redis, core().keys)
        if ok and not ready.is_set():
            await engine().resume.assign(owned_partitions())
            ready.set()
        if not ok and not health.rebuild_required:
            log.error("Redis holds no state but Kafka does: Redis was lost. Run `stream rebuild`; "
                      "this worker waits and takes no input until then.")
        health.rebuild_required = not ok
        metrics.REBUILD_REQUIRED.set(0 if ok else 1)
        return ok

    async def wait_until_usable() -> None:
        """Blocks input until Redis holds state (or this is a fresh install)."""
        while not ready.is_set():
            if not await with_retries(health, settings, check_usable):
                await asyncio.sleep(1.0)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        engine().resume.revoke(tp.partition for tp in revoked if tp.topic == settings.topic_events)
        for tp in revoked:  # another worker reports it now; a frozen value here would double the sum
            metrics.forget_consumer_lag(tp.topic, tp.partition)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        partitions = [tp.partition for tp in assigned if tp.topic == settings.topic_events]
        if ready.is_set():
            await with_retries(health, settings, lambda: engine().resume.assign(partitions), after_outage)

    @app.task
    async def ingest() -> None:
        eng = engine()
        try:
            while True:
                batch = await intake.take(settings.batch_size, settings.batch_timeout_seconds)
                await wait_until_usable()
                await with_retries(health, settings, functools.partial(eng.process, [_to_message(m) for m in batch]),
                                   after_outage)
                intake.ack(batch)
        except Exception as exc:  # the worker stops rather than run on without taking input
            log.exception("ingest failed")
            await app.crash(exc)

    async def guarded(name: str, step: Callable[[], Awaitable[Any]]) -> None:
        """A timer's round: an outage is recorded and skipped (the next round retries)."""
        if not ready.is_set():
            return
        try:
            await step()
        except Exception as exc:
            dep = classify(exc)
            if dep is None:
                log.exception("%s failed", name)
            else:
                health.failed(dep, exc)

    @app.timer(settings.timer_interval_seconds)
    async def window_timers() -> None:
        await guarded("timers", lambda: engine().expire_due(owned_partitions()))

    @app.timer(0.5)
    async def jobs() -> None:
        runner: JobRunner = (core(), state["jobs"])[1]
        await guarded("jobs", lambda: runner.run_once(owned_partitions()))

    @app.timer(0.5)
    async def control() -> None:
        tailer: ControlTailer = (core(), state["tailer"])[1]
        await guarded("control", tailer.run_once)

    @app.timer(0.2)
    async def gaps() -> None:
        async def replay() -> None:
            """Each gap from the log, in order, until its topic partition caught up with the stream."""
            eng = engine()
            for _ in range(100):  # the stream may keep extending a gap; the next round goes on
                gaps = eng.pending_gaps()
                if not gaps:
                    return
                for gap in gaps:
                    async for chunk in KafkaLog(settings).read(gap.topic, gap.partition, start=gap.start,
                                                                end=gap.end):
                        await eng.process(chunk, replay=True)
                    if await eng.gap_replayed(gap):
                        log.warning("replayed %s[%d] up to %d; applying it from the stream again", gap.topic,
                                    gap.partition, gap.end)

        await guarded("gaps", replay)

    @app.timer(1.0)
    async def heartbeat() -> None:
        async def beat() -> None:
            c = core()
            # The heartbeat names the partitions held, so tests and ops can see the group settle.
            await c.redis.hset(c.keys.heartbeats, worker_id,
                               json.dumps({"partitions": owned_partitions(), "at_ms": int(time.time() * 1000),
                                           "ready": ready.is_set()}))
            if not ready.is_set():
                await check_usable()
            elif not await c.redis.exists(c.keys.epoch):
                ready.clear()  # Redis lost everything while we ran: wait for a rebuild
                await check_usable()
            else:
                await engine().check_restart()  # a restarted Redis refuses timers and jobs until then
            for tp in app.assignor.assigned_actives():
                try:
                    hw = app.consumer.highwater(tp)
                    committed = app.consumer._committed_offset.get(tp)  # type: ignore[attr-defined]
                except Exception:  # the consumer may be mid-rebalance
                    continue
                if hw is not None and committed is not None:
                    metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, hw - committed))

        try:
            await beat()
            if health.down:
                health.recovered()
                after_outage()
        except Exception as exc:
            dep = classify(exc)
            if dep is None:
                log.exception("heartbeat failed")
            else:
                health.failed(dep, exc)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            body, content_type = metrics.render()
            # aiohttp takes the charset apart from the content type.
            media = "; ".join(p for p in content_type.split("; ") if not p.startswith("charset="))
            return self.bytes(body, content_type=media)

    @app.page("/livez")
    class LiveView(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok", "worker": worker_id})

    @app.page("/readyz")
    class ReadyView(View):
        async def get(self, request: Request) -> Response:
            body = {"redis": "redis" not in health.down, "kafka": "kafka" not in health.down,
                    "rebuild_required": health.rebuild_required, "down": health.down}
            ok = not health.down and not health.rebuild_required and ready.is_set()
            return self.json(body, status=200 if ok else 503)

    metrics.set_build_info()
    return app
