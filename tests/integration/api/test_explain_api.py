"""GET /segments/{id}/users/{user_id}/explain on the real stack: the verdict, each node's evidence
(count, sum, the window) and when time alone will move the user, for a windowed rule; a custom list's
stored membership; 404s; the audit record (the route is pii)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from stream.config import Settings
from tests.integration.api.test_segments_api import create
from tests.integration.conftest import bearer, eventually, make_key, produce_json

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
RULE = {"all": [
    {"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
    {"event": {"name": "Charged", "count": {"op": "gte", "value": 2},
               "sum": {"prop": "amount", "op": "gte", "value": 100}, "within_days": 30}},
]}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def charged(uid: str, n: int, ts_ms: int, amount: float) -> dict[str, Any]:
    return {"event_id": f"{uid}-e{n}", "user_id": uid, "name": "Charged", "ts": ts_ms, "props": {"amount": amount}}


async def test_explain_a_windowed_rule(topics: Settings, stack: httpx.AsyncClient, producer: AIOKafkaProducer) -> None:
    api = stack
    sid = (await create(api, "Pune big spenders", kind="past_behavior", rule=RULE))["id"]
    now = int(time.time() * 1000)
    first, second = now - 10 * DAY_MS, now - 2 * DAY_MS
    await produce_json(producer, topics.topic_profiles, [
        {"user_id": uid, "ts": now - 20 * DAY_MS, "set": {"city": "Pune"}} for uid in ("in-1", "out-1", "out-2")])
    await produce_json(producer, topics.topic_events, [
        charged("in-1", 1, first, 60), charged("in-1", 2, second, 50.5),  # 2 events, 110.5: in until the 1st ages out
        charged("out-1", 1, second, 200),  # 1 event: out, and time will not help
        charged("out-2", 1, now - 45 * DAY_MS, 80), charged("out-2", 2, now - 40 * DAY_MS, 80),  # too old
    ])

    async def member() -> bool:
        # out-1's Charged may sit on another partition than in-1's: wait until it is counted too
        # (asked too early, its explain once said count 0 under a loaded run).
        user = (await api.get("/users/in-1")).json()
        counted = (await api.get(f"/segments/{sid}/users/out-1/explain")).json()
        return (sid in user.get("segments", []) and (await api.get("/users/out-2")).status_code == 200
                and counted.get("rule", {}).get("children", [{}, {}])[1].get("count") == 1)

    await eventually(member, what="in-1 to enter, out-1's event to count and out-2 to be known")

    asked = int(time.time() * 1000)
    resp = await api.get(f"/segments/{sid}/users/in-1/explain")
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert (body["segment_id"], body["user_id"], body["member"], body["matches"]) == (sid, "in-1", True, True)
    # leaves when the first Charged leaves the 30-day window (now - 30 d < ts): at first + 30 days
    assert body["next_change_at"] == iso(first + 30 * DAY_MS)
    root = body["rule"]
    assert (root["type"], root["value"]) == ("all", True)
    assert root["summary"]
    profile, event = root["children"]
    assert (profile["type"], profile["value"], profile["actual"]) == ("profile", True, "Pune")
    assert "children" not in profile
    assert "count" not in profile
    assert (event["type"], event["value"], event["count"], event["sum"]) == ("event", True, 2, 110.5)
    assert "Charged" in event["summary"]
    window = event["window"]
    assert asked - 30 * DAY_MS - 5000 <= ms(window["from"]) <= int(time.time() * 1000) - 30 * DAY_MS
    assert asked - 5000 <= ms(window["to"]) <= int(time.time() * 1000)

    out = (await api.get(f"/segments/{sid}/users/out-1/explain")).json()
    assert (out["member"], out["matches"], out["next_change_at"]) == (False, False, None)
    event = out["rule"]["children"][1]
    assert (event["value"], event["count"], event["sum"]) == (False, 1, 200)
    old = (await api.get(f"/segments/{sid}/users/out-2/explain")).json()
    assert (old["member"], old["matches"], old["next_change_at"]) == (False, False, None)
    assert old["rule"]["children"][1]["count"] == 0  # both events are older than the window

    # pii, audited with the segment and the user
    reader = await make_key(topics, "reader", ["read"])
    denied = await api.get(f"/segments/{sid}/users/in-1/explain", headers=bearer(reader))
    assert denied.status_code == 403
    assert "pii" in denied.json()["detail"]

    async def audited() -> dict[str, Any] | None:
        records = (await api.get("/audit", params={"limit": 50})).json()["records"]
        return next((r for r in records if r["route"] == "/segments/{sid}/users/{user_id}/explain"
                     and r.get("user_id") == "in-1"), None)

    record = await eventually(audited, what="the explain request's audit record")
    assert (record["key"], record["status"], record["segment_id"]) == ("test-admin", 200, sid)


async def test_explain_a_custom_list_and_unknowns(topics: Settings, stack: httpx.AsyncClient,
                                                  producer: AIOKafkaProducer) -> None:
    api = stack
    await produce_json(producer, topics.topic_profiles, [{"user_id": u, "ts": 1, "set": {"city": "Goa"}}
                                                         for u in ("l-1", "l-2", "a/b")])

    async def known() -> bool:
        return all([(await api.get(f"/users/{u}")).status_code == 200 for u in ("l-1", "l-2", "a%2Fb")])

    await eventually(known, what="the users to be known")
    sid = (await create(api, "VIPs", kind="custom_list", rule=None))["id"]
    uploaded = await api.post(f"/segments/{sid}/list", content=b"user_id\nl-1\na/b\n",
                              headers={"content-type": "text/csv"})
    assert uploaded.status_code == 200, uploaded.text

    async def listed() -> bool:
        return sid in (await api.get("/users/l-1")).json()["segments"]

    await eventually(listed, what="the upload to add l-1")
    assert (await api.get(f"/segments/{sid}/users/l-1/explain")).json() == {
        "segment_id": sid, "user_id": "l-1", "member": True, "matches": True, "next_change_at": None, "rule": None}
    assert (await api.get(f"/segments/{sid}/users/l-2/explain")).json()["member"] is False
    slashed = (await api.get(f"/segments/{sid}/users/a%2Fb/explain")).json()
    assert (slashed["user_id"], slashed["member"]) == ("a/b", True)

    for path, detail in ((f"/segments/{sid}/users/nobody/explain", "user 'nobody' not found"),
                         ("/segments/s-none/users/l-1/explain", "segment 's-none' not found")):
        resp = await api.get(path)
        assert resp.status_code == 404, resp.text
        assert resp.json()["detail"] == detail
