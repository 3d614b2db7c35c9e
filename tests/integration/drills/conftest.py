"""Fault drills: a private Redis (AOF, the product's redis.conf) and, where needed, a private broker.

Each drill kills processes it started itself, by pid, never the shared test
services: the rest of the suite keeps its Redis and Kafka whatever a drill does.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from stream.config import Settings
from tests.integration.conftest import ROOT, eventually, free_port


class RedisProc:
    """redis-server with AOF in its own directory, killable and restartable on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "redis-data"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = workdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, str(ROOT / "deploy" / "redis" / "redis.conf"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.dir), "--daemonize", "no", "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not self.answers():
            assert self.proc.poll() is None, f"redis-server exited:\n{self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.05)

    def answers(self) -> bool:
        out = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
        return out.stdout.strip() == "PONG"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def drill_redis(tmp_path: Path) -> Iterator[RedisProc]:
    r = RedisProc(tmp_path)
    r.start()
    yield r
    r.stop()


class KafkaProc:
    """A private single-node broker through deploy/local/kafka.sh (own var dir and ports)."""

    def __init__(self, workdir: Path) -> None:
        self.var = workdir / "kafka-var"
        self.port, self.cport = free_port(), free_port()
        self.env = dict(os.environ, STREAM_VAR_DIR=str(self.var), STREAM_KAFKA_PORT=str(self.port),
                        STREAM_KAFKA_CONTROLLER_PORT=str(self.cport))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        subprocess.run(["bash", str(ROOT / "deploy/local/kafka.sh"), "start"], env=self.env, check=True,
                       capture_output=True)

    def pid(self) -> int:
        return int((self.var / "run" / "kafka.pid").read_text())

    def kill(self) -> None:
        os.kill(self.pid(), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid(), 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run(["bash", str(ROOT / "deploy/local/kafka.sh"), "stop"], env=self.env, capture_output=True)


@pytest.fixture
def drill_kafka(tmp_path: Path) -> Iterator[KafkaProc]:
    k = KafkaProc(tmp_path)
    k.start()
    yield k
    k.stop()


@pytest_asyncio.fixture
async def own_producer(request: Any) -> AsyncIterator[Callable[[str], Any]]:
    made: list[AIOKafkaProducer] = []

    async def make(bootstrap: str) -> AIOKafkaProducer:
        prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=True,
                                request_timeout_ms=60000, retry_backoff_ms=200)
        await prod.start()
        made.append(prod)
        return prod

    yield make
    for prod in made:
        await prod.stop()


async def until_alive(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    async def probe() -> bool:
        return await asyncio.to_thread(check)

    await eventually(probe, timeout=timeout, what=what)


def drill_settings(base: Settings, **overrides: Any) -> Settings:
    return base.model_copy(update=overrides)
