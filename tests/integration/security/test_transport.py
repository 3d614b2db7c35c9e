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
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError

from stream.config import Settings
from stream.kafkaio.client import client_kwargs, kafka_refusal
from stream.state.client import connect, endpoint, redis_refusal
from stream.state.resp import RespRouter
from tests.integration.conftest import ROOT, Proc, bearer, eventually, produce_json, settings_env
from tests.integration.security.conftest import (
    KAFKA_USER,
    REDIS_PASSWORD,
    REDIS_USER,
    SecureKafka,
    SecureRedis,
)

pytestmark = pytest.mark.integration

RULE = {"all": [{"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
                {"event": {"name": "Charged", "where": [{"prop": "category", "op": "eq", "value": "shoes"}]}}]}


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], env=settings_env(settings), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def changed(settings: Settings, **update: object) -> Settings:
    """A validated copy (model_copy(update=...) would keep a str where a SecretStr belongs)."""
    return Settings(**{**settings.model_dump(), **update})


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

    worker = await start_worker(settings)  # waits for its heartbeats, read over TLS as the ACL user
    assert f"Authenticated as {KAFKA_USER} via SCRAM-SHA-512" in worker.log.read_text(), worker.tail()
    # The API authenticates with the other mechanism the listener offers.
    url = await start_api(changed(settings, kafka_sasl_mechanism="PLAIN"))

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

        async def counted() -> bool:  # the trend's counters follow the membership shortly after
            return bool((await api.get(f"/segments/{sid}/trend")).json()["today"]["size"] == 1)

        await eventually(member, timeout=60, what="u-tls to enter the segment")
        await eventually(counted, timeout=30, what="today's trend to count u-tls")
        assert sid not in (await api.get("/users/u-other")).json()["segments"]

        async def exported() -> list[list[str]]:
            export = await api.get(f"/segments/{sid}/export.csv", params={"fields": "user_id,email,city"})
            assert export.status_code == 200, export.text
            return list(csv.reader(io.StringIO(export.text, newline="")))

        assert await exported() == [["user_id", "email", "city"], ["u-tls", "tls@example.com", "Pune"]]

        # A job (exact recount) over the same transports.
        recount = await api.post(f"/segments/{sid}/recount")
        assert recount.status_code == 202, recount.text

        async def recounted() -> bool:
            job = (await api.get(f"/jobs/{recount.json()['job_id']}")).json()
            assert job["status"] != "failed", job
            return bool(job["status"] == "done")

        await eventually(recounted, timeout=60, what="the recount job")
        exact = (await api.get(f"/segments/{sid}/insights", params={"mode": "exact"})).json()
        assert (exact["size"], exact["reachability"]["email"]) == (1, 1), exact

        # `stream rebuild` reads Kafka over SASL_SSL and rewrites Redis over TLS.
        rebuilt = await asyncio.to_thread(cli, settings, "rebuild", "--wipe", "--quiet")
        assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
        await eventually(member, timeout=60, what="u-tls back in the segment after the rebuild")
        assert await exported() == [["user_id", "email", "city"], ["u-tls", "tls@example.com", "Pune"]]

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


async def test_redis_refuses_plaintext_anonymous_and_wrong_credentials(
        secure_redis: SecureRedis, secure_kafka: SecureKafka) -> None:
    good = Settings(**secure_redis.settings())
    assert await redis_refusal(good) is None

    # No plaintext port, and the TLS port does not speak plain RESP.
    plaintext = changed(good, redis_url=secure_redis.url(scheme="redis"))
    client = connect(plaintext)
    with pytest.raises(RedisConnectionError) as plain_err:
        await client.ping()
    await client.aclose()
    assert not isinstance(plain_err.value, AuthenticationError), plain_err.value

    # Over TLS, but anonymous: the default user is off.
    anonymous = changed(good, redis_url=secure_redis.url(user="", password=""))
    reason = await redis_refusal(anonymous)
    assert reason is not None and "requires authentication" in reason and "STREAM_REDIS_PASSWORD" in reason, reason

    # A wrong password is refused at once (not retried for seconds), saying whose.
    wrong = changed(good, redis_url=secure_redis.url(password="not-it"))
    client = connect(wrong)
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match="invalid username-password pair"):
        await client.ping()
    assert time.monotonic() - started < 3, "a refused password was retried"
    await client.aclose()
    reason = await redis_refusal(wrong)
    assert reason is not None and f"refused the credentials of user {REDIS_USER!r}" in reason, reason
    # STREAM_REDIS_PASSWORD wins over the URL's password.
    assert await redis_refusal(changed(wrong, redis_password=REDIS_PASSWORD)) is None

    # The raw RESP path (worker commits, exports) authenticates the same way and is refused the same way.
    for settings in (anonymous, wrong):
        router = RespRouter(endpoint(settings))
        with pytest.raises(AuthenticationError):
            await router.execute([(None, [b"PING"])])
        await router.close()
    router = RespRouter(endpoint(good))
    assert await router.execute([(None, [b"ACL", b"WHOAMI"])]) == [REDIS_USER]
    await router.close()

    # The certificate is verified: the Kafka CA did not sign Redis's.
    untrusted = changed(good, redis_ssl_ca_certs=str(secure_kafka.ca))
    reason = await redis_refusal(untrusted)
    assert reason is not None and "TLS certificate is not trusted" in reason, reason

    # Redis asks for a client certificate.
    no_cert = changed(good, redis_ssl_certfile="", redis_ssl_keyfile="")
    client = connect(no_cert, retry=None, retry_on_error=[])
    with pytest.raises(RedisConnectionError):
        await client.ping()
    await client.aclose()


async def test_kafka_refuses_clients_without_sasl(secure_kafka: SecureKafka, secure_redis: SecureRedis) -> None:
    good = Settings(**secure_kafka.settings())
    assert await kafka_refusal(good) is None
    variants = {
        "PLAINTEXT": ({"kafka_security_protocol": "PLAINTEXT"}, "closed the connection at once"),
        "TLS without SASL": ({"kafka_security_protocol": "SSL"}, "closed the connection at once"),
        "SCRAM, wrong password": ({"kafka_sasl_password": "not-it"},
                                  f"SASL SCRAM-SHA-512 authentication of user {KAFKA_USER!r} failed"),
        "PLAIN, wrong password": ({"kafka_sasl_mechanism": "PLAIN", "kafka_sasl_password": "not-it"},
                                  f"SASL PLAIN authentication of user {KAFKA_USER!r} failed"),
        "untrusted CA": ({"kafka_ssl_cafile": str(secure_redis.pki.ca)}, "TLS certificate is not trusted"),
    }
    for name, (update, why) in variants.items():
        settings = changed(good, **update)
        producer = AIOKafkaProducer(**client_kwargs(settings), request_timeout_ms=5000)
        with pytest.raises(KafkaError):
            await producer.start()
        await producer.stop()
        consumer = AIOKafkaConsumer("events", **client_kwargs(settings), group_id=None, request_timeout_ms=5000)
        with pytest.raises(KafkaError):
            await consumer.start()
        await consumer.stop()
        reason = await kafka_refusal(settings)
        assert reason is not None and why in reason, (name, reason)


async def test_services_say_which_dependency_refused_them(secure_settings: Settings,
                                                          secure_redis: SecureRedis) -> None:
    """A refused password or protocol is a clear line and exit status 2, not a traceback or a hang."""
    redis_at = f"redis at 127.0.0.1:{secure_redis.port}"
    cases = [
        (["worker"], {"kafka_sasl_password": "not-it"},
         f"stream worker: kafka at {secure_settings.kafka_bootstrap}: SASL SCRAM-SHA-512 authentication of "
         f"user {KAFKA_USER!r} failed"),
        (["api"], {"redis_password": "not-it"},
         f"stream api: {redis_at} refused the credentials of user {REDIS_USER!r}"),
        (["topics"], {"kafka_security_protocol": "SSL"}, "stream topics: kafka at"),
        (["keys", "create", "--name", "k", "--scope", "read"],
         {"redis_url": secure_redis.url(password="not-it")},
         f"stream keys: {redis_at} refused the credentials of user {REDIS_USER!r}"),
    ]
    for args, update, says in cases:
        done = cli(changed(secure_settings, **update), *args)
        assert done.returncode == 2, (args, done.returncode, done.stderr[-2000:])
        assert says in done.stderr, (args, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, (args, done.stderr[-2000:])


async def test_readyz_says_why_once_redis_refuses_a_running_api(
        secure_settings: Settings, secure_redis: SecureRedis,
        start_api: Callable[[Settings], Awaitable[str]]) -> None:
    """The password changed under a running API: /readyz is 503 and says the credentials were
    refused, naming no host or user (it needs no key)."""
    admin = connect(Settings(**secure_redis.settings()))
    user, password = "api-rotated", "first-pass"
    await admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    try:
        settings = changed(secure_settings, redis_url=secure_redis.url(user=user, password=password))
        topics = cli(settings, "topics")
        assert topics.returncode == 0, topics.stderr
        url = await start_api(settings)
        async with httpx.AsyncClient(base_url=url, timeout=30) as api:
            ready = await api.get("/readyz")
            assert ready.status_code == 200 and ready.json()["reasons"] == [], ready.text
            await admin.execute_command("ACL", "SETUSER", user, "resetpass", ">second-pass")
            await admin.execute_command("CLIENT", "KILL", "USER", user)  # pooled connections log in again

            async def refused() -> bool:
                got = await api.get("/readyz")
                return got.status_code == 503 and got.json()["reasons"] == [
                    "redis refused the credentials (see the API log)"]

            await eventually(refused, timeout=30, interval=0.2, what="/readyz to say the credentials were refused")
            body = (await api.get("/readyz")).json()
            assert body["redis"] is False and body["kafka"] is True, body
            assert user not in json.dumps(body) and str(secure_redis.port) not in json.dumps(body), body
    finally:
        await admin.execute_command("ACL", "DELUSER", user)
        await admin.aclose()
