"""stream.client against the real API and worker: what a client script does, sync and async.

Create a segment, send an event and a profile to Kafka, see the user become
a member, export the segment to a file and read it back; then the rest of the
surface (trend, estimates, an exact recount, samples, lists, campaigns,
journeys, usage, keys and their scopes), each answer parsed by the API's own
models. The sync client runs in a thread (`asyncio.to_thread`), since the
fixtures and the Kafka producer live on the test's event loop.
"""

from __future__ import annotations

import asyncio
import csv
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from stream.client import ApiError, ApiUnreachable, AsyncClient, Client, Retry
from tests.integration.client.conftest import Live
from tests.integration.conftest import eventually, free_port, make_key, produce_json

pytestmark = pytest.mark.integration

RULE = {"all": [{"profile": {"prop": "city", "op": "eq", "value": "Pune"}}, {"event": {"name": "Charged"}}]}


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def send_users(live: Live, producer: AIOKafkaProducer, tag: str) -> tuple[str, str]:
    """Two Pune users who each did "Charged" now: one reachable by email, one blacklisted."""
    ana, bob = f"u-ana-{tag}", f"u-bob-{tag}"
    await produce_json(producer, live.settings.topic_profiles, [
        {"user_id": ana, "ts": now(), "set": {"city": "Pune", "email": f"ana-{tag}@example.com"}},
        {"user_id": bob, "ts": now(), "set": {"city": "Pune", "email": f"bob-{tag}@example.com"},
         "blacklisted": True},
    ])
    await produce_json(producer, live.settings.topic_events, [
        {"event_id": f"e-{uuid.uuid4().hex}", "user_id": uid, "name": "Charged", "ts": now(),
         "props": {"amount": 12.5}} for uid in (ana, bob)])
    return ana, bob


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


async def test_sync_client_session(live: Live, producer: AIOKafkaProducer, tmp_path: Path) -> None:
    run = asyncio.to_thread
    with Client(live.url, api_key=live.admin_key) as api:
        seg = await run(api.create_segment, "Pune chargers", RULE)
        assert seg.kind == "live" and seg.rule is not None and seg.rule["all"][0] == RULE["all"][0]
        ana, bob = await send_users(live, producer, "sync")

        async def members() -> bool:
            try:
                users = [await run(api.user, uid) for uid in (ana, bob)]
            except ApiError as exc:
                if exc.status != 404:  # 404: not known yet
                    raise
                return False
            return all(seg.id in u.segments for u in users)

        await eventually(members, timeout=60, what="both users to enter the segment")
        user = await run(api.user, ana)
        assert user.profile["city"] == "Pune" and user.reachability["email"] is True and not user.blacklisted

        out = await run(api.export, seg.id, tmp_path / "pune.csv", ["user_id", "email", "reachable_email"])
        assert read_csv(out) == [["user_id", "email", "reachable_email"], [ana, "ana-sync@example.com", "true"]]

        exact = await run(api.recount, seg.id, 120.0)
        assert (exact.size, exact.blacklisted, exact.reachability["email"], exact.drift) == (2, 1, 2, 0)
        estimate = await run(api.estimate, seg.id)
        assert estimate.size.estimate == 2.0 and estimate.reachability["email"].estimate == 2.0
        trend = await run(api.trend, seg.id)
        assert trend.today.size == 2 and trend.today.entered == 2
        assert sorted(u.user_id for u in await run(api.sample_users, seg.id, 10)) == [ana, bob]
        assert seg.id in [s.id for s in await run(api.list_segments, "pune")]

        listed = await run(api.create_segment, "Uploaded", None, "custom_list")
        upload = tmp_path / "list.csv"
        upload.write_text("email\r\nana-sync@example.com\r\nnobody@example.com\r\n", encoding="utf-8")
        assert (await run(api.upload_list, listed.id, upload)).model_dump() == {"rows": 2, "matched": 1,
                                                                               "unmatched": 1}
        assert [u.user_id for u in await run(api.sample_users, listed.id)] == [ana]
        both = await run(api.overlap, seg.id, listed.id, "exact")
        assert (both.both, both.only_segment, both.only_with) == (1, 1, 0)
        why = await run(api.explain, seg.id, ana)
        assert why.member and why.matches and why.rule is not None and why.rule.value

        with pytest.raises(ApiError) as missing:
            await run(api.get_segment, "s-does-not-exist")
        assert missing.value.status == 404 and "not found" in missing.value.detail


async def test_async_client_session(live: Live, producer: AIOKafkaProducer, tmp_path: Path) -> None:
    async with AsyncClient(live.url, api_key=live.admin_key) as api:
        seg = await api.create_segment("Pune chargers", RULE)
        ana, bob = await send_users(live, producer, "async")

        async def member() -> bool:
            try:
                return seg.id in (await api.user(ana)).segments and seg.id in (await api.user(bob)).segments
            except ApiError as exc:
                if exc.status != 404:
                    raise
                return False

        await eventually(member, timeout=60, what="both users to enter the segment")
        out = await api.export(seg.id, tmp_path / "pune.csv", "user_id,email")
        assert await asyncio.to_thread(read_csv, out) == [["user_id", "email"], [ana, "ana-async@example.com"]]

        detail = await api.get_segment(seg.id)
        assert detail.summary and detail.backfill is not None
        assert (await api.wait_job(detail.backfill.job_id, timeout=60)).status == "done"
        exact = await api.recount(seg.id, timeout=120)
        assert (exact.size, exact.blacklisted) == (2, 1)
        assert (await api.exact(seg.id)).computed_at == exact.computed_at

        # lists from an iterable of ids
        listed = await api.create_segment("Uploaded ids", kind="custom_list")
        got = await api.upload_list(listed.id, iter([ana, bob, "u-nobody"]))
        assert (got.rows, got.matched, got.unmatched) == (3, 2, 1)
        both = await api.overlap(seg.id, listed.id)
        assert (both.both.estimate, both.only_segment.estimate, both.only_with.estimate) == (2.0, 0.0, 0.0)
        assert (await api.explain(listed.id, ana)).model_dump() == {
            "segment_id": listed.id, "user_id": ana, "member": True, "matches": True, "next_change_at": None,
            "rule": None}

        # campaigns, journeys, usage, and the 409 of deleting a used segment
        campaign = await api.create_campaign("Win back", seg.id, "email")
        journey = await api.create_journey("Onboarding", [seg.id, listed.id])
        assert (await api.usage(seg.id)).model_dump() == {"campaigns": 1, "journeys": 1, "segments": 0}
        assert [c.id for c in await api.campaigns()] == [campaign.id]
        assert (await api.journey(journey.id)).segment_ids == [seg.id, listed.id]
        with pytest.raises(ApiError) as in_use:
            await api.delete_segment(seg.id)
        assert in_use.value.status == 409 and campaign.id in in_use.value.detail
        await api.delete_campaign(campaign.id)
        await api.delete_journey(journey.id)
        await api.delete_segment(seg.id)
        with pytest.raises(ApiError) as gone:
            await api.trend(seg.id)
        assert gone.value.status == 404

        renamed = await api.update_segment(listed.id, name="VIPs", hidden=True)
        assert (renamed.name, renamed.hidden) == ("VIPs", True)
        assert listed.id not in [s.id for s in await api.list_segments()]
        assert listed.id in [s.id for s in await api.list_segments(include_hidden=True)]


async def test_scopes_and_an_unreachable_api(live: Live) -> None:
    reader = await make_key(live.settings, "reader", ["read"])
    async with AsyncClient(live.url, api_key=reader) as api:
        assert (await api.me()).model_dump() == {"name": "reader", "scopes": ["read"]}
        with pytest.raises(ApiError) as denied:
            await api.create_segment("nope", RULE)
        assert denied.value.status == 403 and "write" in denied.value.detail
    async with AsyncClient(live.url, api_key="lsk_bogus_key") as api:
        with pytest.raises(ApiError) as unknown:
            await api.list_segments()
        assert unknown.value.status == 401
    nobody = f"http://127.0.0.1:{free_port()}"
    retry = Retry(attempts=3, base_delay=0.01, jitter=0.0)
    async with AsyncClient(nobody, api_key=live.admin_key, retry=retry) as api:
        with pytest.raises(ApiUnreachable) as unreachable:
            await api.list_segments()
        assert unreachable.value.attempts == 3
