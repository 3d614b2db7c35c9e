"""The Faust worker: one agent over events+profiles, window timers, jobs and a heartbeat.

The agent takes batches (`noack_take`), hands them to the engine, and
acknowledges only after every effect is in Redis and Kafka, so a crash
redelivers unfinished work and the engine's dedupe makes that harmless.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from typing import Any

import faust
from faust.web import Request, Response, View
from redis.asyncio import Redis

from stream import metrics
from stream.agents.engine import Engine
from stream.agents.jobs import JobRunner
from stream.config import Settings, get_settings
from stream.outputs import DeadLetter, Message

log = logging.getLogger(__name__)
LOG_APPEND_TIME = 1


class KafkaOutputs:
    """Sends through Faust's producer and waits for the broker's acknowledgement."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def send_changes(self, records: list[tuple[str, bytes]]) -> None:
        futures = [
            await self.app.producer.send(self.settings.topic_changes, uid.encode(), value, None, None, None)
            for uid, value in records
        ]
        await asyncio.gather(*futures)

    async def send_dead_letters(self, letters: list[DeadLetter]) -> None:
        futures = []
        for letter in letters:
            m = letter.message
            headers = [
                ("reason", letter.reason.encode()),
                ("detail", letter.detail.encode()),
                ("source_topic", m.topic.encode()),
                ("source_partition", str(m.partition).encode()),
                ("source_offset", str(m.offset).encode()),
            ]
            futures.append(await self.app.producer.send(self.settings.topic_dlq, m.key, m.value, None, None,
                                                        headers))
        await asyncio.gather(*futures)


def _to_message(event: Any) -> Message:
    m = event.message
    ts = int(m.timestamp * 1000) if m.timestamp else 0
    return Message(m.topic, m.partition, m.offset, m.key, m.value, ts)


def create_app(settings: Settings | None = None) -> faust.App:
    settings = settings or get_settings()
    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    app = faust.App(
        settings.app_id,
        broker=settings.kafka_url,
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
    )
    inputs = app.topic(settings.topic_events, settings.topic_profiles, key_serializer="raw",
                       value_serializer="raw")
    state: dict[str, Any] = {}

    def engine() -> Engine:
        if "engine" not in state:
            redis = Redis.from_url(settings.redis_url, decode_responses=True)
            state["engine"] = Engine(redis, settings, KafkaOutputs(app, settings))
            state["jobs"] = JobRunner(state["engine"], settings, worker_id)
        eng: Engine = state["engine"]
        return eng

    def owned_partitions() -> list[int]:
        return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == settings.topic_events)

    @app.agent(inputs, concurrency=1)
    async def ingest(stream: Any) -> None:
        eng = engine()
        async for batch in stream.noack_take(settings.batch_size, within=settings.batch_timeout_seconds):
            await eng.process([_to_message(ev) for ev in batch])
            for ev in batch:
                await stream.ack(ev)

    @app.timer(settings.timer_interval_seconds)
    async def window_timers() -> None:
        await engine().expire_due(owned_partitions())

    @app.timer(0.5)
    async def jobs() -> None:
        engine()
        runner: JobRunner = state["jobs"]
        await runner.run_once(owned_partitions())

    @app.timer(1.0)
    async def heartbeat() -> None:
        eng = engine()
        # The heartbeat names the partitions held, so tests and ops can see the group settle.
        await eng.redis.set(eng.keys.heartbeat(worker_id), json.dumps(owned_partitions()), ex=10)
        for tp in app.assignor.assigned_actives():
            try:
                hw = app.consumer.highwater(tp)
                committed = app.consumer._committed_offset.get(tp)  # type: ignore[attr-defined]
            except Exception:  # the consumer may be mid-rebalance
                continue
            if hw is not None and committed is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, hw - committed))

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

    metrics.set_build_info()
    return app
