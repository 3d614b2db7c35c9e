"""The whole product over encrypted, authenticated transports, and what refuses what.

Kafka: the broker's SASL_SSL listener (SCRAM-SHA-512 for the worker and the CLI, PLAIN for
the API), its certificate verified against the CA kafka.sh made. Redis: TLS only (no
plaintext port), a client certificate, an ACL user with a password; the default user is off.
Every process gets only the STREAM_* settings.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.config import Settings
from stream.kafkaio.client import client_kwargs
from stream.state.client import connect
from tests.integration.conftest import ROOT, Proc, bearer, eventually, produce_json, settings_env
from tests.integration.security.conftest import REDIS_USER

pytestmark = pytest.mark.integration

RULE = {"all": [{"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
                {"event": {"name": "Charged", "where": [{"prop": "category", "op": "eq", "value": "shoes"}]}}]}


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], env=settings_env(settings), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_stack_runs_over_sasl_ssl_and_redis_tls(
        secure_settings: Settings, start_worker: Callable[[Settings], Awaitable[Proc]],
        start_api: Callable[[Settings], Awaitable[str]]) -> None:
    settings = secure_settings
    topics = cli(settings, "topics")
    assert topics.returncode == 0, topics.stderr
    assert settings.topic_events in topics.stdout and settings.topic_control in topics.stdout
    made = cli(settings, "keys", "create", "--name", "tls-admin", "--scope", "admin")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]

    await start_worker(settings)  # waits for its heartbeats, read over TLS as the ACL user
    # The API authenticates with the other mechanism the listener offers.
    url = await start_api(settings.model_copy(update={"kafka_sasl_mechanism": "PLAIN"}))

    async with httpx.AsyncClient(base_url=url, timeout=30, headers=bearer(token)) as api:
        ready = await api.get("/readyz")
        assert ready.status_code == 200 and ready.json()["redis"] and ready.json()["kafka"], ready.text
        created = await api.post("/segments", json={"name": "Pune shoe buyers", "kind": "live", "rule": RULE})
        assert created.status_code == 201, created.text
        sid = created.json()["id"]

        producer = AIOKafkaProducer(**client_kwargs(settings), acks="all")
        await producer.start()
        try:
            await produce_json(producer, settings.topic_profiles, [
                {"user_id": "u-tls", "ts": now_iso(), "set": {"city": "Pune", "email": "tls@example.com"}},
                {"user_id": "u-other", "ts": now_iso(), "set": {"city": "Goa", "email": "goa@example.com"}}])
            await produce_json(producer, settings.topic_events, [
                {"event_id": f"e-{who}", "user_id": who, "name": "Charged", "ts": now_iso(),
                 "props": {"category": "shoes", "amount": 10}} for who in ("u-tls", "u-other")])
        finally:
            await producer.stop()

        async def member() -> bool:
            resp = await api.get("/users/u-tls")
            return resp.status_code == 200 and sid in resp.json()["segments"]

        await eventually(member, timeout=60, what="u-tls to enter the segment")
        trend = (await api.get(f"/segments/{sid}/trend")).json()
        assert trend["today"]["size"] == 1, trend
        assert sid not in (await api.get("/users/u-other")).json()["segments"]

        export = await api.get(f"/segments/{sid}/export.csv", params={"fields": "user_id,email,city"})
        assert export.status_code == 200, export.text
        assert list(csv.reader(io.StringIO(export.text, newline=""))) == [
            ["user_id", "email", "city"], ["u-tls", "tls@example.com", "Pune"]]

    # The transition went out on segment-changes over SASL_SSL too.
    consumer = AIOKafkaConsumer(settings.topic_changes, **client_kwargs(settings), group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        change = json.loads((await asyncio.wait_for(consumer.getone(), timeout=30)).value)
    finally:
        await consumer.stop()
    assert (change["segment_id"], change["user_id"], change["change"]) == (sid, "u-tls", "entered")

    # The product's client logged in as the ACL user named in the URL (its password URL-decoded).
    redis = connect(settings)
    try:
        assert await redis.acl_whoami() == REDIS_USER
    finally:
        await redis.aclose()
