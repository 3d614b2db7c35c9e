"""The benchmark suite in --quick mode, so it never rots; figures are checked for sense."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_runs_end_to_end(services: tuple[str, str], tmp_path: Path) -> None:
    """Also starts its own Redis Cluster (STREAM_BENCH_REDIS_CLUSTER_PORT, 28001..28006 by default)."""
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--kafka", services[0], "--redis-url", services[1],
         "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["mode"] == "quick"
    pipe = result["pipeline"]
    assert pipe["ceiling"] > pipe["pipeline"] > 0
    assert pipe["baseline"] > 0
    assert pipe["pipeline_known_users"] > 0 and pipe["pipeline_two_workers"] > 0
    assert pipe["redis_by_family"]["u:{}"] > 0, "per-user hashes are the biggest per-user family"
    memory = result["memory"]
    assert memory["users"] == result["sizes"]["memory_users"]
    assert result["redis_bytes_per_user"] == memory["redis_bytes_per_user"] > 0
    assert memory["by_family"]["u:{}"] > 0 and memory["by_family"]["seg:{}:m:<n>"] > 0, memory["by_family"]
    assert result["recount"]["redis_py_scan_s"] > 0
    assert 0 < pipe["latency_p50"] <= pipe["latency_p99"]
    assert result["recount"]["recount_s"] > 0
    assert result["export"]["rows"] > 0
    assert result["estimate"]["p99_ms"] > 0
    rules = result["rules"]
    assert set(rules["us_per_event"]) >= {"none", "sequence, 1-hour span", "abandoned cart"}
    assert all(us > 0 for us in rules["us_per_event"].values())
    assert result["heavy_user_cost_ratio"] == rules["heavy"]["heavy_user_cost_ratio"] > 0
    heavy = rules["heavy"]
    assert result["heavy_user_cold_ratio"] == heavy["heavy_user_cold_ratio"] > 0
    assert heavy["heavy_state_bytes"] > heavy["heavy_events_in_window"]  # the window is stored
    assert heavy["heavy_blocks"] > 0 and heavy["heavy_rewritten_bytes"] < heavy["heavy_state_bytes"] / 2  # in blocks
    under = pipe["api_under_load"]
    assert under["requests"] > 0 and under["errors"] == 0, under
    assert result["api_insights_p99_ms_under_load"] == under["api_insights_p99_ms_under_load"] > 0
    cluster = result["cluster"]
    assert cluster["first_touch"] > 0 and cluster["known_users"] > 0 and cluster["two_workers"] > 0
    assert cluster["redis_bytes_per_user"] > 0 and cluster["replica_bytes_per_user"] > 0
    assert cluster["redis_by_family"]["u:{}"] > 0, "the cluster's families are read from every master"
    assert result["cluster_two_workers_over_one"] == cluster["two_workers"] / cluster["known_users"]
    creation = result["creation"]
    assert creation["history"] == "log" and creation["users"] == result["sizes"]["creation_users"]
    assert all(creation[f"ready_s_{n}"] > 0 and creation[f"recount_s_{n}"] > 0
               for n in creation["counts"])
    assert set(result["creation_ready_s"]) == {str(n) for n in creation["counts"]} == {"1", "10"}
    assert "creation to ready" in proc.stdout
    assert "Redis Cluster" in proc.stdout
    assert "pipeline is" in proc.stdout and "of ceiling" in proc.stdout
