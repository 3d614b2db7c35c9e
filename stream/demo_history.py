"""`stream demo --days N`: N days of history, lived by the engine itself on a simulated clock.

A trend point is a day's entered/exited counters, moved by the engine when a
transition happens, dated by the engine's clock. Events sent now with old
timestamps cannot make a past day: a windowed rule evaluated now simply
does not hold for them. So the history is lived, hour by hour:

* the demo segments are created (through the control log, as the API does)
  as of N days ago, the first local midnight of the history;
* users sign up over the period (a third on the first day), each with a
  profile; events follow a daily rhythm and grow with the users;
* each simulated hour is produced to the real `events`/`profiles` topics,
  acknowledged, and applied by an `Engine` on the same Redis whose clock is
  that hour, with the real partitions and offsets; then the window timers of
  that hour fire. Entries, exits, window expiries and the day counters are
  the engine's own, and so are the changelogs and the resume points.

Kafka stays the log of record: every message is in the topics, every
definition in the control log, every state change in the changelog, so
`stream rebuild` restores the demo too. A worker restarted afterwards finds
the resume points past these messages and skips them. The history needs a
stack with no segments yet and no worker running (`stack.sh demo` stops the
worker around it).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaProducer

from stream.config import Settings
from stream.engine.engine import Engine
from stream.generate import CATEGORIES, EVENT_NAMES, random_profile
from stream.kafkaio.client import client_kwargs
from stream.outputs import Message
from stream.rules import parse_segment
from stream.state.heartbeats import read_heartbeats
from stream.wiring import Core

HOUR_MS = 3_600_000


class HistoryRefused(RuntimeError):
    """The stack is not in a state where a history can be lived (segments exist, a worker runs)."""

    def __init__(self, reason: str, already_loaded: bool = False) -> None:
        super().__init__(reason)
        self.already_loaded = already_loaded


@dataclass
class HistorySummary:
    days: int
    users: int
    events: int
    segments: int
    seconds: float


def history_start(now_s: float, days: int, zone: str) -> datetime:
    """The local midnight `days` days before today's."""
    local = datetime.fromtimestamp(now_s, ZoneInfo(zone))
    return (local - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)


def hourly_events(rng: random.Random, active_users: int, hour_of_day: int, per_user_day: float) -> int:
    """Events in one hour: per active user and day, shaped by a daily rhythm (quiet at 4 am,
    busiest at 8 pm)."""
    rhythm = 1.0 + 0.8 * math.sin((hour_of_day - 14) / 24 * 2 * math.pi)
    mean = active_users * per_user_day / 24 * rhythm
    return max(0, int(rng.gauss(mean, math.sqrt(max(mean, 1.0)))))


async def load_history(settings: Settings, segments: Sequence[dict[str, object]], days: int, users: int,
                       events_per_user_day: float = 1.5, seed: int = 42, quiet: bool = False) -> HistorySummary:
    started = time.monotonic()
    core = Core.build(settings)
    producer = AIOKafkaProducer(**client_kwargs(settings), linger_ms=5, acks="all")
    try:
        if (await core.segments.load_index()).segments:
            raise HistoryRefused("the stack already has segments: a history can only be lived on a fresh stack "
                                 "(`make down`, delete var/, `make run`), or use --days 0", already_loaded=True)
        for _ in range(150):  # a worker stopped just now keeps a fresh heartbeat for up to 10 s
            if not await read_heartbeats(core.redis, core.keys):
                break
            await asyncio.sleep(0.1)
        else:
            raise HistoryRefused("a worker is running: the history is lived by the demo's own engine, so stop "
                                 "the workers first (`stack.sh demo` does)")
        now_s = time.time()
        start = history_start(now_s, days, settings.timezone)
        start_ms = int(start.timestamp() * 1000)
        for body in segments:
            await core.catalog.create_segment(parse_segment(dict(body)), created_ms=start_ms)
        clock = _Clock(start_ms / 1000)
        engine = Engine(core.store, settings, core.outputs, clock=clock, writer="demo")
        await engine.resume.assign(range(settings.partitions))
        await engine.definitions.reload()
        await producer.start()

        rng = random.Random(seed)
        signup = sorted(start_ms if i < users // 3 else rng.randint(start_ms, int(now_s * 1000))
                        for i in range(users))
        uids = [f"d-{i}" for i in range(users)]
        joined = 0
        sent_events = 0
        shown = None
        hours = int((now_s * 1000 - start_ms) // HOUR_MS) + 1
        for h in range(hours):
            hour_start = start_ms + h * HOUR_MS
            hour_end = min(hour_start + HOUR_MS, int(now_s * 1000))
            if hour_end <= hour_start:
                break
            batch: list[tuple[int, str, str, bytes]] = []  # (ts, topic, key, value)
            while joined < users and signup[joined] < hour_end:
                uid = uids[joined]
                body = {"user_id": uid, "ts": signup[joined], "set": random_profile(rng, uid),
                        "subscriptions": {c: rng.random() > 0.15 for c in ("email", "sms", "whatsapp", "push")}}
                batch.append((signup[joined], settings.topic_profiles, uid, _dump(body)))
                joined += 1
            local_hour = datetime.fromtimestamp(hour_start / 1000, ZoneInfo(settings.timezone)).hour
            for n in range(hourly_events(rng, joined, local_hour, events_per_user_day) if joined else 0):
                i = min(int(rng.paretovariate(1.2)) - 1, joined - 1) if rng.random() < 0.5 else rng.randrange(joined)
                uid = uids[i]
                ts = max(rng.randint(hour_start, hour_end - 1), signup[i])
                body = {"event_id": f"demo-{h}-{n}", "user_id": uid, "name": rng.choice(EVENT_NAMES[:6]),
                        "ts": ts, "props": {"category": rng.choice(CATEGORIES),
                                            "amount": round(rng.lognormvariate(4, 1), 2)}}
                batch.append((ts, settings.topic_events, uid, _dump(body)))
            batch.sort(key=lambda row: row[0])
            messages = await _produce(producer, batch)
            sent_events += sum(1 for m in messages if m.topic == settings.topic_events)
            if messages:
                clock.now = max(ts for ts, *_ in batch) / 1000
                await engine.process(sorted(messages, key=lambda m: (m.topic, m.partition, m.offset)))
            clock.now = (hour_end - 1) / 1000
            await _fire_timers(engine, settings.partitions)
            day = datetime.fromtimestamp(hour_start / 1000, ZoneInfo(settings.timezone)).date()
            if not quiet and (day != shown or h == hours - 1):
                shown = day
                end = "\r" if sys.stderr.isatty() else "\n"
                sys.stderr.write(f"demo history: {day} ({h + 1}/{hours} hours), {joined:,} users, "
                                 f"{sent_events:,} events   {end}")
                sys.stderr.flush()
        clock.now = time.time()
        await _fire_timers(engine, settings.partitions)
        if not quiet:
            sys.stderr.write("\n")
        return HistorySummary(days, joined, sent_events, len(segments), time.monotonic() - started)
    finally:
        await producer.stop()
        await core.close()


async def _fire_timers(engine: Engine, partitions: int) -> None:
    """Every window change due by the engine's clock (2,000 users per call)."""
    for _ in range(100):
        if await engine.expire_due(range(partitions)) == 0:
            return


@dataclass
class _Clock:
    now: float

    def __call__(self) -> float:
        return self.now


def _dump(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


async def _produce(producer: AIOKafkaProducer, rows: list[tuple[int, str, str, bytes]]) -> list[Message]:
    """Sends and waits for the acknowledgements: the engine applies what the broker holds, at
    the partition, offset and append instant the broker gave it."""
    futures = [await producer.send(topic, value, key=key.encode()) for _, topic, key, value in rows]
    out: list[Message] = []
    for (_, topic, key, value), meta in zip(rows, await asyncio.gather(*futures), strict=True):
        out.append(Message(topic, meta.partition, meta.offset, key.encode(), value, int(meta.timestamp)))
    return out
