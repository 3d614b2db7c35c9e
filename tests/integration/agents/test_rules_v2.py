"""Rules v2 on the real stack: every new condition kind equals the oracle after backfill, live
events and an exact recount; time alone moves users within 5 s of the due instant.

Segments (past_behavior, so the creation backfill folds history into every new
condition, plus one live one): a 30-minute window, an hour window, a `before`
range (lapsed), first-time, min/max/avg/distinct, a sequence with a 1-hour
span, abandoned cart, from/to, and two levels of `in_segment`.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from stream.config import Settings
from stream.rules import Node, parse_rule, parse_segment
from stream.state.jobs import JobKind, JobStore
from stream.state.keys import Keys
from stream.state.members import is_member, member_ids
from stream.wiring import Core
from tests.integration.conftest import Proc, eventually, produce_json
from tests.integration.scenario import read_topic
from tests.oracle import RawEvent, oracle_member

pytestmark = pytest.mark.integration

MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
NAMES = ["Viewed", "Opened", "Launched", "Charged", "AddToCart"]
CATEGORIES = ["shoes", "books", "toys", "food", "bags"]
# Every range edge the rules below have, as a distance behind now.
EDGES = (30 * MIN, HOUR, DAY, 7 * DAY, 14 * DAY, 30 * DAY, 45 * DAY, 90 * DAY)
NOW0 = int(time.time() * 1000)
FROM = "2026-01-01T00:00:00Z"
FROM_MS = 1_767_225_600_000

CART = {"all": [
    {"event": {"name": "AddToCart", "within_days": 1, "before": {"hours": 1}}},
    {"not": {"sequence": {"steps": [{"name": "AddToCart"}, {"name": "Charged"}], "max_span": {"hours": 1}}}},
]}
RULES: dict[str, dict[str, Any]] = {
    "viewed_30m": {"event": {"name": "Viewed", "within": {"minutes": 30}}},
    "opened_2_in_1h": {"event": {"name": "Opened", "count": {"op": "gte", "value": 2}, "within": {"hours": 1}}},
    "lapsed": {"all": [{"event": {"name": "Charged", "within_days": 90, "before": {"days": 45}}},
                       {"not": {"event": {"name": "Charged", "within_days": 45}}}]},
    "first_time": {"all": [{"event": {"name": "Launched", "within_days": 7}},
                           {"not": {"event": {"name": "Launched", "before": {"days": 7}}}}]},
    "big_spender": {"event": {"name": "Charged", "avg": {"prop": "amount", "op": "gt", "value": 200}}},
    "browser": {"event": {"name": "Viewed", "distinct": {"prop": "category", "op": "gte", "value": 3},
                          "within_days": 30}},
    "range": {"event": {"name": "Charged", "min": {"prop": "amount", "op": "lt", "value": 50},
                        "max": {"prop": "amount", "op": "gte", "value": 300}, "within_days": 14}},
    "quick_buy": {"sequence": {"steps": [{"name": "AddToCart"}, {"name": "Charged"}], "max_span": {"hours": 1},
                               "within_days": 30}},
    "cart": CART,
    "since_jan": {"event": {"name": "Opened", "count": {"op": "gte", "value": 3}, "from": FROM}},
}
OUTER = {  # in_segment, two levels; filled with ids once the inner segments exist
    "loyal": lambda ids: {"all": [{"in_segment": ids["big_spender"]}, {"not": {"in_segment": ids["cart"]}}]},
    "loyal_reachable": lambda ids: {"all": [{"in_segment": ids["loyal"]}, {"reachable": "email"}]},
}
LIVE_RULE = {"event": {"name": "Opened", "within": {"hours": 1}, "avg": {"prop": "amount", "op": "gte", "value": 100}}}


def _clear_of_edges(ts: int) -> bool:
    """Twenty minutes from every edge at any instant of the test's first ten minutes."""
    return ts < NOW0 - 2 * MIN and all(not (NOW0 - edge - 20 * MIN < ts < NOW0 - edge + 20 * MIN) for edge in EDGES)


def _workload(seed: int, users: int, events: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    uids = [f"v2-{i}" for i in range(users)]
    profiles = [{"user_id": u, "ts": NOW0 - DAY, "set": {"email": f"{u}@mail.example"}}
                for u in uids if rng.random() < 0.6]
    out: list[dict[str, Any]] = []
    while len(out) < events:
        uid = rng.choice(uids)
        name = rng.choice(NAMES)
        # Recent hours are dense so the short windows hold users; the rest spans 100 days.
        back = rng.randint(0, 3 * HOUR) if rng.random() < 0.35 else rng.randint(0, 100 * DAY)
        ts = NOW0 - back
        if not _clear_of_edges(ts):
            continue
        props = {"amount": rng.choice([rng.randint(5, 60), rng.randint(60, 450)]), "category": rng.choice(CATEGORIES)}
        if rng.random() < 0.05:
            props["amount"] = "n/a"  # not a number: min/max/avg skip it
        body = {"event_id": f"v2-e{len(out)}", "user_id": uid, "name": name, "ts": ts, "props": props}
        out.append(body)
        if name == "AddToCart" and rng.random() < 0.5:  # a purchase after the add, inside or outside an hour
            gap = rng.choice([rng.randint(1, 50) * MIN, rng.randint(70, 300) * MIN])
            if _clear_of_edges(ts + gap):
                out.append({"event_id": f"v2-e{len(out)}", "user_id": uid, "name": "Charged", "ts": ts + gap,
                            "props": {"amount": rng.randint(5, 450), "category": rng.choice(CATEGORIES)}})
        if rng.random() < 0.03:
            out.append(dict(body))  # a redelivery: counts once
    return profiles, out


class Expected:
    """The oracle over the raw inputs, inner segments before the ones that use them."""

    def __init__(self, profiles: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        self.profile: dict[str, dict[str, Any]] = defaultdict(dict)
        for p in profiles:
            self.profile[p["user_id"]].update(p["set"])
        self.history: dict[str, list[RawEvent]] = defaultdict(list)
        for e in events:
            self.history[e["user_id"]].append((e["event_id"], e["name"], e["ts"], e["props"]))
        self.known = set(self.profile) | set(self.history)

    def members(self, segments: list[tuple[str, str, int, Node]], now_ms: int) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for sid, kind, created, rule in segments:  # in creation order: inner first
            out[sid] = {u for u in self.known if oracle_member(
                rule, kind=kind, created_at_ms=created, profile=self.profile[u], subscriptions={},
                events=self.history[u], now_ms=now_ms, member_of=lambda s, u=u: u in out.get(s, set()))}
        return out


async def _job_done(jobs: JobStore, job_id: str) -> dict[str, Any] | None:
    job = await jobs.get(job_id)
    assert job is not None and job.status != "failed", job
    return job.result if job.status == "done" else None


async def test_every_new_condition_equals_the_oracle_through_backfill_live_events_and_recount(
        topics: Settings, redis: Redis, core: Core, producer: AIOKafkaProducer,
        start_worker: Callable[[Settings], Awaitable[Proc]]) -> None:
    settings, keys = topics, Keys(topics.key_prefix)
    jobs = JobStore(redis, keys)
    await start_worker(settings)
    profiles, history = _workload(seed=14, users=500, events=9000)
    await produce_json(producer, settings.topic_profiles, profiles)
    await produce_json(producer, settings.topic_events, history)
    users = {e["user_id"] for e in history} | {p["user_id"] for p in profiles}

    async def history_seen() -> bool:
        return sum([await redis.scard(keys.known(p)) for p in range(settings.partitions)]) >= len(users)

    await eventually(history_seen, timeout=120, what="the history to be processed")

    made: list[tuple[str, str, int, Node]] = []
    ids: dict[str, str] = {}
    backfills: list[str] = []

    async def create(label: str, kind: str, rule: dict[str, Any]) -> None:
        seg, job = await core.catalog.create_segment(parse_segment({"name": label, "kind": kind, "rule": rule}))
        ids[label] = seg.id
        made.append((seg.id, kind, seg.created_at_ms, parse_rule(rule)))
        if job is not None:
            backfills.append(job)

    for label, rule in RULES.items():
        await create(label, "past_behavior", rule)
    for label, build in OUTER.items():
        await create(label, "past_behavior", build(ids))
    await create("live_opened", "live", LIVE_RULE)
    for job_id in backfills:
        await eventually(lambda j=job_id: _job_done(jobs, j), timeout=180, what="the creation backfills")

    # Live events after creation: they reach the past_behavior segments and the live one alike.
    rng = random.Random(7)
    tail = [{"event_id": f"v2-t{i}", "user_id": f"v2-{rng.randrange(500)}", "name": rng.choice(NAMES),
             "ts": int(time.time() * 1000) - rng.randint(0, 60_000),
             "props": {"amount": rng.randint(5, 450), "category": rng.choice(CATEGORIES)}} for i in range(1500)]
    await produce_json(producer, settings.topic_events, tail)
    expected = Expected(profiles, history + tail)

    async def matches() -> bool:
        want = expected.members(made, int(time.time() * 1000))
        got = {sid: await member_ids(redis, keys, sid) for sid, *_ in made}
        return got == want

    await eventually(matches, timeout=180, interval=1.0, what="every v2 segment to equal the oracle")
    want = expected.members(made, int(time.time() * 1000))
    sizes = {label: len(want[sid]) for label, sid in ids.items()}
    assert all(sizes[label] > 0 for label in ids), f"a segment no user is in proves little: {sizes}"
    assert any(sizes[label] < len(expected.known) for label in ids)

    for label in ("quick_buy", "cart", "big_spender", "browser", "loyal_reachable"):
        job_id = await jobs.create(JobKind.RECOUNT, ids[label], settings.partitions)
        result = await eventually(lambda j=job_id: _job_done(jobs, j), timeout=120, what=f"the {label} recount")
        now_want = expected.members(made, int(time.time() * 1000))
        assert (result["size"], result["drift"]) == (len(now_want[ids[label]]), 0), (label, result)


async def test_time_alone_moves_every_new_condition_within_five_seconds(
        topics: Settings, redis: Redis, core: Core, producer: AIOKafkaProducer,
        start_worker: Callable[[Settings], Awaitable[Proc]]) -> None:
    settings, keys = topics, Keys(topics.key_prefix)
    await start_worker(settings)
    jobs = JobStore(redis, keys)
    segs: dict[str, str] = {}
    backfills: list[str | None] = []
    for label, rule in {"viewed_30m": RULES["viewed_30m"], "cart": CART,
                        "seq_1h": {"sequence": {"steps": [{"name": "A"}, {"name": "B"}], "within": {"hours": 1}}},
                        "lapsed": RULES["lapsed"]}.items():
        seg, job = await core.catalog.create_segment(parse_segment({"name": label, "kind": "past_behavior",
                                                                    "rule": rule}))
        segs[label] = seg.id
        backfills.append(job)
    outer, job = await core.catalog.create_segment(parse_segment(
        {"name": "outer", "kind": "past_behavior", "rule": {"in_segment": segs["cart"]}}))
    segs["outer"] = outer.id
    # A backfill ends only after its handover: the events below are applied live, as they come.
    for job_id in [*backfills, job]:
        assert job_id is not None
        await eventually(lambda j=job_id: _job_done(jobs, j), timeout=60, what="the creation backfills")
    now = int(time.time() * 1000)
    due = now + 8000
    # (user, events, segment, entering?) -- each changes at `due` with no event then.
    plan = [
        ("t-exit-30m", [("Viewed", due - 30 * MIN)], "viewed_30m", False),
        ("t-enter-cart", [("AddToCart", due - HOUR)], "cart", True),
        ("t-enter-cart", [], "outer", True),  # two levels: the cascade follows the inner entry
        ("t-seq-expiry", [("A", due - HOUR), ("B", due - HOUR + 10 * MIN)], "seq_1h", False),
        ("t-lapse", [("Charged", due - 45 * DAY)], "lapsed", True),
    ]
    await produce_json(producer, settings.topic_events, [
        {"event_id": f"{uid}-{i}", "user_id": uid, "name": name, "ts": ts}
        for uid, evs, _, _ in plan for i, (name, ts) in enumerate(evs)])

    async def before_due() -> bool:
        for uid, _, label, entering in plan:
            inside = await is_member(redis, keys, segs[label], uid)
            if bool(inside) == entering:
                return False
        return True

    await eventually(before_due, timeout=6, interval=0.05, what="every user in its starting state before due")
    seen: dict[tuple[str, str], float] = {}

    async def watch() -> bool:
        t = time.time() * 1000
        for uid, _, label, entering in plan:
            if bool(await is_member(redis, keys, segs[label], uid)) == entering:
                seen.setdefault((uid, label), t)
        return len(seen) == len(plan)

    await eventually(watch, timeout=30, interval=0.05, what="the time-driven transitions")
    late = {k: round(v - due) for k, v in seen.items()}
    assert all(0 <= ms <= 5000 for ms in late.values()), f"ms after due: {late}"
    changes = [json.loads(r.value) for r in await read_topic(settings, settings.topic_changes)]
    for uid, _, label, entering in plan:
        assert {"segment_id": segs[label], "user_id": uid, "change": "entered" if entering else "exited"} in [
            {k: c[k] for k in ("segment_id", "user_id", "change")} for c in changes]
