"""A private, throwaway redis-server for the state tests.

Private so that the tests can FLUSHDB freely and run without the deploy/local
stack; no persistence, since nothing here must survive the session.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from stream.config import Settings
from stream.state.client import endpoint
from stream.state.lua import LuaRunner
from stream.state.resp import RespRouter
from tests.integration.conftest import stop_process

_STARTUP_DEADLINE_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def private_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    workdir = tmp_path_factory.mktemp("redis")
    port = _free_port()
    log = (workdir / "redis.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + _STARTUP_DEADLINE_SECONDS
        while not _answers_ping(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not start: see {workdir / 'redis.log'}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc, timeout=10)
        log.close()


@pytest.fixture
async def private_redis(private_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(private_redis_url, decode_responses=True)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def lua(private_redis: aioredis.Redis, private_redis_url: str) -> AsyncIterator[LuaRunner]:
    """The production script runner (redis-py for single calls, the raw router for batches)."""
    runner = LuaRunner(private_redis, RespRouter(endpoint(Settings(redis_url=private_redis_url))))
    try:
        yield runner
    finally:
        await runner.close()
