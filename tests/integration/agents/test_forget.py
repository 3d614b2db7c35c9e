"""Forgetting a user, end to end: every membership ends, no read returns them, and a rebuild keeps it so."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from stream.config import Settings
from stream.state.keys import Keys
from stream.state.members import member_ids
from tests.integration.api.test_segments_api import create
from tests.integration.conftest import ROOT, Proc, bearer, eventually, produce_json, settings_env
from tests.integration.drills.test_drills import read_topic

pytestmark = pytest.mark.integration


async def test_forget_ends_memberships_and_survives_a_rebuild(
        topics: Settings, redis: Redis, admin_key: str, producer: AIOKafkaProducer,
        start_worker: Callable[[Settings], Awaitable[Proc]], start_api: Callable[[Settings], Awaitable[str]]) -> None:
    settings, keys = topics, Keys(topics.key_prefix)
    await start_worker(settings)
    url = await start_api(settings)
    async with httpx.AsyncClient(base_url=url, headers=bearer(admin_key), timeout=60) as api:
        pune = (await create(api, "Pune"))["id"]
        vip = (await create(api, "VIP", kind="custom_list", rule=None))["id"]
        await produce_json(producer, settings.topic_profiles, [
            {"user_id": uid, "ts": 1, "set": {"city": "Pune", "email": f"{uid}@x.io"}} for uid in ("ana", "bo")])
        await produce_json(producer, settings.topic_events, [
            {"event_id": "e1", "user_id": "ana", "name": "Viewed", "ts": 1}])

        async def both_in() -> bool:
            return await member_ids(redis, keys, pune) == {"ana", "bo"}

        await eventually(both_in, what="both users in Pune")
        upload = await api.post(f"/segments/{vip}/list", content=b"email\nana@x.io\nbo@x.io\n",
                                headers={"content-type": "text/csv"})
        assert upload.json() == {"rows": 2, "matched": 2, "unmatched": 0}

        job = (await api.delete("/users/ana")).json()["job_id"]

        async def done() -> Any:
            found = (await api.get(f"/jobs/{job}")).json()
            assert found["status"] != "failed", found
            return found if found["status"] == "done" else None

        result = (await eventually(done, timeout=60, what="the forget job"))["result"]
        assert result["memberships_ended"] == 2
        await assert_forgotten(api, redis, keys, settings, pune, vip)

        # The whole of Redis rebuilt from Kafka: ana stays forgotten, bo stays.
        rebuilt = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "stream.cli", "rebuild", "--wipe", "--quiet"],
            env=settings_env(settings), capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]

        async def back() -> bool:
            return (await api.get("/users/bo")).status_code == 200

        await eventually(back, what="bo to be back after the rebuild")
        await assert_forgotten(api, redis, keys, settings, pune, vip)
        assert await member_ids(redis, keys, vip) == {"bo"}

        # A later event with the same id starts a new user.
        await produce_json(producer, settings.topic_profiles, [{"user_id": "ana", "ts": 2, "set": {"city": "Goa"}}])

        async def new_ana() -> bool:
            resp = await api.get("/users/ana")
            return resp.status_code == 200 and resp.json()["profile"] == {"city": "Goa"}

        await eventually(new_ana, what="a new ana")


async def assert_forgotten(api: httpx.AsyncClient, redis: Redis, keys: Keys, settings: Settings, pune: str,
                           vip: str) -> None:
    assert (await api.get("/users/ana")).status_code == 404
    for sid in (pune, vip):
        assert "ana" not in await member_ids(redis, keys, sid)
        export = (await api.get(f"/segments/{sid}/export.csv", params={"fields": "user_id,email"})).text
        assert "ana" not in export
        sample = (await api.get(f"/segments/{sid}/users", params={"limit": 100})).json()["users"]
        assert "ana" not in [u["user_id"] for u in sample]
        assert (await api.get(f"/segments/{sid}/insights")).json()["size"]["estimate"] == 1
    assert not await redis.hget(keys.identity("email", "ana@x.io"), "ana@x.io")
    assert not await redis.exists(keys.user("ana"))  # its dedupe window was a field of it
    changes = [json.loads(r.value) for r in await read_topic(settings, settings.topic_changes)]
    ended = {c["segment_id"] for c in changes if c["user_id"] == "ana" and c["change"] == "exited"}
    assert ended == {pune, vip}
