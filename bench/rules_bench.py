"""Per-event cost of each rule kind, and of a heavy user next to a light one, on the real Redis.

    python -m bench.rules_bench [--redis-url URL] [--events N] [--heavy 100000]

The engine runs in-process over the real Redis store (EngineHarness: no Kafka,
a manual clock, the changelog's records built and kept in memory), one segment at a time, so a row
to an event's path (load, fold, decide, commit, side effects). `none` is the
same events with no segment: the floor every row shares.

The heavy user has `--heavy` events inside a 30-day windowed sum condition,
written straight into its stored state (folding them one by one would take
hours: that cost is the point); then it and light users (10 events in the
window each) receive the same number of events, one per batch for both, so
the ratio compares one touch with one touch. The engine has the worker's user
cache (`user_cache_size`), so a user touched again is not read back from Redis;
the cold row empties the cache before every touch, so each one reads the
user's whole hash (the heavy user's 800 KB of blocks included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from typing import Any

from stream.config import Settings
from stream.control.catalog import segment_record
from stream.control.records import ControlKind, ControlRecord, record_key
from stream.membership import UserState, aggregates_for
from stream.rules import fold, parse_rule
from stream.segments import Segment, make_segment
from stream.state.store import EngineStore
from stream.state.userhash import BLOCK_PREFIX, agg_field, decode_hash
from stream.testing import EngineHarness
from stream.wiring import Core

MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
CART = {"all": [
    {"event": {"name": "AddToCart", "within_days": 1, "before": {"hours": 1}}},
    {"not": {"sequence": {"steps": [{"name": "AddToCart"}, {"name": "Charged"}], "max_span": {"hours": 1}}}}]}
CASES: dict[str, dict[str, Any] | None] = {
    "none": None,
    "v1 count within 7 days": {"event": {"name": "Charged", "count": {"op": "gte", "value": 2}, "within_days": 7}},
    "v1 sum within 30 days": {"event": {"name": "Charged", "sum": {"prop": "amount", "op": "gte", "value": 500},
                                        "within_days": 30}},
    "30-minute window": {"event": {"name": "Charged", "within": {"minutes": 30}}},
    "before range (45-90 days)": {"event": {"name": "Charged", "within_days": 90, "before": {"days": 45}}},
    "first time": {"all": [{"event": {"name": "Charged", "within_days": 7}},
                           {"not": {"event": {"name": "Charged", "before": {"days": 7}}}}]},
    "min/max/avg/distinct 30 days": {"event": {"name": "Charged", "within_days": 30,
                                               "min": {"prop": "amount", "op": "lt", "value": 50},
                                               "max": {"prop": "amount", "op": "gte", "value": 300},
                                               "avg": {"prop": "amount", "op": "gt", "value": 100},
                                               "distinct": {"prop": "category", "op": "gte", "value": 3}}},
    "sequence, 1-hour span": {"sequence": {"steps": [{"name": "AddToCart"}, {"name": "Charged"}],
                                           "max_span": {"hours": 1}, "within_days": 7}},
    "abandoned cart": CART,
}
HEAVY_RULE = {"event": {"name": "Charged", "sum": {"prop": "amount", "op": "gte", "value": 500}, "within_days": 30}}


def _events(n: int, users: int, now_ms: int, rng: random.Random, prefix: str) -> list[dict[str, Any]]:
    names = ["Charged", "Charged", "AddToCart", "Viewed"]
    return [{"event_id": f"{prefix}{i}", "user_id": f"{prefix}u{rng.randrange(users)}", "name": rng.choice(names),
             "ts": now_ms - rng.randint(0, 20 * DAY),
             "props": {"amount": rng.randint(5, 400), "category": rng.choice(["a", "b", "c", "d"])}}
            for i in range(n)]


async def _define(core: Core, harness: EngineHarness, label: str, rule: dict[str, Any], created_ms: int) -> Segment:
    seg = make_segment(f"s-{uuid.uuid4().hex[:10]}", label, "past_behavior", parse_rule(rule), created_ms, created_ms)
    await core.materializer.apply(ControlRecord(record_key(ControlKind.SEGMENT, seg.id), segment_record(seg),
                                                0, created_ms), follow_up=False)
    await harness.engine.definitions.reload()
    return seg


async def _timed(harness: EngineHarness, events: list[dict[str, Any]], batch: int,
                 cold: EngineStore | None = None) -> float:
    """Microseconds per event; `cold`: its user cache emptied before each batch."""
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        if cold is not None:
            cold.drop_cache()
        await harness.send_events(*events[start:start + batch])
    return (time.perf_counter() - started) / len(events) * 1e6


async def _stack(redis_url: str) -> tuple[Settings, Core, EngineHarness]:
    # The changelog on, as in production: its records are built (a heavy user's blocks included)
    # and collected in memory, so a row counts their cost but not Kafka's.
    settings = Settings(redis_url=redis_url, key_prefix=f"rl{uuid.uuid4().hex[:6]}:", partitions=1, changelog=True)
    core = Core.build(settings, cache_size=settings.user_cache_size)  # the worker's user cache, as it runs
    harness = EngineHarness.create(core.store, settings)
    return settings, core, harness


async def _drop(settings: Settings, core: Core, harness: EngineHarness) -> None:
    keys = [k async for k in core.redis.scan_iter(match=settings.key_prefix + "*", count=5000)]
    for i in range(0, len(keys), 5000):
        await core.redis.delete(*keys[i:i + 5000])
    await harness.close()
    await core.close()


async def per_condition(redis_url: str, events: int, users: int = 2000) -> dict[str, float]:
    """Microseconds per event, in batches of 500 as the worker takes them."""
    out: dict[str, float] = {}
    for label, rule in CASES.items():
        settings, core, harness = await _stack(redis_url)
        try:
            now = int(time.time() * 1000)
            harness.clock.now = now / 1000
            if rule is not None:
                await _define(core, harness, label, rule, now - 100 * DAY)
            rng = random.Random(5)
            await _timed(harness, _events(events // 4, users, now, rng, "w"), 500)  # warm: users exist
            out[label] = round(await _timed(harness, _events(events, users, now, rng, "e"), 500), 1)
        finally:
            await _drop(settings, core, harness)
    return out


async def heavy_user(redis_url: str, heavy: int, touches: int = 200) -> dict[str, float]:
    settings, core, harness = await _stack(redis_url)
    try:
        now = int(time.time() * 1000)
        harness.clock.now = now / 1000
        seg = await _define(core, harness, "heavy", HEAVY_RULE, now - 100 * DAY)
        # The heavy user's state, written as the engine would have after `heavy` events.
        user = UserState("heavy", exists=True)
        cond = seg.conditions[0]
        agg = aggregates_for(user, seg)[0]
        for i in range(heavy):
            fold(cond, agg, now - 29 * DAY + i * (28 * DAY // heavy), {"amount": 1 + i % 7})
        user.dirty_aggs.add(seg.id)
        user.members.add(seg.id)
        user.dirty_members = True
        await core.store.commit_users([user])
        core.store.drop_cache()
        rng = random.Random(3)
        light_users = [f"light{i}" for i in range(touches)]
        await harness.send_events(*[{"event_id": f"lw{i}-{k}", "user_id": u, "name": "Charged",
                                     "ts": now - rng.randint(0, 20 * DAY), "props": {"amount": 3}}
                                    for i, u in enumerate(light_users) for k in range(10)])

        def touch(uid: str, i: int) -> dict[str, Any]:
            return {"event_id": f"t-{uid}-{i}", "user_id": uid, "name": "Charged", "ts": now - 1000 + i,
                    "props": {"amount": 2}}

        light_us = await _timed(harness, [touch(u, i) for i, u in enumerate(light_users)], 1)
        heavy_us = await _timed(harness, [touch("heavy", i) for i in range(touches)], 1)
        # Cold: each touch a cache miss (a user back after the cache let it go), read whole from Redis.
        light_cold = await _timed(harness, [touch(u, touches + i) for i, u in enumerate(light_users)], 1,
                                  cold=core.store)
        heavy_cold = await _timed(harness, [touch("heavy", touches + i) for i in range(touches)], 1, cold=core.store)
        stored = decode_hash(await core.redis.hgetall(core.keys.user("heavy")))
        return {"heavy_events_in_window": heavy, "light_us_per_event": round(light_us, 1),
                "heavy_us_per_event": round(heavy_us, 1), "heavy_user_cost_ratio": round(heavy_us / light_us, 2),
                "light_cold_us_per_event": round(light_cold, 1), "heavy_cold_us_per_event": round(heavy_cold, 1),
                "heavy_user_cold_ratio": round(heavy_cold / light_cold, 2),
                "heavy_state_bytes": sum(len(v) for v in stored.values()),  # the whole window, blocks included
                "heavy_blocks": sum(1 for name in stored if name.startswith(BLOCK_PREFIX)),
                "heavy_rewritten_bytes": len(stored.get(agg_field(seg.id), ""))}  # what a touch rewrites
    finally:
        await _drop(settings, core, harness)


async def run(redis_url: str, events: int, heavy: int) -> dict[str, Any]:
    costs = await per_condition(redis_url, events)
    floor = costs["none"]
    return {"us_per_event": costs, "over_no_segment": {k: round(v / floor, 2) for k, v in costs.items()},
            "heavy": await heavy_user(redis_url, heavy)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6380/0")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--heavy", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.redis_url, args.events, args.heavy)), indent=2))


if __name__ == "__main__":
    main()
