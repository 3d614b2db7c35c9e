"""Faust's per-message path doing nothing else: one agent over events + profiles, `noack_take`
batches, an ack per message (the worker's intake before `stream.agents.intake`). Beside the
intake floor (`bench.floor_agent`) it shows what Faust's Stream delivery costs per message."""

from __future__ import annotations

from typing import Any

import faust

from stream.config import get_settings
from stream.kafkaio.client import faust_credentials

settings = get_settings()
app = faust.App(
    settings.app_id,
    broker=settings.kafka_url,
    broker_credentials=faust_credentials(settings),
    store="memory://",
    datadir=settings.data_dir,
    topic_disable_leader=True,
    web_port=settings.worker_web_port,
    consumer_auto_offset_reset="earliest",
    broker_commit_every=1000,
    broker_commit_interval=1.0,
)
inputs = app.topic(settings.topic_events, settings.topic_profiles, key_serializer="raw", value_serializer="raw")


@app.agent(inputs, concurrency=1)
async def floor(stream: Any) -> None:
    async for batch in stream.noack_take(settings.batch_size, within=settings.batch_timeout_seconds):
        for ev in batch:
            await stream.ack(ev)
