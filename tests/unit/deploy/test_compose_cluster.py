"""docker-compose.yml's `cluster` profile: a Redis Cluster the profile's app actually talks to.

Static checks only, like tests/unit/deploy/test_compose.py: six redis:7 nodes in
cluster mode on the shared redis.conf, one of them creating the cluster, and
app services whose settings select cluster mode with seed nodes that exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.config import Settings
from stream.state.client import endpoint

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
NODES = [f"redis-node-{i}" for i in range(1, 7)]
APPS = ("worker-cluster", "api-cluster")


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    found = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert isinstance(found, dict)
    return found


def _command(service: dict[str, Any]) -> str:
    command = service["command"]
    return " ".join(command) if isinstance(command, list) else str(command)


def test_six_cluster_nodes_on_the_shared_config(services: dict[str, dict[str, Any]]) -> None:
    for name in NODES:
        node = services[name]
        assert node["profiles"] == ["cluster"], name
        assert node["image"].split(":") == ["redis", "7"], name
        command = _command(node)
        assert "/usr/local/etc/redis/redis.conf" in command and "--cluster-enabled yes" in command, name
        assert "./deploy/redis/redis.conf:/usr/local/etc/redis/redis.conf:ro" in node["volumes"], name
        assert "cluster_state:ok" in " ".join(node["healthcheck"]["test"]), name
    creator = _command(services["redis-node-6"])
    assert "--cluster create" in creator and "--cluster-replicas 1" in creator


def test_cluster_apps_select_cluster_mode_with_existing_seeds(services: dict[str, dict[str, Any]]) -> None:
    for name in APPS:
        app = services[name]
        assert app["profiles"] == ["cluster"], name
        env = {k.removeprefix("STREAM_").lower(): str(v) for k, v in app["environment"].items()}
        settings = Settings(**env)
        assert settings.redis_cluster, name
        ep = endpoint(settings)
        assert {host for host, _ in ep.nodes} <= set(NODES) and len(ep.nodes) >= 2, ep.nodes
        assert set(NODES) <= set(app["depends_on"]), name
        assert settings.app_id != Settings.model_construct().app_id, "its own consumer group"


def test_default_services_stay_out_of_the_profile(services: dict[str, dict[str, Any]]) -> None:
    for name in ("kafka", "redis", "topics", "worker", "api", "prometheus", "grafana"):
        assert "profiles" not in services[name], name
