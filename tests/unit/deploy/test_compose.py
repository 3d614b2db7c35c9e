"""docker-compose.yml, the Dockerfile and the Prometheus configs agree with the code.

Nothing here starts a container: these catch the drift that only shows up at
`docker compose up` (a renamed setting, a moved file, a wrong port).
"""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.config import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROMETHEUS_LOCAL = ROOT / "deploy" / "prometheus" / "local.yml.in"

KAFKA_POM = ROOT / "deploy" / "local" / "kafka" / "pom.xml"
# The compose broker runs the same Kafka release as the local one (deploy/local).
KAFKA_VERSION = ET.parse(KAFKA_POM).getroot().findtext("{http://maven.apache.org/POM/4.0.0}properties/"
                                                      "{http://maven.apache.org/POM/4.0.0}kafka.version")
# Broker settings Kafka 4 no longer has (ZooKeeper mode and the message-format knobs are gone).
REMOVED_IN_KAFKA_4 = ("zookeeper.", "log.message.format.version", "message.format.version",
                      "inter.broker.protocol.version", "broker.id.generation.enable", "reserved.broker.max.id",
                      "offsets.commit.required.acks", "control.plane.listener.name")

SERVICES = {"kafka", "redis", "topics", "worker", "api", "prometheus", "grafana"}
APP_SERVICES = {"topics", "worker", "api"}
DEFAULTS = Settings.model_construct()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    svcs = compose["services"]
    assert isinstance(svcs, dict)
    return svcs


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _dockerfile_env() -> dict[str, str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().upper().startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def _host_port_of(service: dict[str, Any], container_port: int) -> list[str]:
    return [str(p) for p in service.get("ports", []) if str(p).split(":")[-1] == str(container_port)]


def test_every_service_exists(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= SERVICES


def test_images(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert services["redis"]["image"].split(":")[0] == "redis"
    assert services["redis"]["image"].split(":")[1].startswith("7")
    assert services["prometheus"]["image"].startswith("prom/prometheus")
    assert services["grafana"]["image"].startswith("grafana/grafana")
    for name in APP_SERVICES:
        assert services[name].get("build") == ".", name


def test_kafka_is_4x_without_removed_settings(services: dict[str, dict[str, Any]]) -> None:
    assert KAFKA_VERSION and KAFKA_VERSION.split(".")[0] == "4", KAFKA_VERSION
    settings = [key.removeprefix("KAFKA_").lower().replace("_", ".") for key in _env(services["kafka"])]
    assert [key for key in settings if key.startswith(REMOVED_IN_KAFKA_4)] == []


def test_redis_loads_the_shared_config_with_aof(services: dict[str, dict[str, Any]]) -> None:
    command = services["redis"]["command"]
    words = command if isinstance(command, list) else command.split()
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["redis"]["volumes"] if v.startswith("./")}
    assert words[0] == "redis-server"
    assert mounts[words[1]] == "./deploy/redis/redis.conf"
    conf = dict(line.split(None, 1) for line in (ROOT / "deploy/redis/redis.conf").read_text().splitlines()
                if line.strip() and not line.startswith("#"))
    assert conf["appendonly"] == "yes"
    # The memory figures assume compact member buckets (~244 ids at 1M members) and user hashes.
    assert int(conf["hash-max-listpack-entries"]) >= 512
    assert int(conf["hash-max-listpack-value"]) >= 1024


def test_stream_env_vars_are_settings_fields(services: dict[str, dict[str, Any]]) -> None:
    fields = set(Settings.model_fields)
    seen = {}
    for name, service in services.items():
        for key in _env(service):
            if key.startswith("STREAM_"):
                seen[key] = name
    seen.update(dict.fromkeys((k for k in _dockerfile_env() if k.startswith("STREAM_")), "Dockerfile"))
    assert seen, "no STREAM_* settings at all"
    unknown = {key: where for key, where in seen.items() if key.removeprefix("STREAM_").lower() not in fields}
    assert unknown == {}


def test_app_env_values_validate(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        env = {k.removeprefix("STREAM_").lower(): v for k, v in _env(services[name]).items()}
        Settings(**env)  # a bad value (a port that is not an int) fails here, not in the container


def test_bind_mounts_exist(services: dict[str, dict[str, Any]]) -> None:
    named = set((yaml.safe_load(COMPOSE.read_text()) or {}).get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source} missing"
            else:
                assert source in named, f"{name}: named volume {source} not declared"


def test_worker_is_scalable(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker  # a fixed host port would clash on the second replica
    assert worker["command"] == ["stream", "worker"]


def test_api_port_matches_settings(services: dict[str, dict[str, Any]]) -> None:
    assert DEFAULTS.api_port == 8000
    api = services["api"]
    assert _host_port_of(api, DEFAULTS.api_port), api.get("ports")
    port = _env(api).get("STREAM_API_PORT", str(DEFAULTS.api_port))
    assert int(port) == DEFAULTS.api_port
    host = _env(api).get("STREAM_API_HOST") or _dockerfile_env().get("STREAM_API_HOST")
    assert host == "0.0.0.0", "the API must listen beyond the container's loopback"
    assert f":{DEFAULTS.api_port}/readyz" in " ".join(map(str, api["healthcheck"]["test"]))


def test_worker_port_matches_settings_and_prometheus(services: dict[str, dict[str, Any]]) -> None:
    assert DEFAULTS.worker_web_port == 6066
    port = int(_env(services["worker"]).get("STREAM_WORKER_WEB_PORT", DEFAULTS.worker_web_port))
    assert port == DEFAULTS.worker_web_port
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    dns = jobs["worker"]["dns_sd_configs"]
    assert any("worker" in sd["names"] and sd["port"] == port for sd in dns)
    api_targets = [t for sc in jobs["api"]["static_configs"] for t in sc["targets"]]
    assert api_targets == [f"api:{DEFAULTS.api_port}"]


def test_healthchecks_and_depends_on(services: dict[str, dict[str, Any]]) -> None:
    for name in ("kafka", "redis", "worker", "api"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["worker"]["healthcheck"]["test"][-2:] == ["stream", "check"]
    assert "topics" not in {n for n, s in services.items() if "healthcheck" in s}
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for dep, spec in depends.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            want = "service_completed_successfully" if dep == "topics" else "service_healthy"
            assert spec.get("condition") == want, (name, dep)
            if want == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no healthcheck"
    for name in ("worker", "api"):
        assert set(services[name]["depends_on"]) >= {"kafka", "redis", "topics"}
    assert set(services["topics"]["depends_on"]) == {"kafka"}
    assert services["topics"]["command"] == ["stream", "topics"]


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """'NAME://host:port,...' -> {NAME: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, address = item.strip().split("://", 1)
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def test_kafka_bootstrap_points_at_internal_listener(services: dict[str, dict[str, Any]]) -> None:
    kafka = _env(services["kafka"])
    for key in ("KAFKA_NODE_ID", "KAFKA_PROCESS_ROLES", "CLUSTER_ID", "KAFKA_CONTROLLER_QUORUM_VOTERS"):
        assert kafka.get(key), key
    listeners = _listeners(kafka["KAFKA_LISTENERS"])
    advertised = _listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols)
    assert kafka["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert kafka["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    internal = {f"{host}:{port}" for name, (host, port) in advertised.items() if host == "kafka"}
    assert internal, "no listener advertised under the service name"
    for name, (_host, port) in advertised.items():
        assert listeners[name][1] == port, f"{name} advertised on {port} but listens on {listeners[name][1]}"
    for name in APP_SERVICES:
        bootstrap = _env(services[name])["STREAM_KAFKA_BOOTSTRAP"]
        assert set(bootstrap.split(",")) <= internal, (name, bootstrap)
    probe = " ".join(map(str, services["kafka"]["healthcheck"]["test"]))
    assert any(address in probe for address in internal), "healthcheck misses the internal listener"


def test_redis_url_points_at_redis_service(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        assert _env(services[name])["STREAM_REDIS_URL"].startswith("redis://redis:6379/"), name


def test_dockerfile_runs_the_stream_cli() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"pip install[^\n]*\s\.(\s|$)", text)
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user
    assert user[-1] not in {"root", "0"}
    start = re.findall(r"^(?:CMD|ENTRYPOINT)\s+(.+)$", text, re.M)
    assert start
    assert any("stream" in line for line in start)
    assert re.search(r'^CMD \["stream", "api"\]', text, re.M)


@pytest.mark.parametrize("template", [PROMETHEUS, PROMETHEUS_LOCAL], ids=["compose", "local"])
def test_promtool_check_config(template: Path, tmp_path: Path) -> None:
    text = template.read_text().replace("@API_PORT@", "18000").replace("@WORKER_PORT@", "16066")
    assert "@" not in re.sub(r"#.*", "", text), "unfilled placeholder"
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    for rules in yaml.safe_load(text).get("rule_files") or []:  # relative to the config: copied beside it
        (tmp_path / rules).write_text((template.parent / rules).read_text())
    result = subprocess.run(
        ["promtool", "check", "config", str(config)], capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_local_template_has_both_placeholders() -> None:
    text = PROMETHEUS_LOCAL.read_text()
    assert "127.0.0.1:@API_PORT@" in text
    assert "127.0.0.1:@WORKER_PORT@" in text
