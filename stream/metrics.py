"""Every Prometheus metric of the product, declared in one place.

Defining them once, at import, on the default registry means the worker and
the API export the same families with the same help and buckets, and a test
can check the whole contract (names, units, labels) by rendering one registry.

Naming follows DESIGN.md "Metrics": a `stream_` prefix, base units, counters
exported with `_total` (prometheus_client appends it, so Counter names here
omit it). No label ever carries a user id: labels are bounded sets (topics,
partitions, outcomes, reasons, segment ids, route templates).
"""

from __future__ import annotations

import contextlib
import platform
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

import stream

# In the text format every counter and histogram would also export a
# `<name>_created` gauge: twice the series for nothing a dashboard uses.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Outcomes of `stream_events_processed_total`, declared so callers and the
#: dashboard agree on the vocabulary.
OUTCOMES: Final[tuple[str, ...]] = ("ok", "duplicate", "invalid", "stale", "replayed", "forgotten")
#: Values of the `change` label, the same words as the `segment-changes` topic.
CHANGES: Final[tuple[str, ...]] = ("entered", "exited")

# Latency of the hot path: 1 ms (a warm batch) up to 30 s (a stalled worker).
LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
# Events per batch, up to well past the default `batch_size` of 1000.
BATCH_BUCKETS: Final[tuple[float, ...]] = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
# Recounts and exports walk a whole segment: seconds to tens of minutes.
JOB_BUCKETS: Final[tuple[float, ...]] = (
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
)
# API calls: estimates answer in milliseconds, anything past 10 s is an outage.
API_BUCKETS: Final[tuple[float, ...]] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

# --- input -----------------------------------------------------------------

EVENTS_CONSUMED: Final = Counter(
    "stream_events_consumed",
    "Messages read from an input topic, before validation; the rate ops compare to producers'.",
    ["topic"],
)
EVENTS_PROCESSED: Final = Counter(
    "stream_events_processed",
    "Messages handled, by what happened to them (ok, duplicate, invalid, stale), so redeliveries "
    "and bad input are visible apart from real work.",
    ["topic", "outcome"],
)
DLQ_MESSAGES: Final = Counter(
    "stream_dlq_messages",
    "Messages sent to the dead-letter topic, by reason; bad input must be counted, never stop the stream.",
    ["reason"],
)

# --- freshness -------------------------------------------------------------

END_TO_END_LATENCY: Final = Histogram(
    "stream_end_to_end_latency_seconds",
    "From an event's arrival in Kafka (its record timestamp) to its membership effects being written "
    "to Redis: the product's live-ness promise.",
    buckets=LATENCY_BUCKETS,
)
EVENT_TIME_LAG: Final = Gauge(
    "stream_event_time_lag_seconds",
    "Now minus the event time of the last processed event; grows when producers send late or the "
    "worker falls behind.",
)
CONSUMER_LAG: Final = Gauge(
    "stream_consumer_lag_messages",
    "Messages between a partition's high watermark and this worker's position; the series goes "
    "when the partition is revoked.",
    ["topic", "partition"],
)


def forget_consumer_lag(topic: str, partition: int) -> None:
    """Drops a revoked partition's lag series (a no-op if this worker never reported it)."""
    with contextlib.suppress(KeyError):
        CONSUMER_LAG.remove(topic, str(partition))


BATCH_SIZE: Final = Histogram(
    "stream_batch_size",
    "Events per batch taken from the stream; small batches under load mean the hot path is starved.",
    buckets=BATCH_BUCKETS,
)

# --- segments --------------------------------------------------------------

SEGMENT_TRANSITIONS: Final = Counter(
    "stream_segment_transitions",
    "Users entering or leaving a segment, one per message on the segment-changes topic.",
    ["segment_id", "change"],
)
SEGMENT_MEMBERS: Final = Gauge(
    "stream_segment_members",
    "Current members of a segment as last read from Redis; every exporter sees the same global "
    "value, so aggregate with max, not sum. Remove the series when the segment is deleted.",
    ["segment_id"],
)
WINDOW_EXPIRIES: Final = Counter(
    "stream_window_expiries",
    "Events aged out of a rolling window by the timer; membership moves with time, not only with input.",
)

# --- jobs ------------------------------------------------------------------

RECOUNT_DURATION: Final = Histogram(
    "stream_recount_duration_seconds",
    "Wall time of an exact recount job, which scans the source of truth and so grows with segment size.",
    buckets=JOB_BUCKETS,
)
EXPORT_DURATION: Final = Histogram(
    "stream_export_duration_seconds",
    "Wall time of a CSV export, from first to last row streamed.",
    buckets=JOB_BUCKETS,
)
EXPORT_ROWS: Final = Counter(
    "stream_export_rows",
    "Rows written to CSV exports (blacklisted users excluded).",
)

# --- API -------------------------------------------------------------------

API_REQUESTS: Final = Counter(
    "stream_api_requests",
    "HTTP requests answered. `route` is the route template (e.g. /users/{user_id}), never the raw "
    "path, which would carry user ids and be unbounded.",
    ["route", "method", "status"],
)
API_REQUEST_DURATION: Final = Histogram(
    "stream_api_request_duration_seconds",
    "HTTP request latency by route template; estimates must stay in milliseconds.",
    ["route", "method"],
    buckets=API_BUCKETS,
)

# --- durability and outages -------------------------------------------------

DEPENDENCY_UP: Final = Gauge(
    "stream_dependency_up",
    "1 while this process reaches the dependency (redis, kafka), 0 during an outage; the worker stops "
    "taking input meanwhile and resumes by itself.",
    ["dependency"],
)
OUTAGES: Final = Counter(
    "stream_outages",
    "Times this process found a dependency unreachable and started retrying with back-off.",
    ["dependency"],
)
RESUME_GAPS: Final = Counter(
    "stream_resume_gaps",
    "Input ranges found unapplied in Redis (a new owner, a Redis restored older) and replayed from the log.",
)
RESUME_ROLLBACKS: Final = Counter(
    "stream_resume_rollbacks",
    "Resume points found older in Redis than this worker left them: Redis lost acknowledged writes "
    "(AOF loss, restore from backup) and the gap was replayed.",
)
REBUILD_REQUIRED: Final = Gauge(
    "stream_rebuild_required",
    "1 when Redis holds no state but Kafka does (Redis was lost): run `stream rebuild`; the worker waits.",
)
CONTROL_LAG: Final = Gauge(
    "stream_control_lag_records",
    "Control-log records (definitions, lists, keys, forgets) not yet materialised in Redis by this process.",
)
AUDIT_RECORDS: Final = Counter(
    "stream_audit_records",
    "Audit records produced for pii, write and admin requests, by status class.",
    ["status"],
)
JOB_FAILURES: Final = Counter(
    "stream_job_failures",
    "Job parts that failed (recount, backfill, cleanup, forget); the job is marked failed.",
    ["type"],
)

# --- build -----------------------------------------------------------------

BUILD_INFO: Final = Gauge(
    "stream_build_info",
    "Always 1; the labels say which version is running, so a rollout shows on every dashboard.",
    ["version", "python"],
)


def set_build_info() -> None:
    """Publish this process's version once at start-up, so mixed-version fleets show up."""
    BUILD_INFO.labels(version=stream.__version__, python=platform.python_version()).set(1)


def render() -> tuple[bytes, str]:
    """Body and content type for a `/metrics` response, shared by the worker and the API."""
    return generate_latest(), CONTENT_TYPE_LATEST
