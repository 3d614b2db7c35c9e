"""The Grafana dashboard only queries series the product really exports.

A renamed metric otherwise turns a panel silently empty: Grafana shows "No
data", exactly what a quiet system looks like.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream import metrics

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "live-segments.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
COMPOSE = ROOT / "docker-compose.yml"

METRIC_NAME = re.compile(r"\bstream_[a-zA-Z0-9_:]*")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard["panels"]) for t in p.get("targets", []) if "expr" in t]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        exprs.append(query.get("query", "") if isinstance(query, dict) else str(query or ""))
    return exprs


def _exported_series() -> set[str]:
    """Series names a query may use, from the `# TYPE` lines of the real exposition."""
    names: set[str] = set()
    for line in metrics.render()[0].decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            names.add(family)
            if kind == "histogram":
                names.update(family + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names


def test_dashboard_uid_is_fixed(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "live-segments"
    assert dashboard["title"]
    assert dashboard.get("id") is None  # a provisioned dashboard must not pin a database id


def test_every_queried_metric_is_exported(dashboard: dict[str, Any]) -> None:
    exported = _exported_series()
    used = {name for expr in _queries(dashboard) for name in METRIC_NAME.findall(expr)}
    assert used, "the dashboard queries no stream_ metric"
    assert sorted(used - exported) == []


def test_dashboard_covers_the_contract(dashboard: dict[str, Any]) -> None:
    used = {name for expr in _queries(dashboard) for name in METRIC_NAME.findall(expr)}
    families = {
        next((name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name) for name in used
    }
    assert families >= {
        "stream_events_processed_total",
        "stream_end_to_end_latency_seconds",
        "stream_consumer_lag_messages",
        "stream_dlq_messages_total",
        "stream_segment_members",
        "stream_segment_transitions_total",
        "stream_recount_duration_seconds",
        "stream_export_duration_seconds",
        "stream_api_requests_total",
        "stream_api_request_duration_seconds",
    }
    exprs = "\n".join(_queries(dashboard))
    assert "histogram_quantile" in exprs
    assert "stream_end_to_end_latency_seconds_bucket" in exprs
    assert 'status=~"4..|5.."' in exprs


def test_queries_are_balanced(dashboard: dict[str, Any]) -> None:
    for expr in _queries(dashboard):
        for open_, close in ("()", "[]", "{}"):
            assert expr.count(open_) == expr.count(close), expr


def test_panels_use_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    for panel in _panels(dashboard["panels"]):
        if panel.get("type") == "row":
            continue
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"], panel["title"]


def test_panel_ids_unique(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        parts = str(volume).split(":")
        out[parts[1]] = parts[0]
    return out


def test_provisioning_points_at_the_mounted_dashboards() -> None:
    grafana = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]
    mounts = _mounts(grafana)
    assert mounts.get("/etc/grafana/provisioning") == "./deploy/grafana/provisioning"
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    paths = [p["options"]["path"] for p in providers]
    assert paths
    for path in paths:
        assert mounts.get(path) == "./deploy/grafana/dashboards", (path, mounts)
        assert (ROOT / mounts[path] / DASHBOARD.name).exists()
