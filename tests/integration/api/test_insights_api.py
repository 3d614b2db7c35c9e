"""Membership read back through the API: trend, insights, recount, users, export, metrics."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from stream.config import Settings
from tests.integration.api.test_segments_api import create
from tests.integration.conftest import eventually, produce_json

pytestmark = pytest.mark.integration

TS = "2026-01-10T10:00:00Z"
PROFILES: list[dict[str, Any]] = [
    {"user_id": "u-1", "ts": TS, "set": {"city": "Pune", "name": 'Ana, "the" best', "email": "ana@x.io",
                                        "phone": "+911"}},
    {"user_id": "u-2", "ts": TS, "set": {"city": "Pune", "name": "Bo", "email": "bo@x.io", "phone": "+912"},
     "subscriptions": {"email": False}},
    {"user_id": "u-3", "ts": TS, "set": {"city": "Pune", "name": "Cy", "email": "cy@x.io"}, "blacklisted": True},
    {"user_id": "u-4", "ts": TS, "set": {"city": "Pune", "name": "Zoë 🇮🇳\nsecond line", "push_token": "t",
                                        "age": 31, "vip": True}},
    {"user_id": "u-5", "ts": TS, "set": {"city": "Goa", "email": "eve@x.io"}},
    {"user_id": "u-6", "ts": TS, "set": {"city": "Pune", "web_push_token": "w"}},
]
# After u-6 moves to Goa: members u-1..u-4, u-3 blacklisted (counted in size and reach, never exported).
EXPECTED_REACH = {"email": 2, "sms": 2, "whatsapp": 2, "push": 1, "web_push": 0}


async def test_membership_through_every_read_route(topics: Settings, stack: httpx.AsyncClient,
                                                   producer: AIOKafkaProducer) -> None:
    api = stack
    sid = (await create(api, "Pune"))["id"]
    with_changes = (await api.get(f"/segments/{sid}/insights", params={"mode": "exact"}))
    assert with_changes.status_code == 404
    assert "never recounted" in with_changes.json()["detail"]
    await produce_json(producer, topics.topic_profiles, PROFILES)

    async def size_is(n: int) -> bool:
        body = (await api.get(f"/segments/{sid}/insights")).json()
        return bool(body["size"]["estimate"] == n)

    await eventually(lambda: size_is(5), what="5 members")
    await produce_json(producer, topics.topic_profiles, [{"user_id": "u-6", "ts": "2026-01-11T00:00:00Z",
                                                          "set": {"city": "Goa"}}])
    await eventually(lambda: size_is(4), what="u-6 to leave")

    # trend: created today, so no full day yet; today counts both transitions
    today = datetime.now(UTC).date().isoformat()
    assert (await api.get(f"/segments/{sid}/trend")).json() == {
        "points": [], "today": {"date": today, "size": 4, "entered": 5, "exited": 1}, "created_date": today}

    estimate = (await api.get(f"/segments/{sid}/insights", params={"mode": "estimate"})).json()
    assert estimate["mode"] == "estimate"
    assert estimate["as_of"].endswith("Z")
    assert estimate["size"] == {"estimate": 4, "lower_95": 4, "upper_95": 4}
    assert {c: v["estimate"] for c, v in estimate["reachability"].items()} == EXPECTED_REACH
    assert (await api.get("/segments")).json()["segments"][0]["estimated_size"] == 4

    # exact recount
    started = await api.post(f"/segments/{sid}/recount")
    assert started.status_code == 202
    job_id = started.json()["job_id"]

    async def job_done() -> dict[str, Any] | None:
        job = (await api.get(f"/jobs/{job_id}")).json()
        assert job["status"] != "failed", job
        return dict(job) if job["status"] == "done" else None

    job = await eventually(job_done, timeout=60, what="the recount to finish")
    assert (job["type"], job["segment_id"], job["progress"], job["error"]) == ("recount", sid, 1.0, None)
    assert job["result"]["size"] == 4
    assert job["result"]["blacklisted"] == 1
    exact = (await api.get(f"/segments/{sid}/insights", params={"mode": "exact"})).json()
    assert exact["mode"] == "exact"
    assert exact["computed_at"].endswith("Z")
    assert (exact["size"], exact["blacklisted"], exact["drift"]) == (4, 1, 0)
    assert exact["reachability"] == EXPECTED_REACH
    assert exact["users_scanned"] == 6

    # sample users and a user's page
    sample = (await api.get(f"/segments/{sid}/users", params={"limit": 10})).json()["users"]
    assert sorted(u["user_id"] for u in sample) == ["u-1", "u-2", "u-3", "u-4"]
    assert all(u["segments"] == [sid] for u in sample)
    assert len((await api.get(f"/segments/{sid}/users", params={"limit": 2})).json()["users"]) == 2
    assert len((await api.get(f"/segments/{sid}/users")).json()["users"]) == 4
    u4 = (await api.get("/users/u-4")).json()
    assert u4 == {"user_id": "u-4", "profile": PROFILES[3]["set"], "blacklisted": False, "segments": [sid],
                  "reachability": {"email": False, "sms": False, "whatsapp": False, "push": True,
                                   "web_push": False}}
    assert type(u4["profile"]["age"]) is int
    assert u4["profile"]["vip"] is True
    u3 = (await api.get("/users/u-3")).json()
    assert u3["blacklisted"] is True
    assert u3["reachability"]["email"] is True
    assert (await api.get("/users/u-6")).json()["segments"] == []

    # export: blacklisted u-3 and departed u-6 are not in it; quoting survives csv.reader
    resp = await api.get(f"/segments/{sid}/export.csv",
                         params={"fields": "user_id,name,email,reachable_email,reachable_push,age,vip,nothing"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.headers["content-disposition"] == f'attachment; filename="{sid}.csv"'
    rows = list(csv.reader(io.StringIO(resp.text, newline="")))
    assert rows[0] == ["user_id", "name", "email", "reachable_email", "reachable_push", "age", "vip", "nothing"]
    assert sorted(rows[1:]) == [
        ["u-1", 'Ana, "the" best', "ana@x.io", "true", "false", "", "", ""],
        ["u-2", "Bo", "bo@x.io", "false", "false", "", "", ""],
        ["u-4", "Zoë 🇮🇳\nsecond line", "", "false", "true", "31", "true", ""],
    ]
    default = await api.get(f"/segments/{sid}/export.csv")
    assert sorted(default.text.split("\r\n")) == ["", "u-1", "u-2", "u-4", "user_id"]

    metrics = (await api.get("/metrics")).text
    assert 'stream_api_requests_total{method="GET",route="/segments/{sid}/insights",status="200"}' in metrics
    assert 'stream_api_requests_total{method="GET",route="/segments/{sid}/insights",status="404"} 1.0' in metrics
    assert 'route="/users/{user_id}"' in metrics
    assert "u-4" not in metrics
    assert "stream_export_rows_total 6.0" in metrics
    assert 'stream_export_duration_seconds_count 2.0' in metrics


@pytest.mark.parametrize(("path", "status", "detail"), [
    ("/segments/s-none/trend", 404, "segment 's-none' not found"),
    ("/segments/s-none/insights", 404, "segment 's-none' not found"),
    ("/segments/s-none/insights?mode=exact", 404, "segment 's-none' not found"),
    ("/segments/{sid}/insights?mode=bogus", 422, "query.mode: Input should be 'estimate' or 'exact'"),
    ("/segments/{sid}/insights?mode=exact", 404, "never recounted"),
    ("/jobs/j-none", 404, "job 'j-none' not found"),
    ("/segments/s-none/users", 404, "segment 's-none' not found"),
    ("/segments/{sid}/users?limit=0", 422, "query.limit: Input should be greater than or equal to 1"),
    ("/segments/{sid}/users?limit=101", 422, "query.limit: Input should be less than or equal to 100"),
    ("/segments/{sid}/users?limit=ten", 422, "query.limit: Input should be a valid integer"),
    ("/users/u-nobody", 404, "user 'u-nobody' not found"),
    ("/users/a%2Fb", 404, "user 'a/b' not found"),
    ("/segments/s-none/export.csv", 404, "segment 's-none' not found"),
    ("/segments/{sid}/export.csv?fields=user_id,bad%20name", 400, "unknown field 'bad name'"),
    ("/segments/{sid}/export.csv?fields=reachable_fax", 400, "unknown field 'reachable_fax'"),
    ("/segments/{sid}/export.csv?fields=", 400, "empty field name"),
    ("/segments/{sid}/export.csv?fields=city,city", 400, "duplicate field 'city'"),
])
async def test_bad_reads_name_the_problem(api: httpx.AsyncClient, path: str, status: int, detail: str) -> None:
    sid = (await create(api, "Pune"))["id"]
    resp = await api.get(path.replace("{sid}", sid))
    assert resp.status_code == status, resp.text
    assert detail in resp.json()["detail"]


async def test_recount_of_a_missing_segment_is_404(api: httpx.AsyncClient) -> None:
    resp = await api.post("/segments/s-none/recount")
    assert resp.status_code == 404
    assert resp.json()["detail"] == "segment 's-none' not found"
