"""The one settings object: every knob the services read from the environment.

Frozen so that no module can change configuration behind another's back; a
test builds its own `Settings(...)` instead of mutating a shared one. Every
variable is named here with its meaning; README's table is generated from
these descriptions (tests/unit/test_config.py keeps the two in step).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

CHANNELS: tuple[str, ...] = ("email", "sms", "whatsapp", "push", "web_push")

KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Environment variables are the field names upper-cased with a `STREAM_` prefix."""

    model_config = SettingsConfigDict(env_prefix="STREAM_", frozen=True, extra="ignore")

    # -- identity and topics ------------------------------------------------------------------
    app_id: str = Field("live-segments", description="Faust app id and Kafka consumer group.")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated.")
    redis_url: str = Field("redis://127.0.0.1:6380/0",
                           description="Redis URL holding all derived state (a seed node's URL in cluster mode).")
    redis_cluster: bool = Field(False, description="Talk to a Redis Cluster (seed nodes in STREAM_REDIS_URL, "
                                                   "comma separated).")
    key_prefix: str = Field("ls:", description="Prefix of every Redis key, so stacks can share a Redis.")
    topic_events: str = Field("events", description="Input topic of user events.")
    topic_profiles: str = Field("profiles", description="Input topic of profile updates.")
    topic_changes: str = Field("segment-changes", description="Output topic, one message per transition.")
    topic_dlq: str = Field("events-dlq", description="Output topic for invalid input with its reason.")
    topic_audit: str = Field("audit", description="Output topic of every pii, write and admin API request.")
    topic_control: str = Field("ls-control", description="Compacted log of record of everything people author "
                                                         "(segments, lists, campaigns, journeys, keys, forgets).")
    topic_changelog: str = Field("ls-changelog", description="Compacted changelog of per-user state, "
                                                             "co-partitioned with the inputs (stream rebuild).")
    topic_trend_changelog: str = Field("ls-trend-changelog",
                                       description="Compacted changelog of each segment's daily trend counters.")
    partitions: int = Field(8, ge=1, description="Partition count used when the topics are created.")
    replication_factor: int = Field(1, ge=1, description="Replication factor used when the topics are created.")
    events_retention_ms: int = Field(-1, ge=-1, description="Retention of events and profiles (-1: forever); "
                                                            "bounds a new past_behavior segment's look-back.")
    # -- transport security ---------------------------------------------------------------------
    kafka_security_protocol: KafkaProtocol = Field("PLAINTEXT", description="Kafka security protocol.")
    kafka_sasl_mechanism: SaslMechanism = Field("SCRAM-SHA-512", description="SASL mechanism (SASL_* protocols).")
    kafka_sasl_username: str = Field("", description="SASL user name.")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password.")
    kafka_ssl_cafile: str = Field("", description="CA bundle that signs the brokers' certificates (SSL protocols).")
    kafka_ssl_certfile: str = Field("", description="Client certificate for mutual TLS (optional).")
    kafka_ssl_keyfile: str = Field("", description="Client private key for mutual TLS (optional).")
    redis_username: str = Field("", description="Redis ACL user (overrides the URL's).")
    redis_password: SecretStr = Field(SecretStr(""), description="Redis password (overrides the URL's).")
    redis_ssl_ca_certs: str = Field("", description="CA bundle for rediss:// URLs (default: the system's).")
    redis_ssl_certfile: str = Field("", description="Client certificate for Redis mutual TLS (optional).")
    redis_ssl_keyfile: str = Field("", description="Client private key for Redis mutual TLS (optional).")
    # -- services ---------------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="Address the query API binds.")
    api_port: int = Field(8000, description="Port the query API binds.")
    api_max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest JSON request body the API reads.")
    api_max_upload_bytes: int = Field(512 << 20, ge=1024, description="Largest custom-list upload the API reads.")
    api_body_timeout_seconds: float = Field(30.0, gt=0, description="Longest wait for the next chunk of a request "
                                                                    "body before answering 408.")
    worker_web_port: int = Field(6066, description="Port of the worker's web server (/metrics, /livez, /readyz).")
    timezone: str = Field("UTC", description="IANA zone whose midnights split trend days.")
    data_dir: str = Field("var/faust", description="Faust's local data directory.")
    # -- engine -----------------------------------------------------------------------------------
    sketch_lg_k: int = Field(12, ge=4, le=20, description="log2 of the sketch's nominal entries.")
    dedupe_ttl_seconds: int = Field(7 * 86400, ge=60, description=(
        "How far back `stream rebuild` reads the events log to give each user's dedupe window "
        "(their newest 64 event ids) back."))
    user_cache_size: int = Field(
        100_000, ge=0, description="Users a worker keeps in memory after committing them (0: none)."
    )
    batch_size: int = Field(1000, ge=1, description="Most events taken from the stream per batch.")
    # 0.005 s since the batch intake (whole fetches, stream/agents/intake.py): at 3,700 events/s (half
    # a worker's rate) the end-to-end p50/p99 were 0.084/0.245 s with 0.02, 0.070/0.238 s with 0.01,
    # 0.055/0.188 and 0.051/0.217 s with 0.005. Before the intake, 0.02 beat 0.01 (per-message
    # delivery made small batches dear). A backlog fills batches to batch_size either way.
    batch_timeout_seconds: float = Field(0.005, gt=0, description="Longest wait to fill a batch.")
    timer_interval_seconds: float = Field(0.5, gt=0, description="How often due window changes are checked.")
    max_future_seconds: int = Field(300, ge=1, description="Clock-skew allowance: events stamped further ahead are "
                                                           "invalid, and a live segment's backfill looks back this "
                                                           "far before its creation.")
    max_id_length: int = Field(256, ge=8, description="Longest user_id or event_id accepted from Kafka.")
    max_props: int = Field(100, ge=1, description="Most props (or profile set entries) one message may carry.")
    max_value_length: int = Field(1024, ge=16, description="Longest property name or string value accepted.")
    max_message_bytes: int = Field(64 * 1024, ge=1024, description="Largest input message accepted.")
    changelog: bool = Field(True, description="Write per-user state and trend counters to the changelog topics.")
    redis_wait_replicas: int = Field(1, ge=0, description="Replicas each touched Redis master must acknowledge "
                                                          "before input is acknowledged (capped at those attached).")
    redis_wait_timeout_ms: int = Field(2000, ge=10, description="How long one WAIT for replicas may block.")
    job_concurrency: int = Field(4, ge=1, description="Job parts (partitions) a worker runs at once.")
    backfill_group_seconds: float = Field(2.0, ge=0, description="Segments created within this long of each other "
                                                                 "share one backfill scan.")
    retry_max_seconds: float = Field(5.0, gt=0, description="Longest back-off between retries while Redis or "
                                                            "Kafka is unreachable.")

    @property
    def kafka_url(self) -> str:
        """Faust wants `kafka://host:port;host:port`."""
        return "kafka://" + ";".join(self.kafka_bootstrap.split(","))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
