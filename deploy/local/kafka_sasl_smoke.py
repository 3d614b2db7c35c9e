"""Produce and consume through the opt-in SASL_SSL listener of deploy/local/kafka.sh.

Run after `STREAM_KAFKA_SASL_PORT=... bash deploy/local/kafka.sh start`, with the
same STREAM_* variables (see the top of kafka.sh):

    .venv/bin/python deploy/local/kafka_sasl_smoke.py

For each mechanism (SCRAM-SHA-512, PLAIN) it creates a topic, produces a
message, consumes it back in a consumer group, all over TLS verified against
the generated CA; then checks that a wrong password is refused. Exit 0: all held.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

ROOT = Path(__file__).resolve().parents[2]
VAR = Path(os.environ.get("STREAM_VAR_DIR", ROOT / "var"))
HOST = os.environ.get("STREAM_KAFKA_HOST", "127.0.0.1")
PORT = os.environ["STREAM_KAFKA_SASL_PORT"]
TLS_DIR = Path(os.environ.get("STREAM_KAFKA_TLS_DIR", VAR / "kafka" / "tls"))
USER = os.environ.get("STREAM_KAFKA_SASL_USER", "stream")
PASSWORD = os.environ.get("STREAM_KAFKA_SASL_PASSWORD", "stream-secret")


def _client_args(mechanism: str, password: str = PASSWORD) -> dict[str, object]:
    return {
        "bootstrap_servers": f"{HOST}:{PORT}",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": USER,
        "sasl_plain_password": password,
        # Verifies the broker's certificate chain and its name (SAN) against the CA.
        "ssl_context": create_ssl_context(cafile=str(TLS_DIR / "ca.crt")),
    }


async def round_trip(mechanism: str) -> None:
    topic = f"sasl-smoke-{mechanism.lower()}-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**_client_args(mechanism))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    payload = f"hello over {mechanism}".encode()
    producer = AIOKafkaProducer(**_client_args(mechanism), acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, payload, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, **_client_args(mechanism), group_id=f"{topic}-group", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert message.value == payload, message
    print(f"{mechanism}: produced offset {meta.offset} to {topic} and consumed it back in a group")


async def refused(mechanism: str) -> None:
    producer = AIOKafkaProducer(**_client_args(mechanism, password="not-" + PASSWORD), request_timeout_ms=5000)
    try:
        await producer.start()
    except KafkaError as exc:
        print(f"{mechanism}: a wrong password is refused ({type(exc).__name__})")
        return
    finally:
        await producer.stop()
    raise AssertionError(f"{mechanism}: a wrong password was accepted")


async def main() -> None:
    for mechanism in ("SCRAM-SHA-512", "PLAIN"):
        await round_trip(mechanism)
        await refused(mechanism)


if __name__ == "__main__":
    asyncio.run(main())
