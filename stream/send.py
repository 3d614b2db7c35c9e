"""`stream send`: put a few events or profile updates on the input topics by hand.

For trying the product ("send an event, see the member") and for runbooks
(re-sending a corrected dead letter, or a bad one on purpose with `--raw`),
without writing a producer. Messages are JSON objects, given as arguments or
one per line on stdin, keyed by their `user_id` like any producer's.

Each message is checked with the worker's own parser (`stream.ingest`) before
anything is sent, so a typo is reported with the same reason the DLQ would
give, and nothing of a bad batch goes out. A missing `ts` is filled with now,
and a missing `event_id` of an event with a fresh random one: the two fields
a person typing a message by hand least wants to invent. `--raw` sends the
bytes as given, unchecked, keyed by `--key`: the way to see the DLQ at work.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from aiokafka import AIOKafkaProducer

from stream.config import Settings
from stream.ingest import Invalid, Limits, parse_event, parse_profile
from stream.kafkaio.client import client_kwargs

Kind = Literal["events", "profiles"]


class SendError(ValueError):
    """A message that would be dead-lettered; nothing was sent."""


@dataclass(frozen=True)
class Prepared:
    key: bytes
    value: bytes


def iso_now(now_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ms / 1000)) + f".{now_ms % 1000:03d}Z"


def prepare(kind: Kind, texts: Iterable[str], now_ms: int, limits: Limits, raw: bool = False,
            key: str = "") -> list[Prepared]:
    """The messages to send, defaults filled and each checked as the worker will; SendError names the bad one."""
    out: list[Prepared] = []
    for n, text in enumerate(texts, 1):
        if not text.strip():
            continue
        if raw:
            out.append(Prepared(key.encode(), text.encode()))
            continue
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise SendError(f"message {n}: not JSON ({exc}); use --raw to send it anyway") from exc
        if not isinstance(body, dict):
            raise SendError(f"message {n}: must be a JSON object")
        body.setdefault("ts", iso_now(now_ms))
        if kind == "events":
            body.setdefault("event_id", f"e-{uuid.uuid4().hex}")
        value = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            parsed = (parse_event if kind == "events" else parse_profile)(value, now_ms, limits)
        except Invalid as exc:
            raise SendError(f"message {n}: {exc.reason}: {exc.detail}; use --raw to send it anyway") from exc
        out.append(Prepared(parsed.user_id.encode(), value))
    return out


async def send(settings: Settings, kind: Kind, messages: list[Prepared]) -> list[tuple[int, int]]:
    """Produces them (acks=all) in order; returns each one's (partition, offset)."""
    topic = settings.topic_events if kind == "events" else settings.topic_profiles
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        placed = []
        for msg in messages:
            meta = await producer.send_and_wait(topic, msg.value, key=msg.key or None)
            placed.append((meta.partition, meta.offset))
        return placed
    finally:
        await producer.stop()
