"""Faust's per-message path doing nothing else: one agent over events + profiles, `noack_take`
batches, an ack per message (the worker's intake before `stream.agents.intake`). Beside the
intake floor (`bench.floor_agent`) it shows what Faust's Stream delivery costs per message."""

from __future__ import annotations

from typing import Any

import faust

from bench.floor_options import floor_options
from stream.config import get_settings

settings = get_settings()
app = faust.App(settings.app_id, **floor_options(settings))
inputs = app.topic(settings.topic_events, settings.topic_profiles, key_serializer="raw", value_serializer="raw")


@app.agent(inputs, concurrency=1)
async def floor(stream: Any) -> None:
    async for batch in stream.noack_take(settings.batch_size, within=settings.batch_timeout_seconds):
        for ev in batch:
            await stream.ack(ev)
