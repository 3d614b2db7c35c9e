"""GET /segments/{id}/overlap on the real stack: exact equals the set intersection, the estimate is
exact for small segments and, past nominal entries, is the samples' count below the smaller theta.

The stack runs with lg_k 4 (K = 16: a sample trims past 32 entries), so the same users make two small
segments whose samples hold every member and two big ones whose samples have trimmed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from stream.config import Settings
from stream.sketches import hash_unit
from stream.state.keys import Keys
from stream.state.members import member_count, member_ids
from tests.integration.api.test_segments_api import create
from tests.integration.conftest import eventually, produce_json

pytestmark = pytest.mark.integration

USERS = 120
TS = "2026-01-10T10:00:00Z"


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    return settings_factory(sketch_lg_k=4)


def profile(i: int) -> dict[str, Any]:
    return {"user_id": f"u-{i}", "ts": TS, "set": {
        "city": "Pune" if i % 2 == 0 else "Goa", "vip": i % 3 == 0, "tier": "gold" if i < 10 else "none",
        "age": 20 if 5 <= i < 20 else 40}}


def prop(name: str, op: str, value: Any) -> dict[str, Any]:
    return {"profile": {"prop": name, "op": op, "value": value}}


MEMBERS = {
    "pune": {f"u-{i}" for i in range(USERS) if i % 2 == 0},  # 60
    "vip": {f"u-{i}" for i in range(USERS) if i % 3 == 0},  # 40
    "gold": {f"u-{i}" for i in range(10)},
    "young": {f"u-{i}" for i in range(5, 20)},
}
RULES = {"pune": prop("city", "eq", "Pune"), "vip": prop("vip", "eq", True), "gold": prop("tier", "eq", "gold"),
         "young": prop("age", "lt", 25)}


def exact_counts(a: set[str], b: set[str]) -> tuple[int, int, int]:
    return len(a & b), len(a - b), len(b - a)


async def test_overlap_estimate_and_exact(topics: Settings, stack: httpx.AsyncClient, redis: Redis,
                                          producer: AIOKafkaProducer) -> None:
    api, keys = stack, Keys(topics.key_prefix)
    sids = {name: (await create(api, name, rule=rule))["id"] for name, rule in RULES.items()}
    await produce_json(producer, topics.topic_profiles, [profile(i) for i in range(USERS)])

    async def all_in() -> bool:
        sizes = [await member_count(redis, keys, sids[n]) for n in MEMBERS]
        return sizes == [len(m) for m in MEMBERS.values()]

    await eventually(all_in, timeout=60, what="every segment to hold its members")
    stored = {name: await member_ids(redis, keys, sid) for name, sid in sids.items()}
    assert stored == MEMBERS

    async def overlap(a: str, b: str, mode: str | None = None) -> dict[str, Any]:
        params = {"with": sids[b]} | ({"mode": mode} if mode else {})
        resp = await api.get(f"/segments/{sids[a]}/overlap", params=params)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    # exact: the brute-force intersection of the member sets, either way round
    for a, b in (("pune", "vip"), ("vip", "pune"), ("gold", "young"), ("pune", "gold"), ("gold", "gold")):
        both, only_a, only_b = exact_counts(stored[a], stored[b])
        assert await overlap(a, b, "exact") == {"mode": "exact", "segment_id": sids[a], "with": sids[b],
                                                "both": both, "only_segment": only_a, "only_with": only_b}

    # estimate, small segments (samples below nominal entries): exact, bounds equal to the count
    body = await overlap("gold", "young")
    exact = {"both": 5, "only_segment": 5, "only_with": 10}
    assert body == {"mode": "estimate", "segment_id": sids["gold"], "with": sids["young"],
                    **{part: {"estimate": n, "lower_95": n, "upper_95": n} for part, n in exact.items()}}
    assert (await overlap("gold", "young", "estimate")) == body

    # estimate, big segments: each part is the count of its members below the smaller theta, over theta
    thetas = [float(await redis.hget(keys.sample(sids[n])[2], "theta") or 1) for n in ("pune", "vip")]
    theta = min(thetas)
    assert theta < 1.0
    body = await overlap("pune", "vip")
    sampled = {"both": MEMBERS["pune"] & MEMBERS["vip"], "only_segment": MEMBERS["pune"] - MEMBERS["vip"],
               "only_with": MEMBERS["vip"] - MEMBERS["pune"]}
    for part, members in sampled.items():
        est = body[part]
        below = sum(1 for uid in members if hash_unit(uid) < theta)
        assert est["estimate"] == pytest.approx(below / theta), part
        assert est["lower_95"] <= est["estimate"] <= est["upper_95"], part
        assert est["lower_95"] < est["upper_95"], part  # a trimmed sample says how unsure it is
    # a big segment against a small one: the small sample is read below the big one's theta
    body = await overlap("gold", "pune")
    assert body["both"]["estimate"] == pytest.approx(
        sum(1 for uid in MEMBERS["gold"] & MEMBERS["pune"] if hash_unit(uid) < thetas[0]) / thetas[0])


@pytest.mark.parametrize(("query", "status", "detail"), [
    ("", 422, "query.with: Field required"),
    ("?with=", 422, "query.with: String should have at least 1 character"),
    ("?with={sid}&mode=bogus", 422, "query.mode: Input should be 'estimate' or 'exact'"),
    ("?with=s-none", 404, "with: segment 's-none' not found"),
    ("?with=s-none&mode=exact", 404, "with: segment 's-none' not found"),
])
async def test_bad_overlaps_name_the_problem(api: httpx.AsyncClient, query: str, status: int, detail: str) -> None:
    sid = (await create(api, "Pune"))["id"]
    resp = await api.get(f"/segments/{sid}/overlap{query.replace('{sid}', sid)}")
    assert resp.status_code == status, resp.text
    assert detail in resp.json()["detail"]


async def test_overlap_of_an_unknown_segment_is_404(api: httpx.AsyncClient) -> None:
    other = (await create(api, "Pune"))["id"]
    resp = await api.get("/segments/s-none/overlap", params={"with": other})
    assert resp.status_code == 404
    assert resp.json()["detail"] == "segment 's-none' not found"


async def test_overlap_is_in_the_openapi_document_with_the_read_scope(api: httpx.AsyncClient) -> None:
    op = (await api.get("/openapi.json")).json()["paths"]["/segments/{sid}/overlap"]["get"]
    assert op["x-scope"] == "read"
    params = {p["name"]: p for p in op["parameters"]}
    assert params["with"]["required"] is True
    assert params["mode"]["schema"]["default"] == "estimate"
    assert {"200", "401", "403", "404", "422"} <= set(op["responses"])
