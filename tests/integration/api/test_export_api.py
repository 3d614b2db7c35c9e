"""Export across several snapshot windows: every member once, blacklisted never, while members change."""

from __future__ import annotations

import asyncio
import csv
import io

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from stream.config import Settings
from stream.state.walk import CHUNK
from tests.integration.api.test_segments_api import create
from tests.integration.conftest import eventually, produce_json

pytestmark = pytest.mark.integration

USERS = 2 * CHUNK + 345  # three windows, the last one partial


async def test_export_spans_windows_without_repeats(topics: Settings, stack: httpx.AsyncClient,
                                                    producer: AIOKafkaProducer) -> None:
    api = stack
    sid = (await create(api, "Everyone in Pune"))["id"]
    await produce_json(producer, topics.topic_profiles, [
        {"user_id": f"u-{i:05d}", "ts": "2026-01-01T00:00:00Z", "set": {"city": "Pune", "n": i},
         "blacklisted": i % 10 == 0}
        for i in range(USERS)])

    async def all_in() -> bool:
        return bool((await api.get(f"/segments/{sid}/trend")).json()["today"]["size"] == USERS)

    await eventually(all_in, timeout=90, what=f"{USERS} members")
    expected = {(f"u-{i:05d}", str(i)) for i in range(USERS) if i % 10}

    # members leaving while the export runs must not make anyone appear twice
    leaving = [{"user_id": f"u-{i:05d}", "ts": "2026-01-02T00:00:00Z", "set": {"city": "Goa"}}
               for i in range(1, USERS, 7)]
    export, _ = await asyncio.gather(api.get(f"/segments/{sid}/export.csv", params={"fields": "user_id,n"}),
                                     produce_json(producer, topics.topic_profiles, leaving))
    rows = list(csv.reader(io.StringIO(export.text, newline="")))
    assert rows[0] == ["user_id", "n"]
    body = [tuple(r) for r in rows[1:]]
    assert len(body) == len(set(body)), "a member was exported twice"
    left = {(f"u-{i:05d}", str(i)) for i in range(1, USERS, 7)}
    assert expected - left <= set(body) <= expected

    # once the leavers are out, a fresh export is exactly the remaining non-blacklisted members
    await eventually(lambda: _size_is(api, sid, USERS - len(leaving)), what="leavers to be out")
    again = await api.get(f"/segments/{sid}/export.csv", params={"fields": "user_id,n"})
    assert {tuple(r) for r in csv.reader(io.StringIO(again.text, newline=""))} - {("user_id", "n")} == expected - left


async def _size_is(api: httpx.AsyncClient, sid: str, n: int) -> bool:
    return bool((await api.get(f"/segments/{sid}/trend")).json()["today"]["size"] == n)
