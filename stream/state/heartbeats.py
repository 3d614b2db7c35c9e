"""Workers' heartbeats: which are alive and which partitions they hold (`stream check`, tests, ops)."""

from __future__ import annotations

import json
import time
from typing import Any

from stream.config import Settings
from stream.state.client import RedisClient, connect
from stream.state.keys import Keys

FRESH_MS = 10_000


async def read_heartbeats(redis: RedisClient, keys: Keys) -> dict[str, dict[str, Any]]:
    """Worker id -> {partitions, at_ms, ready} for heartbeats of the last 10 s."""
    now = int(time.time() * 1000)
    found: dict[str, dict[str, Any]] = {}
    for worker, raw in (await redis.hgetall(keys.heartbeats)).items():
        beat = json.loads(raw)
        if now - int(beat.get("at_ms", 0)) <= FRESH_MS:
            found[str(worker)] = beat
    return found


async def alive_workers(settings: Settings) -> dict[str, dict[str, Any]]:
    redis = connect(settings)
    try:
        return await read_heartbeats(redis, Keys(settings.key_prefix))
    finally:
        await redis.aclose()
