"""Creates the product's Kafka topics with the settings they need (`stream topics`).

- `events`, `profiles` use LogAppendTime: the broker's append instant splits
  a new segment's history between its backfill and the live agents, and
  dates a forget against the input it must ignore; it must be monotonic per
  partition and independent of producers' clocks. Retention is
  `STREAM_EVENTS_RETENTION_MS` (forever by default): it bounds how far a new
  past_behavior segment looks back. Profiles, partial updates that cannot be
  compacted, follow the same retention.
- the control log: one partition (one order), compacted (the latest record
  per authored thing is the thing), LogAppendTime, kept forever.
- the changelogs: compacted; the user changelog has the inputs' partition
  count, so a partition's state and its input share a number.
- `segment-changes`, `events-dlq`, `audit`: plain logs.
"""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stream.config import Settings
from stream.kafkaio.client import client_kwargs

RETAIN_FOREVER = "-1"
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}


def topic_specs(settings: Settings) -> list[NewTopic]:
    n, rf = settings.partitions, settings.replication_factor
    retention = {"retention.ms": str(settings.events_retention_ms)}
    return [
        NewTopic(settings.topic_events, n, rf, topic_configs={**APPEND_TIME, **retention}),
        NewTopic(settings.topic_profiles, n, rf, topic_configs={**APPEND_TIME, **retention}),
        NewTopic(settings.topic_changes, n, rf),
        NewTopic(settings.topic_dlq, n, rf),
        NewTopic(settings.topic_audit, 1, rf, topic_configs={**APPEND_TIME, "retention.ms": RETAIN_FOREVER}),
        NewTopic(settings.topic_control, 1, rf, topic_configs={**APPEND_TIME, **COMPACTED}),
        NewTopic(settings.topic_changelog, n, rf, topic_configs=COMPACTED),
        NewTopic(settings.topic_trend_changelog, 1, rf, topic_configs=COMPACTED),
    ]


async def create_topics(settings: Settings) -> list[str]:
    """Creates missing topics; returns the names it created. Existing ones are left alone."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings), request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topic_specs(settings) if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def kafka_reachable(settings: Settings, timeout_ms: int = 2000) -> bool:
    admin = AIOKafkaAdminClient(**client_kwargs(settings), request_timeout_ms=timeout_ms)
    try:
        await admin.start()
        await admin.describe_cluster()
        return True
    except Exception:
        return False
    finally:
        await admin.close()
