"""The one settings object: every knob the services read from the environment.

Frozen so that no module can change configuration behind another's back; a
test builds its own `Settings(...)` instead of mutating a shared one.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

CHANNELS: tuple[str, ...] = ("email", "sms", "whatsapp", "push", "web_push")


class Settings(BaseSettings):
    """Environment variables are the field names upper-cased with a `STREAM_` prefix."""

    model_config = SettingsConfigDict(env_prefix="STREAM_", frozen=True, extra="ignore")

    app_id: str = Field("live-segments", description="Faust app id and Kafka consumer group.")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated.")
    redis_url: str = Field("redis://127.0.0.1:6380/0", description="Redis URL holding all derived state.")
    key_prefix: str = Field("ls:", description="Prefix of every Redis key, so stacks can share a Redis.")
    topic_events: str = Field("events", description="Input topic of user events.")
    topic_profiles: str = Field("profiles", description="Input topic of profile updates.")
    topic_changes: str = Field("segment-changes", description="Output topic, one message per transition.")
    topic_dlq: str = Field("events-dlq", description="Output topic for invalid input with its reason.")
    partitions: int = Field(8, ge=1, description="Partition count used when the topics are created.")
    api_host: str = Field("127.0.0.1", description="Address the query API binds.")
    api_port: int = Field(8000, description="Port the query API binds.")
    worker_web_port: int = Field(6066, description="Port of the worker's web server (/metrics, /livez).")
    timezone: str = Field("UTC", description="IANA zone whose midnights split trend days.")
    data_dir: str = Field("var/faust", description="Faust's local data directory.")
    sketch_lg_k: int = Field(12, ge=4, le=20, description="log2 of the sketch's nominal entries.")
    dedupe_ttl_seconds: int = Field(7 * 86400, ge=60, description="How long an event_id is remembered.")
    user_cache_size: int = Field(
        100_000, ge=0, description="Users a worker keeps decoded in memory after committing them (0: none)."
    )
    batch_size: int = Field(1000, ge=1, description="Most events taken from the stream per batch.")
    batch_timeout_seconds: float = Field(0.05, gt=0, description="Longest wait to fill a batch.")
    timer_interval_seconds: float = Field(0.5, gt=0, description="How often due window exits are checked.")
    max_future_seconds: int = Field(86400, description="Events further ahead than this are invalid.")

    @property
    def kafka_url(self) -> str:
        """Faust wants `kafka://host:port;host:port`."""
        return "kafka://" + ";".join(self.kafka_bootstrap.split(","))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
