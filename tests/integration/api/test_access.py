"""Access, route by route from the OpenAPI document: 401 without a key, 403 without the scope, works with it.

Also: revocation reaches the API within a second, the audit trail records who
did what (an export with the rows actually sent), security headers and body
limits, and CSV cells that a spreadsheet would run come out neutralised.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from stream.config import Settings
from stream.wiring import Core
from tests.integration.api.test_segments_api import create
from tests.integration.conftest import bearer, eventually, make_key, produce_json

pytestmark = pytest.mark.integration
PUBLIC = {"/livez", "/readyz", "/metrics"}
SCOPES = ("read", "pii", "write", "admin")


def concrete(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(?::path)?\}", lambda m: ids.get(m.group(1), "x-missing"), path)


async def test_every_route_answers_401_403_and_works_with_its_scope(topics: Settings, stack: httpx.AsyncClient,
                                                                    producer: AIOKafkaProducer) -> None:
    api = stack
    await produce_json(producer, topics.topic_profiles, [{"user_id": "u-1", "ts": 1, "set": {"city": "Pune"}}])
    sid = (await create(api, "Pune"))["id"]
    job = (await api.post(f"/segments/{sid}/recount")).json()["job_id"]
    campaign = (await api.post("/campaigns", json={"name": "c", "segment_id": sid, "channel": "email"})).json()["id"]
    journey = (await api.post("/journeys", json={"name": "j", "segment_ids": [sid]})).json()["id"]
    ids = {"sid": sid, "user_id": "u-1", "job_id": job, "campaign_id": campaign, "journey_id": journey}
    keys = {s: await make_key(topics, f"only-{s}", [s]) for s in SCOPES}
    spec = (await api.get("/openapi.json")).json()
    checked: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as anon:
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                url = concrete(path, ids)
                if path in PUBLIC:
                    assert (await anon.request(method, url)).status_code in (200, 503), path
                    continue
                scope = op.get("x-scope")
                assert scope in (*SCOPES, "any"), f"{method.upper()} {path} declares no scope"
                assert {"401"} <= set(op["responses"]), f"{method.upper()} {path} does not document 401"
                resp = await anon.request(method, url)
                assert resp.status_code == 401, (method, path, resp.text)
                assert resp.headers["www-authenticate"].startswith("Bearer"), path
                assert "API key" in resp.json()["detail"]
                bad = await anon.request(method, url, headers={"Authorization": "Bearer lsk_abc_def"})
                assert bad.status_code == 401, (method, path)
                if scope == "any":
                    continue
                for other in SCOPES:
                    if other in (scope, "admin"):
                        continue
                    denied = await anon.request(method, url, headers=bearer(keys[other]))
                    assert denied.status_code == 403, (method, path, other, denied.text)
                    assert scope in denied.json()["detail"], denied.text
                # With the scope, the route gets past access (whatever its own answer for this input).
                allowed = await anon.request(method, url, headers=bearer(keys[scope]))
                assert allowed.status_code not in (401, 403), (method, path, allowed.text)
                checked[f"{method.upper()} {path}"] = scope
    assert checked["GET /segments/{sid}/export.csv"] == "pii"
    assert checked["DELETE /users/{user_id}"] == "admin"
    assert checked["POST /segments"] == "write"
    assert checked["GET /segments/{sid}/insights"] == "read"
    print("\nscopes:", json.dumps(checked, indent=1))


async def test_a_revoked_key_is_refused_within_a_second(topics: Settings, api: httpx.AsyncClient) -> None:
    token = await make_key(topics, "short-lived", ["read"])
    async with httpx.AsyncClient(base_url=str(api.base_url), headers=bearer(token)) as client:
        assert (await client.get("/segments")).status_code == 200
        core = Core.build(topics)
        try:
            assert await core.catalog.revoke_key("short-lived")
        finally:
            await core.close()
        revoked_at = time.monotonic()

        async def refused() -> bool:
            return (await client.get("/segments")).status_code == 401

        await eventually(refused, timeout=5, interval=0.05, what="the revoke to take effect")
        assert time.monotonic() - revoked_at < 1.0


async def test_audit_records_writes_and_exports_with_the_rows_sent(topics: Settings, stack: httpx.AsyncClient,
                                                                   producer: AIOKafkaProducer) -> None:
    api = stack
    sid = (await create(api, "Audited"))["id"]
    await produce_json(producer, topics.topic_profiles, [
        {"user_id": f"a-{i}", "ts": 1, "set": {"city": "Pune", "name": f"n{i}"}} for i in range(3)])

    async def three() -> bool:
        return (await api.get(f"/segments/{sid}/insights")).json()["size"]["estimate"] == 3

    await eventually(three, what="three members")
    exported = await api.get(f"/segments/{sid}/export.csv", params={"fields": "user_id,name"})
    assert exported.status_code == 200
    reader_key = await make_key(topics, "reader", ["read"])
    assert (await api.get(f"/segments/{sid}", headers=bearer(reader_key))).status_code == 200  # read: not audited

    async def logged() -> list[dict[str, Any]] | None:
        records = (await api.get("/audit", params={"limit": 50})).json()["records"]
        exports = [r for r in records if r["route"] == "/segments/{sid}/export.csv"]
        return records if exports else None

    records = await eventually(logged, what="the audit records")
    export = next(r for r in records if r["route"] == "/segments/{sid}/export.csv")
    assert (export["key"], export["status"], export["segment_id"], export["rows"], export["fields"]) == (
        "test-admin", 200, sid, 3, "user_id,name")
    created = next(r for r in records if r["route"] == "/segments" and r["method"] == "POST")
    assert created["key"] == "test-admin" and created["status"] == 201
    assert all(r["key"] != "reader" for r in records), "read requests are not audited"
    assert records == sorted(records, key=lambda r: -r["ts"]), "newest first"
    assert not any("lsk_" in json.dumps(r) for r in records), "never the secret"


async def test_cells_a_spreadsheet_would_run_are_neutralised_raw_is_for_admins(
        topics: Settings, stack: httpx.AsyncClient, producer: AIOKafkaProducer) -> None:
    api = stack
    sid = (await create(api, "Formulas"))["id"]
    await produce_json(producer, topics.topic_profiles, [
        {"user_id": "f-1", "ts": 1, "set": {"city": "Pune", "name": '=HYPERLINK("http://evil","x")',
                                            "phone": "+919800000001"}}])

    async def member() -> bool:
        return (await api.get(f"/segments/{sid}/insights")).json()["size"]["estimate"] == 1

    await eventually(member, what="the member")
    body = (await api.get(f"/segments/{sid}/export.csv", params={"fields": "user_id,name,phone"})).text
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[1] == ["f-1", '\'=HYPERLINK("http://evil","x")', "+919800000001"]
    raw = (await api.get(f"/segments/{sid}/export.csv", params={"fields": "name", "raw": "true"})).text
    assert list(csv.reader(io.StringIO(raw)))[1] == ['=HYPERLINK("http://evil","x")']
    pii = await make_key(topics, "exporter", ["pii"])
    denied = await api.get(f"/segments/{sid}/export.csv", params={"raw": "true"}, headers=bearer(pii))
    assert denied.status_code == 403 and "admin" in denied.json()["detail"]


async def test_headers_and_bounded_bodies(topics: Settings, api: httpx.AsyncClient) -> None:
    index = await api.get("/")
    csp = index.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert index.headers["x-content-type-options"] == "nosniff"
    sid = (await create(api, "Bodies"))["id"]
    user = await api.get("/users/nobody")
    assert user.status_code == 404 and user.headers.get("cache-control") == "no-store"
    big = await api.post("/segments", content=b"{" + b" " * (topics.api_max_body_bytes + 10) + b"}",
                         headers={"content-type": "application/json"})
    assert big.status_code == 413, big.text
    deep = await api.post("/segments", content=b"[" * 100_000 + b"]" * 100_000,
                          headers={"content-type": "application/json"})
    assert deep.status_code in (400, 413, 422), deep.text
    assert (await api.get(f"/segments/{sid}/users", params={"limit": 10**9})).status_code == 422

    async def slow() -> Any:
        yield b"user_id\n"
        await asyncio.sleep(topics.api_body_timeout_seconds + 1)
        yield b"u-1\n"

    listed = (await create(api, "Slow", kind="custom_list", rule=None))["id"]
    stalled = await api.post(f"/segments/{listed}/list", content=slow(), headers={"content-type": "text/csv"})
    assert stalled.status_code == 408, stalled.text
