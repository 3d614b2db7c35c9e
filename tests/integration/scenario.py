"""A seeded, randomized workload and its independent expected membership.

Used by the engine's acceptance tests: users with profiles, events with
duplicates and malformed messages, and 20+ segments mixing every condition
kind. `expected_members` recomputes membership from the raw inputs with the
brute-force oracle, sharing nothing with the engine but the rule parser.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.config import Settings
from stream.rules import parse_rule
from tests.oracle import oracle_member

DAY_MS = 86_400_000
CITIES = ["Pune", "Mumbai", "Delhi", "Goa", "Chennai"]
EVENT_NAMES = ["App Launched", "Charged", "Viewed", "Added To Cart", "Uninstalled", "Searched"]
CATEGORIES = ["shoes", "books", "toys", "food"]
WINDOWS = (1, 7, 14, 30)

RULES: list[dict[str, Any]] = [
    {"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
    {"profile": {"prop": "age", "op": "gte", "value": 30}},
    {"profile": {"prop": "city", "op": "in", "value": ["Goa", "Delhi"]}},
    {"reachable": "email"},
    {"all": [{"reachable": "sms"}, {"profile": {"prop": "age", "op": "lt", "value": 40}}]},
    {"event": {"name": "Charged"}},
    {"event": {"name": "Charged", "count": {"op": "gte", "value": 3}}},
    {"event": {"name": "Charged", "sum": {"prop": "amount", "op": "gte", "value": 500}}},
    {"event": {"name": "Charged", "where": [{"prop": "category", "op": "eq", "value": "shoes"}],
               "within_days": 30}},
    {"event": {"name": "Viewed", "count": {"op": "gte", "value": 2}, "within_days": 7}},
    {"not": {"event": {"name": "Uninstalled"}}},
    {"not": {"event": {"name": "App Launched", "within_days": 1}}},
    {"any": [{"event": {"name": "Added To Cart", "within_days": 14}}, {"reachable": "push"}]},
    {"all": [{"profile": {"prop": "city", "op": "eq", "value": "Mumbai"}},
             {"event": {"name": "Searched", "within_days": 14}}]},
    {"event": {"name": "Charged", "where": [{"prop": "amount", "op": "gt", "value": 200}],
               "count": {"op": "eq", "value": 1}}},
    {"all": [{"reachable": "whatsapp"}, {"not": {"event": {"name": "Charged", "within_days": 7}}}]},
    {"profile": {"prop": "email", "op": "contains", "value": "@corp"}},
    {"profile": {"prop": "plan", "op": "not_exists"}},
    {"event": {"name": "Added To Cart", "sum": {"prop": "amount", "op": "lt", "value": 300},
               "within_days": 30}},
    {"any": [{"reachable": "web_push"}, {"event": {"name": "Viewed", "where": [
        {"prop": "category", "op": "in", "value": ["toys", "food"]}], "count": {"op": "gte", "value": 3}}}]},
    {"all": [{"profile": {"prop": "vip", "op": "eq", "value": True}}, {"event": {"name": "App Launched"}}]},
    {"event": {"name": "Searched", "where": [{"prop": "q", "op": "exists"}], "within_days": 7}},
]


@dataclass
class Scenario:
    events: list[tuple[str, bytes]] = field(default_factory=list)  # (user key, value) in production order
    profiles: list[tuple[str, bytes]] = field(default_factory=list)
    malformed: list[tuple[str, bytes]] = field(default_factory=list)  # (topic kind, value)


def _avoid_boundaries(ts: int, now: int) -> bool:
    """Keeps timestamps away from window edges so a minutes-long test cannot straddle one."""
    return all(abs(ts - (now - d * DAY_MS)) > 20 * 60_000 for d in WINDOWS) and ts < now - 60_000


def generate(seed: int, users: int, events: int, now_ms: int, dup_share: float = 0.05,
             malformed: int = 60, live_since_ms: int | None = None, live_share: float = 0.1) -> Scenario:
    """Events are historical (up to 40 days back), except a `live_share` stamped between
    `live_since_ms` and `now_ms`, which live segments created at `live_since_ms` count."""
    rng = random.Random(seed)
    sc = Scenario()
    uids = [f"u-{seed}-{i}" for i in range(users)]
    for uid in uids:
        for k in range(rng.choice([0, 1, 1, 2, 3])):
            setter: dict[str, Any] = {"city": rng.choice(CITIES), "age": rng.randint(16, 70)}
            if rng.random() < 0.7:
                setter["email"] = f"{uid}@{rng.choice(['corp', 'mail'])}.example"
            if rng.random() < 0.5:
                setter["phone"] = f"+91{rng.randint(10**9, 10**10 - 1)}"
            if rng.random() < 0.4:
                setter["push_token"] = f"pt-{uid}"
            if rng.random() < 0.2:
                setter["web_push_token"] = f"wp-{uid}"
            if rng.random() < 0.1:
                setter["vip"] = True
            if rng.random() < 0.3:
                setter["plan"] = rng.choice(["free", "pro"])
            body: dict[str, Any] = {"user_id": uid, "ts": now_ms - rng.randint(0, 5 * DAY_MS) + k, "set": setter}
            if rng.random() < 0.3:
                body["subscriptions"] = {rng.choice(["email", "sms", "whatsapp", "push"]): rng.random() < 0.5}
            if rng.random() < 0.2:
                body["unset"] = ["plan"]
            if rng.random() < 0.05:
                body["blacklisted"] = rng.random() < 0.8
            sc.profiles.append((uid, json.dumps(body).encode()))
    rng.shuffle(sc.profiles)
    sent: list[dict[str, Any]] = []
    while len(sent) < events:
        uid = uids[min(int(rng.paretovariate(1.2)) - 1, users - 1)] if rng.random() < 0.3 else rng.choice(uids)
        name = rng.choice(EVENT_NAMES)
        if live_since_ms is not None and rng.random() < live_share:
            ts = rng.randint(live_since_ms, now_ms)
        else:
            ts = now_ms - rng.randint(0, 40 * DAY_MS)
            if not _avoid_boundaries(ts, now_ms):
                continue
        props: dict[str, Any] = {"category": rng.choice(CATEGORIES), "amount": round(rng.uniform(5, 400), 2)}
        if name == "Searched" and rng.random() < 0.6:
            props["q"] = rng.choice(["red shoes", "lego", "pizza"])
        body = {"event_id": f"e-{seed}-{len(sent)}", "user_id": uid, "name": name, "ts": ts, "props": props}
        sent.append(body)
        if rng.random() < dup_share:
            sent.append(dict(body))  # same event_id again: must count once
    sc.events = [(e["user_id"], json.dumps(e).encode()) for e in sent]
    bad_values = [b"not json", b"[1,2]", b'{"user_id": "x"}', b'{"event_id": "e", "user_id": "u", "name": "n"}',
                  b'{"event_id": "e", "user_id": "u", "name": "n", "ts": "yesterday"}',
                  b'{"event_id": 5, "user_id": "u", "name": "n", "ts": 1}',
                  b'{"event_id": "e", "user_id": "u", "name": "n", "ts": 99999999999999}']
    for i in range(malformed):
        sc.malformed.append(("events", bad_values[i % len(bad_values)] + b" " * (i // len(bad_values))))
    return sc


def expected_members(sc: Scenario, segments: dict[str, tuple[str, int, dict[str, Any]]],
                     now_ms: int) -> dict[str, set[str]]:
    """segments: id -> (kind, created_at_ms, rule json). Profiles: last write wins by ts, in log order."""
    profile: dict[str, dict[str, Any]] = defaultdict(dict)
    subs: dict[str, dict[str, bool]] = defaultdict(dict)
    last_ts: dict[str, int] = {}
    known: set[str] = set()
    for uid, raw in sc.profiles:
        body = json.loads(raw)
        known.add(uid)
        if body["ts"] < last_ts.get(uid, -1):
            continue
        last_ts[uid] = body["ts"]
        profile[uid].update(body.get("set", {}))
        for prop in body.get("unset", []):
            profile[uid].pop(prop, None)
        subs[uid].update(body.get("subscriptions", {}))
    history: dict[str, list[tuple[str, str, int, dict[str, Any]]]] = defaultdict(list)
    for uid, raw in sc.events:
        e = json.loads(raw)
        known.add(uid)
        history[uid].append((e["event_id"], e["name"], e["ts"], e["props"]))
    result: dict[str, set[str]] = {}
    for sid, (kind, created, rule_json) in segments.items():
        rule = parse_rule(rule_json)
        result[sid] = {
            uid for uid in known
            if oracle_member(rule, kind=kind, created_at_ms=created, profile=profile[uid],
                             subscriptions=subs[uid], events=history[uid], now_ms=now_ms)
        }
    return result


async def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record of the topic up to its end offsets now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(topic, p) for p in parts.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            out += [r for rs in batch.values() for r in rs]
        return out
    finally:
        await consumer.stop()
