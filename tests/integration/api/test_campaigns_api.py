"""Campaigns and journeys: CRUD, usage counts, and the 409 that protects a used segment."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.api.test_segments_api import create

pytestmark = pytest.mark.integration


async def test_campaigns_journeys_usage_and_delete_guard(api: httpx.AsyncClient) -> None:
    a = (await create(api, "A"))["id"]
    b = (await create(api, "B", kind="custom_list", rule=None))["id"]
    assert (await api.get(f"/segments/{a}/usage")).json() == {"campaigns": 0, "journeys": 0, "segments": 0}

    resp = await api.post("/campaigns", json={"name": " Diwali ", "segment_id": a, "channel": "email"})
    assert resp.status_code == 201, resp.text
    campaign = resp.json()
    assert campaign["id"].startswith("cmp-")
    assert campaign["name"] == "Diwali"
    assert (campaign["segment_id"], campaign["channel"]) == (a, "email")
    resp = await api.post("/journeys", json={"name": "Onboarding", "segment_ids": [a, b]})
    assert resp.status_code == 201, resp.text
    journey = resp.json()
    assert journey["segment_ids"] == [a, b]

    assert (await api.get("/campaigns")).json() == {"campaigns": [campaign]}
    assert (await api.get(f"/campaigns/{campaign['id']}")).json() == campaign
    assert (await api.get("/journeys")).json() == {"journeys": [journey]}
    assert (await api.get(f"/journeys/{journey['id']}")).json() == journey
    assert (await api.get(f"/segments/{a}/usage")).json() == {"campaigns": 1, "journeys": 1, "segments": 0}
    assert (await api.get(f"/segments/{b}/usage")).json() == {"campaigns": 0, "journeys": 1, "segments": 0}

    refused = await api.delete(f"/segments/{a}")
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert f"campaign 'Diwali' ({campaign['id']})" in detail
    assert f"journey 'Onboarding' ({journey['id']})" in detail
    assert (await api.get(f"/segments/{a}")).status_code == 200

    assert (await api.delete(f"/campaigns/{campaign['id']}")).status_code == 204
    assert (await api.get(f"/campaigns/{campaign['id']}")).status_code == 404
    assert (await api.get(f"/segments/{a}/usage")).json() == {"campaigns": 0, "journeys": 1, "segments": 0}
    assert (await api.delete(f"/segments/{a}")).status_code == 409
    assert (await api.delete(f"/journeys/{journey['id']}")).status_code == 204
    assert (await api.get(f"/segments/{b}/usage")).json() == {"campaigns": 0, "journeys": 0, "segments": 0}
    assert (await api.delete(f"/segments/{a}")).status_code == 204
    # a deleted segment cannot be used again
    resp = await api.post("/campaigns", json={"name": "Late", "segment_id": a, "channel": "sms"})
    assert resp.status_code == 422
    assert resp.json()["detail"] == f"segment_id: segment {a!r} does not exist"


@pytest.mark.parametrize(("method", "path", "body", "status", "detail"), [
    ("POST", "/campaigns", {"name": "x", "segment_id": "s-none", "channel": "email"}, 422,
     "segment_id: segment 's-none' does not exist"),
    ("POST", "/campaigns", {"name": "x", "segment_id": "s-none", "channel": "fax"}, 422, "body.channel"),
    ("POST", "/campaigns", {"name": "", "segment_id": "s-none", "channel": "sms"}, 422, "body.name"),
    ("POST", "/campaigns", {"segment_id": "s-none", "channel": "sms"}, 422, "body.name: Field required"),
    ("POST", "/campaigns", {"name": "x", "segment_id": "s", "channel": "sms", "extra": 1}, 422, "body.extra"),
    ("POST", "/journeys", {"name": "x", "segment_ids": []}, 422, "body.segment_ids"),
    ("POST", "/journeys", {"name": "x", "segment_ids": "s-1"}, 422, "body.segment_ids"),
    ("POST", "/journeys", {"name": "x", "segment_ids": ["s-none"]}, 422,
     "segment_ids: segment 's-none' does not exist"),
    ("GET", "/campaigns/cmp-none", None, 404, "campaign 'cmp-none' not found"),
    ("DELETE", "/campaigns/cmp-none", None, 404, "campaign 'cmp-none' not found"),
    ("GET", "/journeys/jrn-none", None, 404, "journey 'jrn-none' not found"),
    ("DELETE", "/journeys/jrn-none", None, 404, "journey 'jrn-none' not found"),
    ("GET", "/segments/s-none/usage", None, 404, "segment 's-none' not found"),
])
async def test_bad_requests_name_the_problem(api: httpx.AsyncClient, method: str, path: str, body: object,
                                             status: int, detail: str) -> None:
    resp = await api.request(method, path, json=body)
    assert resp.status_code == status, resp.text
    assert detail in resp.json()["detail"]


async def test_journey_with_a_repeated_segment_is_refused(api: httpx.AsyncClient) -> None:
    a = (await create(api, "A"))["id"]
    resp = await api.post("/journeys", json={"name": "Twice", "segment_ids": [a, a]})
    assert resp.status_code == 422
    assert resp.json()["detail"] == "segment_ids: duplicate segment id"
    assert (await api.get(f"/segments/{a}/usage")).json() == {"campaigns": 0, "journeys": 0, "segments": 0}
