"""A seeded synthetic workload: users with profiles, Zipf-distributed events.

Used by `stream generate`, the demo data and the benchmarks, so every figure
is measured on the same shape of traffic. Reproducible for a given seed.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from stream.config import Settings
from stream.kafkaio.client import client_kwargs

DAY_MS = 86_400_000
CITIES = ("Pune", "Mumbai", "Delhi", "Bengaluru", "Goa", "Chennai", "Kolkata", "Jaipur")
EVENT_NAMES = ("App Launched", "Viewed", "Searched", "Added To Cart", "Charged", "Rated", "Shared", "Uninstalled")
CATEGORIES = ("shoes", "books", "toys", "food", "electronics", "beauty")


@dataclass(frozen=True)
class Workload:
    seed: int = 1
    users: int = 10_000
    events: int = 100_000
    days: int = 90
    live_share: float = 0.0  # share of events stamped "now" instead of in the past
    duplicate_share: float = 0.0
    malformed_share: float = 0.0
    blacklisted_share: float = 0.05

    def user_id(self, i: int) -> str:
        return f"u{self.seed}-{i}"

    def profiles(self, now_ms: int) -> Iterator[tuple[str, bytes]]:
        rng = random.Random(self.seed)
        for i in range(self.users):
            uid = self.user_id(i)
            body: dict[str, object] = {
                "user_id": uid,
                "ts": now_ms - rng.randint(self.days * DAY_MS // 2, self.days * DAY_MS),
                "set": random_profile(rng, uid),
                "subscriptions": {
                    c: rng.random() > 0.15 for c in ("email", "sms", "whatsapp", "push") if rng.random() < 0.5
                },
                "blacklisted": rng.random() < self.blacklisted_share,
            }
            yield uid, json.dumps(body, separators=(",", ":")).encode()

    def event_stream(self, now_ms: int) -> Iterator[tuple[str, bytes]]:
        """Events in production order; names and active users are Zipf-skewed like real apps."""
        rng = random.Random(self.seed * 7919)
        name_weights = [1 / (k + 1) for k in range(len(EVENT_NAMES))]
        for n in range(self.events):
            if self.malformed_share and rng.random() < self.malformed_share:
                yield "malformed", rng.choice([b"{not json", b'{"user_id": "x"}', b'{"event_id": 1}'])
                continue
            uid = self.user_id(min(int(rng.paretovariate(1.1)) - 1, self.users - 1)
                               if rng.random() < 0.5 else rng.randrange(self.users))
            name = rng.choices(EVENT_NAMES, name_weights)[0]
            live = rng.random() < self.live_share
            ts = now_ms if live else now_ms - rng.randint(60_000, self.days * DAY_MS)
            body = {"event_id": f"e{self.seed}-{n}", "user_id": uid, "name": name, "ts": ts,
                    "props": {"category": rng.choice(CATEGORIES), "amount": round(rng.lognormvariate(4, 1), 2)}}
            value = json.dumps(body, separators=(",", ":")).encode()
            yield uid, value
            if self.duplicate_share and rng.random() < self.duplicate_share:
                yield uid, value


def random_profile(rng: random.Random, uid: str) -> dict[str, object]:
    profile: dict[str, object] = {"name": f"User {uid}", "city": rng.choice(CITIES), "age": rng.randint(16, 75)}
    if rng.random() < 0.8:
        profile["email"] = f"{uid}@example.com"
    if rng.random() < 0.6:
        profile["phone"] = f"+91{rng.randint(7 * 10**9, 10**10 - 1)}"
    if rng.random() < 0.5:
        profile["push_token"] = f"pt-{uid}"
    if rng.random() < 0.2:
        profile["web_push_token"] = f"wp-{uid}"
    return profile


async def produce(settings: Settings, workload: Workload, rate: float | None = None, progress: bool = True,
                  events: bool = True, profiles: bool = True) -> int:
    """Sends the workload; `rate` caps messages per second (None: as fast as Kafka takes them)."""
    producer = AIOKafkaProducer(**client_kwargs(settings), linger_ms=10, acks="all", max_batch_size=256 * 1024)
    await producer.start()
    sent, started = 0, time.monotonic()
    now = int(time.time() * 1000)
    try:
        streams: list[tuple[str, Iterator[tuple[str, bytes]]]] = []
        if profiles:
            streams.append((settings.topic_profiles, workload.profiles(now)))
        if events:
            streams.append((settings.topic_events, workload.event_stream(now)))
        total = (workload.users if profiles else 0) + (workload.events if events else 0)
        pending = []
        for topic, stream in streams:
            for key, value in stream:
                pending.append(await producer.send(topic, value, key=key.encode()))
                sent += 1
                if len(pending) >= 10_000:
                    await asyncio.gather(*pending)
                    pending.clear()
                    if progress:
                        _bar(sent, total, started)
                if rate:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0.01:
                        await asyncio.sleep(ahead)
        await asyncio.gather(*pending)
        if progress:
            _bar(sent, total, started)
            print(file=sys.stderr)
        return sent
    finally:
        await producer.stop()


def _bar(done: int, total: int, started: float) -> None:
    width = 30
    frac = min(1.0, done / total) if total else 1.0
    rate = done / max(1e-6, time.monotonic() - started)
    sys.stderr.write(f"\r[{'#' * int(frac * width):<{width}}] {done}/{total} messages  {rate:,.0f}/s")
    sys.stderr.flush()
