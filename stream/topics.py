"""Creates the product's Kafka topics with the settings they need.

`events` uses LogAppendTime: the broker's append instant splits a new
segment's history between its backfill and the live agents, so it must be
monotonic per partition and independent of producers' clocks.
"""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stream.config import Settings

RETAIN_FOREVER = "-1"


def topic_specs(settings: Settings) -> list[NewTopic]:
    n = settings.partitions
    return [
        NewTopic(settings.topic_events, n, 1, topic_configs={"message.timestamp.type": "LogAppendTime"}),
        # Partial profile updates cannot be compacted away, so profiles are kept in full.
        NewTopic(settings.topic_profiles, n, 1, topic_configs={"retention.ms": RETAIN_FOREVER}),
        NewTopic(settings.topic_changes, n, 1),
        NewTopic(settings.topic_dlq, n, 1),
    ]


async def create_topics(settings: Settings) -> list[str]:
    """Creates missing topics; returns the names it created. Existing ones are left alone."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10000)
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


async def kafka_reachable(bootstrap: str, timeout_ms: int = 2000) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    try:
        await admin.start()
        await admin.describe_cluster()
        return True
    except Exception:
        return False
    finally:
        await admin.close()
