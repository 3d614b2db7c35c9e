"""The baseline: a naive Faust agent doing one Redis round trip per event.

This is what "a naive Faust agent moves a few hundred events a second" means:
no batching, no pipelining, one `await` on Redis for every message. It does
the least work that still records something per event (a counter per user
and event name), so the comparison flatters the baseline, not us.
"""

from __future__ import annotations

import json
import os
from typing import Any

import faust
from redis.asyncio import Redis

from stream.config import get_settings

settings = get_settings()
app = faust.App(
    settings.app_id,
    broker=settings.kafka_url,
    store="memory://",
    datadir=settings.data_dir,
    topic_disable_leader=True,
    web_port=settings.worker_web_port,
    consumer_auto_offset_reset="earliest",
)
events = app.topic(settings.topic_events, key_serializer="raw", value_serializer="raw")
redis = Redis.from_url(settings.redis_url, decode_responses=True)
PREFIX = os.environ.get("NAIVE_PREFIX", "naive:")


@app.agent(events)
async def count(stream: Any) -> None:
    async for value in stream:
        body = json.loads(value)
        await redis.hincrby(f"{PREFIX}{body['user_id']}", body["name"], 1)
