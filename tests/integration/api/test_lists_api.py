"""Custom list uploads: matching by user_id, email and phone, and everything that must not change."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.config import Settings
from tests.integration.api.test_segments_api import create
from tests.integration.conftest import eventually, produce_json

pytestmark = pytest.mark.integration

TS = "2026-01-10T10:00:00Z"
USERS: list[dict[str, Any]] = [
    {"user_id": "u-1", "ts": TS, "set": {"email": "one@x.io", "phone": "+9101"}},
    {"user_id": "u-2", "ts": TS, "set": {"email": "two@x.io", "phone": "+9102"}},
    {"user_id": "u-3", "ts": TS, "set": {"email": "three@x.io"}, "blacklisted": True},
    {"user_id": "u-4", "ts": TS, "set": {"phone": "+9104", "city": "Pune, MH"}},
    {"user_id": "u-5", "ts": TS, "set": {"email": "shared@x.io"}},
    {"user_id": "u-6", "ts": TS, "set": {"email": "shared@x.io"}},
]


async def upload(api: httpx.AsyncClient, sid: str, body: bytes | str, ctype: str = "text/csv") -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return await api.post(f"/segments/{sid}/list", content=content, headers={"content-type": ctype})


async def members(api: httpx.AsyncClient, sid: str) -> list[str]:
    users = (await api.get(f"/segments/{sid}/users", params={"limit": 100})).json()["users"]
    return sorted(u["user_id"] for u in users)


async def test_uploads_by_user_id_email_and_phone(topics: Settings, stack: httpx.AsyncClient,
                                                  producer: AIOKafkaProducer) -> None:
    api = stack
    await produce_json(producer, topics.topic_profiles, USERS)

    async def known() -> bool:
        return (await api.get("/users/u-6")).status_code == 200 and (await api.get("/users/u-1")).status_code == 200

    await eventually(known, what="users to be known")
    sid = (await create(api, "Uploaded", kind="custom_list", rule=None))["id"]

    by_id = ("user_id,note\r\nu-1,hello\r\nu-404,nobody\r\n,empty\r\nu-1,again\r\n\r\n"
             'u-3,"blacklisted, still added"\r\n')
    resp = await upload(api, sid, by_id)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"rows": 5, "matched": 3, "unmatched": 2}
    assert await members(api, sid) == ["u-1", "u-3"]

    # email wins over phone; a shared email matches both users; the BOM and a header's case are ignored
    by_email = "\ufeffPhone,EMAIL\n+9199,two@x.io\n+9104,shared@x.io\n,nobody@x.io\n"
    resp = await upload(api, sid, by_email.encode("utf-8"), ctype="text/csv; charset=utf-8")
    assert resp.json() == {"rows": 3, "matched": 2, "unmatched": 1}
    by_phone = "name,phone\n\"Four, with comma\",+9104\nx, +9101 \ny,+0000"  # no final newline
    resp = await upload(api, sid, by_phone, ctype="text/plain")
    assert resp.json() == {"rows": 3, "matched": 2, "unmatched": 1}
    assert await members(api, sid) == ["u-1", "u-2", "u-3", "u-4", "u-5", "u-6"]

    insights = (await api.get(f"/segments/{sid}/insights")).json()
    assert insights["size"]["estimate"] == 6
    assert insights["reachability"]["sms"]["estimate"] == 3
    trend = (await api.get(f"/segments/{sid}/trend")).json()
    assert (trend["today"]["size"], trend["today"]["entered"], trend["today"]["exited"]) == (6, 6, 0)
    assert (await api.get("/users/u-4")).json()["segments"] == [sid]

    export = await api.get(f"/segments/{sid}/export.csv", params={"fields": "user_id,city,reachable_sms"})
    rows = list(csv.reader(io.StringIO(export.text, newline="")))
    assert rows[0] == ["user_id", "city", "reachable_sms"]
    assert sorted(rows[1:]) == [["u-1", "", "true"], ["u-2", "", "true"], ["u-4", "Pune, MH", "true"],
                                ["u-5", "", "false"], ["u-6", "", "false"]]

    # the API's own producer told segment-changes, like the worker would have
    consumer = AIOKafkaConsumer(topics.topic_changes, bootstrap_servers=topics.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    seen: set[str] = set()
    try:
        async def all_entered() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    value = json.loads(rec.value)
                    if value["segment_id"] == sid and value["change"] == "entered":
                        seen.add(value["user_id"])
            return len(seen) == 6

        await eventually(all_entered, what="six 'entered' messages")
    finally:
        await consumer.stop()

    # the recount keeps list members (they have no rule to fail)
    job_id = (await api.post(f"/segments/{sid}/recount")).json()["job_id"]

    async def done() -> Any:
        job = (await api.get(f"/jobs/{job_id}")).json()
        return job if job["status"] == "done" else None

    job = await eventually(done, timeout=60, what="the recount")
    assert (job["result"]["size"], job["result"]["blacklisted"], job["result"]["drift"]) == (6, 1, 0)


@pytest.mark.parametrize(("body", "ctype", "status", "detail"), [
    ("", "text/csv", 400, "empty body"),
    ("\r\n\r\n", "text/csv", 400, "empty body"),
    ("name,city\nAna,Pune\n", "text/csv", 400, "header must have a user_id, email or phone column; found 'name'"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\n", "text/csv", 400, "not UTF-8 CSV text"),
    ("user_id\nu-1\n", "application/json", 415, "content-type 'application/json' is not CSV"),
    ("user_id\nu-1\n", "image/png", 415, "is not CSV"),
])
async def test_bad_uploads_change_nothing(topics: Settings, stack: httpx.AsyncClient, producer: AIOKafkaProducer,
                                          body: str | bytes, ctype: str, status: int, detail: str) -> None:
    api = stack
    await produce_json(producer, topics.topic_profiles, USERS[:1])
    await eventually(lambda: _exists(api, "u-1"), what="u-1 to be known")
    sid = (await create(api, "Uploaded", kind="custom_list", rule=None))["id"]
    resp = await upload(api, sid, body, ctype)
    assert resp.status_code == status, resp.text
    assert detail in resp.json()["detail"]
    assert await members(api, sid) == []
    assert (await api.get("/users/u-1")).json()["segments"] == []


async def _exists(api: httpx.AsyncClient, uid: str) -> bool:
    return (await api.get(f"/users/{uid}")).status_code == 200


async def test_uploads_only_to_existing_custom_lists(api: httpx.AsyncClient) -> None:
    live = (await create(api, "Live"))["id"]
    resp = await upload(api, live, "user_id\nu-1\n")
    assert resp.status_code == 409
    assert "is live; only custom_list segments take uploads" in resp.json()["detail"]
    resp = await upload(api, "s-none", "user_id\nu-1\n")
    assert resp.status_code == 404
    assert resp.json()["detail"] == "segment 's-none' not found"
