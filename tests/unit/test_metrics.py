"""The metrics contract: what ops' dashboards and `promtool` rely on.

Every metric is exercised generically (found by type in `stream.metrics`), so a
metric added later is covered without editing this file.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from stream import metrics

pytestmark = pytest.mark.unit

# Families prometheus_client's default collectors add (process, GC, platform):
# standard names that ops expect unprefixed.
STANDARD_PREFIXES = ("process_", "python_")
USERISH_LABEL = re.compile(r"user|email|phone|token|event_id", re.IGNORECASE)


def _product_metrics() -> dict[str, MetricWrapperBase]:
    return {attr: value for attr, value in vars(metrics).items() if isinstance(value, MetricWrapperBase)}


@pytest.fixture
def observed() -> Iterator[None]:
    """One sample on every metric, so the exposition has a series per family to lint.

    The labelled series it adds are removed afterwards: the registry is
    process-wide, and other tests may read `/metrics` in the same session.
    """
    created: list[tuple[MetricWrapperBase, tuple[str, ...]]] = []
    for metric in _product_metrics().values():
        values = tuple(f"test{i}" for i in range(len(metric._labelnames)))
        target = metric.labels(*values) if values else metric
        if values and metric is not metrics.BUILD_INFO:
            created.append((metric, values))
        if isinstance(target, Counter):
            target.inc()
        elif isinstance(target, Gauge):
            target.set(1)
        elif isinstance(target, Histogram):
            target.observe(0.01)
        else:  # pragma: no cover - a new metric type needs a branch here
            pytest.fail(f"no way to observe {type(target).__name__}")
    metrics.set_build_info()
    yield
    for metric, values in created:
        metric.remove(*values)


def _families(text: str) -> dict[str, str]:
    """Exported family name -> type, from the `# TYPE` lines."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            out[name] = kind
    return out


def _label_names(text: str) -> set[str]:
    names: set[str] = set()
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" in line:
            labels = line[line.index("{") + 1 : line.rindex("}")]
            names.update(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', labels))
    return names


def test_module_defines_metrics() -> None:
    assert len(_product_metrics()) >= 16


def test_render_returns_prometheus_text() -> None:
    body, content_type = metrics.render()
    assert isinstance(body, bytes)
    assert content_type.startswith("text/plain")
    assert body.endswith(b"\n")


@pytest.mark.usefixtures("observed")
def test_promtool_check_metrics_passes() -> None:
    body, _ = metrics.render()
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


@pytest.mark.usefixtures("observed")
def test_every_product_family_starts_with_stream() -> None:
    text = metrics.render()[0].decode()
    families = _families(text)
    strays = [name for name in families if not name.startswith(("stream_", *STANDARD_PREFIXES))]
    assert strays == []
    for metric in _product_metrics().values():
        assert metric._name.startswith("stream_"), metric._name


@pytest.mark.usefixtures("observed")
def test_counters_end_in_total_and_nothing_else_does() -> None:
    for name, kind in _families(metrics.render()[0].decode()).items():
        if name.startswith("stream_"):
            assert name.endswith("_total") == (kind == "counter"), (name, kind)


@pytest.mark.usefixtures("observed")
def test_no_label_identifies_a_user() -> None:
    text = metrics.render()[0].decode()
    declared = {label for m in _product_metrics().values() for label in m._labelnames}
    offending = sorted(name for name in declared | _label_names(text) if USERISH_LABEL.search(name))
    assert offending == []


@pytest.mark.usefixtures("observed")
def test_contract_names_are_exported() -> None:
    families = _families(metrics.render()[0].decode())
    expected = {
        "stream_events_consumed_total": "counter",
        "stream_events_processed_total": "counter",
        "stream_dlq_messages_total": "counter",
        "stream_end_to_end_latency_seconds": "histogram",
        "stream_event_time_lag_seconds": "gauge",
        "stream_consumer_lag_messages": "gauge",
        "stream_batch_size": "histogram",
        "stream_segment_transitions_total": "counter",
        "stream_segment_members": "gauge",
        "stream_window_expiries_total": "counter",
        "stream_recount_duration_seconds": "histogram",
        "stream_export_duration_seconds": "histogram",
        "stream_export_rows_total": "counter",
        "stream_api_requests_total": "counter",
        "stream_api_request_duration_seconds": "histogram",
        "stream_build_info": "gauge",
    }
    assert {name: families.get(name) for name in expected} == expected
    assert not any(name.endswith("_created") for name in families)


def test_label_sets() -> None:
    labels = {m._name: tuple(m._labelnames) for m in _product_metrics().values()}
    assert labels["stream_events_consumed"] == ("topic",)
    assert labels["stream_events_processed"] == ("topic", "outcome")
    assert labels["stream_dlq_messages"] == ("reason",)
    assert labels["stream_consumer_lag_messages"] == ("topic", "partition")
    assert labels["stream_segment_transitions"] == ("segment_id", "change")
    assert labels["stream_segment_members"] == ("segment_id",)
    assert labels["stream_api_requests"] == ("route", "method", "status")
    assert labels["stream_api_request_duration_seconds"] == ("route", "method")
    assert labels["stream_build_info"] == ("version", "python")


def test_latency_buckets_span_1ms_to_30s() -> None:
    buckets = metrics.END_TO_END_LATENCY._upper_bounds
    assert buckets[0] == 0.001
    assert buckets[-2] == 30.0  # the last is +Inf


def test_build_info_carries_the_package_version() -> None:
    import stream

    metrics.set_build_info()
    text = metrics.render()[0].decode()
    assert re.search(rf'^stream_build_info\{{[^}}]*version="{re.escape(stream.__version__)}"', text, re.M)


def test_a_revoked_partition_stops_reporting_lag() -> None:
    metrics.CONSUMER_LAG.labels("events", "7").set(42)
    metrics.forget_consumer_lag("events", 7)
    metrics.forget_consumer_lag("events", 7)  # never reported (or already gone): no error
    assert 'partition="7"' not in metrics.render()[0].decode()
