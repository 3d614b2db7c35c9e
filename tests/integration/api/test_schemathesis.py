"""Property-based fuzzing of every route from /openapi.json: no 5xx, and answers match the schema.

Real ids (a live segment, a custom list, a user, a job) are offered through
schemathesis dictionaries so most cases reach the routes' logic instead of a
404. Both segments are in use by a campaign or journey, so a fuzzed DELETE
meets the 409 guard rather than removing them mid-run.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from stream.config import Settings
from tests.integration.api.test_segments_api import create
from tests.integration.conftest import ROOT, eventually, make_key, produce_json

pytestmark = pytest.mark.integration

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


async def test_no_route_errors_or_breaks_its_schema(topics: Settings, stack: httpx.AsyncClient,
                                                    producer: AIOKafkaProducer, tmp_path: Path) -> None:
    api = stack
    await produce_json(producer, topics.topic_profiles, [
        {"user_id": "u-1", "ts": "2026-01-01T00:00:00Z", "set": {"city": "Pune", "email": "a@x.io"}}])
    live = (await create(api, "Pune"))["id"]
    listed = (await create(api, "List", kind="custom_list", rule=None))["id"]
    assert (await api.post("/campaigns", json={"name": "c", "segment_id": live, "channel": "email"})).is_success
    assert (await api.post("/journeys", json={"name": "j", "segment_ids": [listed]})).is_success
    job = (await api.post(f"/segments/{live}/recount")).json()["job_id"]
    await eventually(lambda: _is_member(api, "u-1", live), what="u-1 to join")

    config = tmp_path / "schemathesis.toml"
    config.write_text(f"""
[dictionaries.sids]
values = {json.dumps([live, listed])}
[dictionaries.users]
values = ["u-1"]
[dictionaries.jobs]
values = {json.dumps([job])}

[parameters]
"path.sid" = {{ dictionary = "sids", probability = 0.8 }}
"path.user_id" = {{ dictionary = "users", probability = 0.5 }}
"path.job_id" = {{ dictionary = "jobs", probability = 0.5 }}
""")
    # Every scope but admin: forgetting u-1 mid-run would turn the rest into 404s (admin routes answer 403).
    key = await make_key(topics, "fuzzer", ["read", "pii", "write"])
    proc = await asyncio.create_subprocess_exec(
        str(ROOT / ".venv" / "bin" / "schemathesis"), "--config-file", str(config), "run",
        f"{api.base_url}/openapi.json", "--header", f"Authorization: Bearer {key}", "--checks", CHECKS,
        "--phases", "examples,fuzzing,stateful",
        "--max-examples", "100", "--workers", "4", "--generation-database", "none", "--no-color",
        "--request-timeout", "30",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    # ~100 s alone; make test runs it beside two other test processes on 2 cores, where it took
    # over 180 s once. The cap only stops a hung fuzzer (pytest's own timeout is 600 s).
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=480)
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-6000:]
    # the fuzzing reached the routes' logic, not only 404s and 422s
    metrics = (await api.get("/metrics")).text
    for route in ("/segments/{sid}/export.csv", "/segments/{sid}/trend", "/segments/{sid}/users",
                  "/users/{user_id}", "/jobs/{job_id}"):
        assert f'route="{route}",status="200"' in metrics, route


async def _is_member(api: httpx.AsyncClient, uid: str, sid: str) -> bool:
    resp = await api.get(f"/users/{uid}")
    return resp.status_code == 200 and sid in resp.json()["segments"]
