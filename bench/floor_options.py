"""The Faust options both floors run with (`bench.floor_agent`, `bench.faust_stream_floor`): one
place, so the two rows differ only in how messages reach the agent."""

from __future__ import annotations

from typing import Any

from stream.config import Settings
from stream.kafkaio.client import faust_credentials


def floor_options(settings: Settings) -> dict[str, Any]:
    return {
        "broker": settings.kafka_url,
        "broker_credentials": faust_credentials(settings),
        "store": "memory://",
        "datadir": settings.data_dir,
        "topic_disable_leader": True,
        "web_port": settings.worker_web_port,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_every": 1000,
        "broker_commit_interval": 1.0,
    }
