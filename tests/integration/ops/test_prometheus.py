"""A real Prometheus, configured from deploy/prometheus/local.yml.in, sees the stack work.

This is the ops view end to end: the scrape config ops use finds both
targets, and PromQL over what it scraped shows events flowing (a non-zero
rate) and a usable end-to-end latency histogram.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ROOT, eventually, free_port, stop_process
from tests.integration.ops.conftest import OpsStack, drive_traffic

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
TEMPLATE = ROOT / "deploy" / "prometheus" / "local.yml.in"


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            body = (await client.get("/api/v1/query", params={"query": expr})).json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    async def scalar(self, expr: str) -> float | None:
        """The single sample `expr` yields, or None while it yields nothing or NaN."""
        result = await self.query(expr)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Any]:
    """Starts Prometheus on a free port; stops it (the process we started, by its handle) at teardown."""
    if not Path(PROMETHEUS).exists():
        pytest.fail("prometheus is not installed (make provision installs Debian's prometheus)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(api_port: int, worker_port: int) -> Prometheus:
        config = tmp_path / "prometheus.yml"
        rendered = TEMPLATE.read_text().replace("@API_PORT@", str(api_port)).replace("@WORKER_PORT@", str(worker_port))
        assert "@" not in rendered, "local.yml.in has a placeholder this test does not fill"
        config.write_text(rendered)
        port = free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        procs.append(subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT))
        log.close()
        return Prometheus(f"http://127.0.0.1:{port}")

    yield start
    for proc in procs:
        stop_process(proc)


async def test_prometheus_scrapes_rate_and_latency(ops_stack: OpsStack, prometheus_factory: Any) -> None:
    prom: Prometheus = prometheus_factory(ops_stack.settings.api_port, ops_stack.settings.worker_web_port)

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(prom.url + "/-/ready")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(ready, timeout=60, what="Prometheus to be ready")

    async def both_up() -> bool:
        up = {r["metric"]["job"]: r["value"][1] for r in await prom.query("up")}
        return up == {"api": "1", "worker": "1"}

    await eventually(both_up, timeout=60, what="Prometheus to scrape the api and the worker")

    # A counter's first scrape is its baseline: traffic must land after Prometheus holds a sample.
    await drive_traffic(ops_stack)
    before = await ops_stack.processed()

    async def scraped() -> bool:
        return (await prom.scalar("sum(stream_events_processed_total)") or 0) >= before

    await eventually(scraped, timeout=30, what="Prometheus to scrape the first wave")
    await ops_stack.charged(20)

    async def rate() -> float | None:
        value = await prom.scalar('sum(rate(stream_events_processed_total{outcome="ok"}[30s]))')
        return value if value and value > 0 else None

    assert await eventually(rate, timeout=60, what="a non-zero processing rate") > 0

    assert await prom.query("stream_end_to_end_latency_seconds_bucket"), "no latency buckets scraped"
    quantile = "histogram_quantile(0.99, sum by (le) (rate(stream_end_to_end_latency_seconds_bucket[30s])))"
    p99 = await eventually(lambda: prom.scalar(quantile), timeout=60, what="a latency quantile")
    assert 0 < p99 <= 30.0
    assert await prom.query('stream_api_requests_total{job="api"}'), "the API's request counter was not scraped"
