"""The alerting rules on a real Prometheus scraping a real worker and API, through real faults.

promtool's unit tests (tests/unit/deploy/test_alerts.py) prove the rules on
synthetic series; this proves they match what the processes really export
under the scrape config ops use (deploy/prometheus/local.yml.in, job names
`worker` and `api`): quiet while healthy, `StreamDependencyDown` for redis
while a private Redis is killed (and gone once it is back), and
`StreamWorkerDown` (firing after its minute) and `StreamNoWorkerUp` once the
only worker is killed. Every process killed here was started here, by its pid.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stream.config import Settings
from stream.kafkaio.topics import create_topics
from tests.integration.conftest import ROOT, Proc, eventually, free_port, stop_process
from tests.integration.drills.conftest import RedisProc

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
TEMPLATE = ROOT / "deploy" / "prometheus" / "local.yml.in"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
WATCHED = {"StreamDependencyDown", "StreamWorkerDown", "StreamNoWorkerUp", "StreamApiDown", "StreamRebuildRequired"}


class Starting(Exception):
    """Prometheus answered 503 ("Service Unavailable"): still loading its storage and rules."""


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    async def get(self, path: str, **params: str) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            response = await client.get(path, params=params)
        if response.status_code == 503:
            raise Starting(response.text)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    async def alerts(self) -> list[dict[str, Any]]:
        """Active (pending or firing) alerts: labels plus `state`."""
        return [{**a["labels"], "state": a["state"]} for a in (await self.get("/api/v1/alerts"))["alerts"]]

    async def watched(self) -> list[dict[str, Any]]:
        return [a for a in await self.alerts() if a["alertname"] in WATCHED]


@pytest.fixture
def redis_proc(tmp_path: Path) -> Iterator[RedisProc]:
    proc = RedisProc(tmp_path)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[Settings], Prometheus]]:
    if not Path(PROMETHEUS).exists():
        pytest.fail("prometheus is not installed (make provision installs Debian's prometheus)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings) -> Prometheus:
        config = tmp_path / "prometheus.yml"
        text = (TEMPLATE.read_text().replace("@API_PORT@", str(settings.api_port))
                .replace("@WORKER_PORT@", str(settings.worker_web_port)))
        config.write_text(text + f"\nrule_files:\n  - {RULES}\n")
        port = free_port()
        with (tmp_path / "prometheus.log").open("wb") as log:
            procs.append(subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT))
        return Prometheus(f"http://127.0.0.1:{port}")

    yield start
    for proc in procs:
        stop_process(proc)


async def test_alerts_follow_real_faults(settings_factory: Callable[..., Settings], redis_proc: RedisProc,
                                         start_worker: Callable[[Settings], Awaitable[Proc]],
                                         start_api: Callable[[Settings], Awaitable[str]],
                                         prometheus: Callable[[Settings], Prometheus]) -> None:
    settings = settings_factory(redis_url=redis_proc.url)
    await create_topics(settings)
    worker = await start_worker(settings)
    await start_api(settings)
    prom = prometheus(settings)
    worker_instance = f"127.0.0.1:{settings.worker_web_port}"

    async def rules_loaded() -> bool:
        try:
            groups = (await prom.get("/api/v1/rules"))["groups"]
        except (httpx.TransportError, Starting):
            return False
        return len({r["name"] for g in groups for r in g["rules"]}) >= len(WATCHED)

    await eventually(rules_loaded, timeout=60, what="Prometheus to load alerts.yml")

    async def healthy() -> bool:
        up = {r["metric"]["job"]: r["value"][1] for r in (await prom.get("/api/v1/query", query="up"))["result"]}
        return up == {"api": "1", "worker": "1"} and not await prom.watched()

    await eventually(healthy, timeout=60, what="both targets up and no watched alert active")

    # Redis killed: the worker reports it, the alert goes pending (it fires after a minute).
    redis_proc.kill()

    async def redis_down() -> list[dict[str, Any]]:
        return [a for a in await prom.watched() if a["alertname"] == "StreamDependencyDown"]

    down = await eventually(redis_down, timeout=60, what="StreamDependencyDown for the killed Redis")
    assert [(a["job"], a["instance"], a["dependency"], a["severity"]) for a in down] == \
        [("worker", worker_instance, "redis", "critical")]
    redis_proc.start()

    async def recovered() -> bool:
        return not await redis_down()

    await eventually(recovered, timeout=90, what="StreamDependencyDown to clear once Redis is back")

    # The only worker killed: its target is down, and no worker is up at all.
    worker.kill()

    async def worker_alerts() -> dict[str, dict[str, Any]] | None:
        found = {a["alertname"]: a for a in await prom.watched()}
        return found if {"StreamWorkerDown", "StreamNoWorkerUp"} <= set(found) else None

    found = await eventually(worker_alerts, timeout=60, what="the worker alerts")
    assert found["StreamWorkerDown"]["instance"] == worker_instance
    assert "StreamApiDown" not in found

    async def firing() -> bool:
        return any(a["alertname"] == "StreamWorkerDown" and a["state"] == "firing" for a in await prom.watched())

    await eventually(firing, timeout=120, interval=1.0, what="StreamWorkerDown to fire after its minute")
