"""deploy/prometheus/alerts.yml: valid, tested by promtool on input series, wired in, and true to the code.

`promtool test rules` on alerts.test.yml is where the alerts are shown to
fire on bad series and stay quiet on healthy ones; here it is run, and the
file is held to the rest of the repository: only metrics stream/metrics.py
exports, every alert exercised by a firing test case, every runbook link an
existing heading of docs/OPERATIONS.md, the file loaded by prometheus.yml and
mounted by docker-compose.yml, and alert state on the Grafana dashboard.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.test_grafana import _exported_series

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
PROM_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROM_DIR / "alerts.yml"
ALERT_TESTS = PROM_DIR / "alerts.test.yml"
PROMETHEUS = PROM_DIR / "prometheus.yml"
COMPOSE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "live-segments.json"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
METRIC_NAME = re.compile(r"\bstream_[a-zA-Z0-9_:]*")
# What issue 16 and the operator's guide promise an alert for.
REQUIRED = {
    "StreamWorkerDown", "StreamNoWorkerUp", "StreamApiDown", "StreamDependencyDown", "StreamDependencyFlapping",
    "StreamConsumerLagGrowing", "StreamDeadLetters", "StreamJobFailures", "StreamRebuildRequired",
    "StreamRedisRolledBack", "StreamResumeGaps", "StreamAuditNotWritten",
}


def promtool() -> str:
    found = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(found).exists():
        pytest.fail("promtool is not installed (make provision installs Debian's prometheus)")
    return found


def run_promtool(*args: str) -> str:
    done = subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=PROM_DIR, timeout=120)
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def exported_series() -> set[str]:
    """The same series names the dashboard's queries are held to."""
    return _exported_series()


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_promtool_check_rules() -> None:
    assert f"SUCCESS: {len(rules())} rules found" in run_promtool("check", "rules", str(ALERTS))


def test_promtool_unit_tests_pass() -> None:
    assert "SUCCESS" in run_promtool("test", "rules", str(ALERT_TESTS))


def test_prometheus_config_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    assert "SUCCESS: 1 rule files found" in run_promtool("check", "config", str(PROMETHEUS))


def test_compose_mounts_the_rules_beside_the_config() -> None:
    """rule_files is relative to the config file, so alerts.yml must sit in the config's directory."""
    prometheus = yaml.safe_load(COMPOSE.read_text())["services"]["prometheus"]
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in prometheus["volumes"]}
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert mounts["/etc/prometheus/alerts.yml"] == "./deploy/prometheus/alerts.yml"


def test_only_exported_metrics_are_used() -> None:
    exported = exported_series()
    used = {name for rule in rules() for name in METRIC_NAME.findall(rule["expr"])}
    assert len(used) >= 9, used
    assert sorted(used - exported) == []


def test_every_required_alert_exists_with_a_severity() -> None:
    found = {rule["alert"]: rule for rule in rules()}
    assert set(found) >= REQUIRED
    for name, rule in found.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_every_alert_has_a_firing_test_case() -> None:
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {check["alertname"] for case in cases for check in case["alert_rule_test"] if check["exp_alerts"]}
    quiet = {check["alertname"] for case in cases for check in case["alert_rule_test"] if not check["exp_alerts"]}
    names = {rule["alert"] for rule in rules()}
    assert sorted(names - fired) == [], "alerts never shown to fire"
    assert sorted(names - quiet - {"StreamResumeGaps", "StreamDependencyFlapping"}) == [], \
        "alerts never shown to stay quiet"


def test_every_alert_is_explained_in_operations() -> None:
    text = OPERATIONS.read_text()
    for rule in rules():
        assert f"| `{rule['alert']}` ({rule['labels']['severity']}) |" in text, rule["alert"]


def test_runbook_links_point_at_operations_headings() -> None:
    headings = {slug(line.lstrip("#")) for line in OPERATIONS.read_text().splitlines() if line.startswith("#")}
    links = {rule["annotations"]["runbook"] for rule in rules() if "runbook" in rule["annotations"]}
    assert links
    for link in links:
        path, _, anchor = link.partition("#")
        assert path == "docs/OPERATIONS.md" and anchor in headings, (link, sorted(headings))


def test_dashboard_shows_alert_state() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t.get("expr", "") for p in dashboard["panels"] for t in p.get("targets", [])]
    assert any(e.startswith("ALERTS{") and "Stream" in e for e in exprs), exprs
    annotations = dashboard["annotations"]["list"]
    assert any("ALERTS{" in a.get("expr", "") for a in annotations)
