"""Telling a fresh install from a lost Redis.

Redis holds an epoch key once it has state. No epoch while Kafka already has
a control log or a changelog means Redis was lost (or replaced by an empty
one): the workers must not start folding new input into nothing, which would
silently forget every segment's history. They wait, say so on /readyz and
in `stream_rebuild_required`, and `stream rebuild` restores the state and
sets the epoch. With both empty, this is a fresh install: the epoch is set.
"""

from __future__ import annotations

import time

from stream.config import Settings
from stream.kafkaio.log import end_offsets
from stream.state.client import RedisClient
from stream.state.keys import Keys


async def kafka_has_state(settings: Settings) -> bool:
    control = await end_offsets(settings, settings.topic_control, [0])
    if control[0] > 0:
        return True
    changelog = await end_offsets(settings, settings.topic_changelog, list(range(settings.partitions)))
    return any(v > 0 for v in changelog.values())


async def has_epoch(redis: RedisClient, keys: Keys) -> bool:
    return bool(await redis.exists(keys.epoch))


async def set_epoch(redis: RedisClient, keys: Keys, note: str) -> None:
    await redis.set(keys.epoch, f"{int(time.time() * 1000)} {note}")


async def ensure_epoch(settings: Settings, redis: RedisClient, keys: Keys) -> bool:
    """True when Redis may be used: it has state, or this is a fresh install (epoch set now)."""
    if await has_epoch(redis, keys):
        return True
    if await kafka_has_state(settings):
        return False
    await redis.set(keys.epoch, f"{int(time.time() * 1000)} fresh", nx=True)
    return True
