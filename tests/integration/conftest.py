"""Fixtures for tests against the real Kafka and Redis (started by deploy/local).

`make test` starts both and exports their addresses; run alone, the fixtures
start them the same way. Each test gets its own topics, consumer group and
Redis key prefix, so tests share the services without sharing state.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from redis.asyncio import Redis

from stream.config import Settings
from stream.kafkaio.topics import create_topics
from stream.state.client import connect
from stream.state.heartbeats import read_heartbeats
from stream.state.keys import Keys
from stream.wiring import Core

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
    env.update({f"STREAM_{name.upper()}": str(value.get_secret_value() if isinstance(value, SecretStr) else value)
                for name, value in settings.model_dump().items()})
    return env


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0, interval: float = 0.1,
                     what: str = "condition") -> Any:
    """Polls `check` until it returns something truthy; fails with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


@pytest.fixture(scope="session")
def services() -> tuple[str, str]:
    kafka, redis_url = os.environ.get("STREAM_TEST_KAFKA"), os.environ.get("STREAM_TEST_REDIS_URL")
    if kafka and redis_url:
        return kafka, redis_url
    env = dict(os.environ, STREAM_VAR_DIR=str(ROOT / "var" / "test"), STREAM_KAFKA_PORT="19092",
               STREAM_KAFKA_CONTROLLER_PORT="19093", STREAM_REDIS_PORT="16380")
    for script in ("redis.sh", "kafka.sh"):
        subprocess.run(["bash", str(ROOT / "deploy" / "local" / script), "start"], env=env, check=True)
    return "127.0.0.1:19092", "redis://127.0.0.1:16380/0"


@pytest.fixture
def settings_factory(services: tuple[str, str], tmp_path: Path) -> Callable[..., Settings]:
    kafka, redis_url = services

    def make(**overrides: Any) -> Settings:
        tag = uuid.uuid4().hex[:8]
        base: dict[str, Any] = {
            "app_id": f"t-{tag}", "kafka_bootstrap": kafka, "redis_url": redis_url, "key_prefix": f"t{tag}:",
            "topic_events": f"events-{tag}", "topic_profiles": f"profiles-{tag}",
            "topic_changes": f"changes-{tag}", "topic_dlq": f"dlq-{tag}", "topic_audit": f"audit-{tag}",
            "topic_control": f"control-{tag}", "topic_changelog": f"changelog-{tag}",
            "topic_trend_changelog": f"trend-{tag}", "partitions": 4,
            "data_dir": str(tmp_path / f"faust-{tag}"), "worker_web_port": free_port(), "api_port": free_port(),
            "timer_interval_seconds": 0.2, "api_body_timeout_seconds": 3.0,
        }
        base.update(overrides)
        return Settings(**base)

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest_asyncio.fixture
async def topics(settings: Settings) -> Settings:
    await create_topics(settings)
    return settings


@pytest_asyncio.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    keys = [k async for k in client.scan_iter(match=settings.key_prefix + "*", count=1000)]
    for i in range(0, len(keys), 1000):
        await client.delete(*keys[i : i + 1000])
    await client.aclose()


@pytest_asyncio.fixture
async def core(topics: Settings) -> AsyncIterator[Core]:
    """The stores, producer and control plane (catalog) for the test's settings."""
    built = Core.build(topics)
    yield built
    await built.close()


async def make_key(settings: Settings, name: str, scopes: list[str]) -> str:
    """An API key, made the way `stream keys create` makes one."""
    built = Core.build(settings)
    try:
        return (await built.catalog.create_key(name, scopes)).token
    finally:
        await built.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture
async def admin_key(topics: Settings) -> str:
    return await make_key(topics, "test-admin", ["admin"])


@pytest_asyncio.fixture
async def producer(services: tuple[str, str]) -> AsyncIterator[AIOKafkaProducer]:
    prod = AIOKafkaProducer(bootstrap_servers=services[0], acks="all", linger_ms=5)
    await prod.start()
    yield prod
    await prod.stop()


def stop_process(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout`; reaped either way."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Proc:
    """A service subprocess with its log kept for the failure message."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self._fh = log.open("wb")
        self.popen = subprocess.Popen(args, env=env, stdout=self._fh, stderr=subprocess.STDOUT, cwd=ROOT)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            self.popen.send_signal(sig)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            stop_process(self.popen)
        self._fh.close()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[Settings], Awaitable[Proc]]]:
    procs: list[Proc] = []

    async def start(settings: Settings, expect_partitions: int | None = None) -> Proc:
        """Starts a worker and waits until the group holds all partitions."""
        proc = Proc("worker", [sys.executable, "-m", "stream.cli", "worker"], settings_env(settings),
                    tmp_path / f"worker-{len(procs)}.log")
        procs.append(proc)
        client = connect(settings)  # the product's own client: TLS and ACL settings apply
        keys = Keys(settings.key_prefix)
        want = set(range(settings.partitions if expect_partitions is None else expect_partitions))

        async def settled() -> bool:
            assert proc.alive(), f"worker died:\n{proc.tail()}"
            held: set[int] = set()
            beats = await read_heartbeats(client, keys)
            if not any(w.endswith(f"-{proc.popen.pid}") and b.get("ready") for w, b in beats.items()):
                return False  # this worker is up (a killed one's last heartbeat may still look fresh)
            for beat in beats.values():
                if beat.get("ready"):
                    held |= set(beat["partitions"])
            return want <= held

        try:
            await eventually(settled, timeout=90, what="workers to hold every partition")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nworker log:\n{proc.tail(60)}") from None
        finally:
            await client.aclose()
        return proc

    yield start
    for proc in procs:
        proc.stop()


@pytest.fixture
def start_api(tmp_path: Path) -> Iterator[Callable[[Settings], Awaitable[str]]]:
    procs: list[Proc] = []

    async def start(settings: Settings) -> str:
        proc = Proc("api", [sys.executable, "-m", "stream.cli", "api"], settings_env(settings),
                    tmp_path / f"api-{len(procs)}.log")
        procs.append(proc)
        url = f"http://127.0.0.1:{settings.api_port}"

        async def up() -> bool:
            assert proc.alive(), f"api died:\n{proc.tail()}"
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(url + "/livez")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(up, timeout=60, what="the API to answer /livez")
        return url

    yield start
    for proc in procs:
        proc.stop()


async def produce_json(producer: AIOKafkaProducer, topic: str, records: list[dict[str, Any]]) -> None:
    futures = [await producer.send(topic, json.dumps(r).encode(), key=str(r.get("user_id", "")).encode())
               for r in records]
    await asyncio.gather(*futures)
