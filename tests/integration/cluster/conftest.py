"""A real Redis Cluster (3 masters, 3 replicas) for the cluster tier, from deploy/local/redis_cluster.sh.

One cluster for the whole session, in its own var dir and on its own ports
(STREAM_TEST_REDIS_CLUSTER_PORT, default 27001..27006), started fresh and
stopped at the end. Under `make test`'s test processes (pytest-xdist) each
process has a cluster of its own, 10 ports further per process (gw1:
27011..27016) and its own var dir: the failover drill kills a master, which
another process's test must not see. Tests here get settings with `redis_cluster=True` and the
seed nodes in `redis_url`; their keys carry the test's own prefix, so tests
share the cluster without sharing state. A drill that kills a master restarts
it afterwards (it rejoins as a replica), so later tests see six nodes again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis.crc import key_slot

from stream.config import Settings
from stream.state.client import RedisClient, connect
from tests.integration.conftest import ROOT

SCRIPT = ROOT / "deploy" / "local" / "redis_cluster.sh"


class Cluster:
    """The cluster's nodes, addressed by port; processes are found by their pid files only."""

    def __init__(self, var: Path, first_port: int) -> None:
        self.var = var
        self.ports = [first_port + i for i in range(6)]
        self.env = dict(os.environ, STREAM_VAR_DIR=str(var), STREAM_REDIS_CLUSTER_PORT=str(first_port),
                        STREAM_REDIS_CLUSTER_BUS_PORT=str(first_port + 100))

    @property
    def url(self) -> str:
        return ",".join(f"redis://127.0.0.1:{p}" for p in self.ports[:3])

    def run(self, *args: str) -> str:
        done = subprocess.run(["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True)
        assert done.returncode == 0, f"redis_cluster.sh {' '.join(args)} failed:\n{done.stderr[-3000:]}"
        return done.stdout

    def start(self) -> None:
        """Starts the nodes that are not running and waits for cluster_state:ok everywhere."""
        self.run("start")

    def stop(self) -> None:
        self.run("stop")

    def pid(self, port: int) -> int:
        return int((self.var / "run" / f"redis-cluster-{port}.pid").read_text())

    def slot_owners(self, skip: int | None = None) -> dict[int, list[tuple[int, int]]]:
        """Master port -> its slot ranges, as the first live node (other than `skip`) sees them;
        masters flagged failed are left out."""
        for port in self.ports:
            if port == skip:
                continue
            out = subprocess.run(["redis-cli", "-p", str(port), "cluster", "nodes"], capture_output=True, text=True)
            if out.returncode != 0 or not out.stdout.strip():
                continue
            found: dict[int, list[tuple[int, int]]] = {}
            for line in out.stdout.splitlines():
                parts = line.split()
                if "master" not in parts[2] or "fail" in parts[2] or len(parts) < 9:
                    continue
                ranges = [r.split("-") for r in parts[8:] if not r.startswith("[")]
                found[int(parts[1].split("@")[0].rsplit(":", 1)[1])] = [(int(r[0]), int(r[-1])) for r in ranges]
            return found
        raise AssertionError("no cluster node answers")

    def owner(self, key: str, skip: int | None = None) -> int | None:
        """The port of the master serving `key`'s slot (None while no live master does)."""
        slot = int(key_slot(key.encode()))
        for port, ranges in self.slot_owners(skip).items():
            if any(a <= slot <= b for a, b in ranges):
                return port
        return None

    def kill(self, port: int) -> None:
        """kill -9 of one node, by its pid, and waits until the process is gone."""
        pid = self.pid(port)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise AssertionError(f"redis node {port} (pid {pid}) did not die")


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Cluster]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist
    n = int(worker[2:]) if worker.startswith("gw") else 0
    var = Path(os.environ.get("STREAM_TEST_VAR_DIR", str(ROOT / "var" / "test"))) / f"cluster{worker and '-' + worker}"
    cluster = Cluster(var, int(os.environ.get("STREAM_TEST_REDIS_CLUSTER_PORT", "27001")) + 10 * n)
    running = any((var / "run" / f"redis-cluster-{p}.pid").exists() for p in cluster.ports)
    if not running:  # a fresh cluster per run: no keys or nodes.conf left by an earlier one
        shutil.rmtree(var / "redis-cluster", ignore_errors=True)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], redis_cluster: Cluster) -> Settings:
    """The test's settings, on the cluster (the parent conftest's fixtures build on these)."""
    return settings_factory(redis_url=redis_cluster.url, redis_cluster=True)


@pytest_asyncio.fixture
async def redis(settings: Settings) -> AsyncIterator[RedisClient]:
    """A cluster client; afterwards the test's keys go, from every master (scan_iter covers each)."""
    client = connect(settings)
    yield client
    async for key in client.scan_iter(match=settings.key_prefix + "*", count=1000):
        await client.delete(key)
    await client.aclose()
