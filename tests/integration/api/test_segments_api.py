"""Segment definitions over HTTP: create, list/search/hide, rename, delete, and every bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

PUNE = {"profile": {"prop": "city", "op": "eq", "value": "Pune"}}


async def create(api: httpx.AsyncClient, name: str, kind: str = "live", rule: Any = PUNE) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "kind": kind}
    if rule is not None:
        body["rule"] = rule
    resp = await api.post("/segments", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def test_create_read_list_search_hide_rename(api: httpx.AsyncClient) -> None:
    shoppers = await create(api, "Pune shoppers")
    assert shoppers["kind"] == "live"
    assert shoppers["rule"] == PUNE
    assert shoppers["backfill_job_id"].startswith("j-")
    assert shoppers["created_at"].endswith("Z")
    vip = await create(api, "VIP list", kind="custom_list", rule=None)
    assert vip["rule"] is None
    assert vip["backfill_job_id"] is None

    read = (await api.get(f"/segments/{shoppers['id']}")).json()
    assert read["summary"] == "city is Pune"
    assert read["backfill"]["job_id"] == shoppers["backfill_job_id"]
    assert (await api.get(f"/segments/{vip['id']}")).json()["summary"] == "users uploaded to this list"

    listing = (await api.get("/segments")).json()["segments"]
    assert [s["id"] for s in listing] == [shoppers["id"], vip["id"]]
    assert all(s["estimated_size"] == 0 for s in listing)
    assert [s["name"] for s in (await api.get("/segments", params={"q": "pUNE"})).json()["segments"]] == [
        "Pune shoppers"]
    assert (await api.get("/segments", params={"q": "nothing"})).json() == {"segments": []}

    hidden = await api.patch(f"/segments/{vip['id']}", json={"hidden": True})
    assert hidden.status_code == 200
    assert hidden.json()["hidden"] is True
    assert [s["id"] for s in (await api.get("/segments")).json()["segments"]] == [shoppers["id"]]
    shown = (await api.get("/segments", params={"include_hidden": "true"})).json()["segments"]
    assert [s["id"] for s in shown] == [shoppers["id"], vip["id"]]

    renamed = await api.patch(f"/segments/{shoppers['id']}", json={"name": "  Pune buyers "})
    assert renamed.json()["name"] == "Pune buyers"
    assert renamed.json()["rule"] == shoppers["rule"]
    assert (await api.get(f"/segments/{shoppers['id']}")).json()["name"] == "Pune buyers"
    both = await api.patch(f"/segments/{vip['id']}", json={"name": "VIPs", "hidden": False})
    assert (both.json()["name"], both.json()["hidden"]) == ("VIPs", False)

    assert (await api.delete(f"/segments/{vip['id']}")).status_code == 204
    assert (await api.get(f"/segments/{vip['id']}")).status_code == 404
    assert [s["id"] for s in (await api.get("/segments?include_hidden=true")).json()["segments"]] == [
        shoppers["id"]]


@pytest.mark.parametrize(("method", "path", "body", "status", "detail"), [
    ("POST", "/segments", {"name": "x", "kind": "live", "rule": {"profile": {"prop": "a", "op": "zz"}}}, 422,
     "zz"),
    ("POST", "/segments", {"name": "", "kind": "live", "rule": PUNE}, 422, "name"),
    ("POST", "/segments", {"name": "x", "kind": "weird", "rule": PUNE}, 422, "unknown kind 'weird'"),
    ("POST", "/segments", {"name": "x", "rule": {"all": []}}, 422, "rule"),
    ("POST", "/segments", [1, 2], 422, "expected an object"),
    ("POST", "/segments", None, 422, "expected an object"),
    ("GET", "/segments/s-missing", None, 404, "segment 's-missing' not found"),
    ("GET", "/segments?q=" + "x" * 201, None, 422, "query.q"),
    ("GET", "/segments?include_hidden=maybe", None, 422, "query.include_hidden"),
    ("PATCH", "/segments/s-missing", {"name": "y"}, 404, "segment 's-missing' not found"),
    ("DELETE", "/segments/s-missing", None, 404, "segment 's-missing' not found"),
    ("GET", "/segments/" + "s" * 101, None, 422, "path.sid"),
    ("GET", "/nowhere", None, 404, "Not Found"),
    ("PUT", "/segments", None, 405, "Method Not Allowed"),
])
async def test_bad_requests_name_the_problem(api: httpx.AsyncClient, method: str, path: str, body: Any,
                                             status: int, detail: str) -> None:
    resp = await api.request(method, path, json=body)
    assert resp.status_code == status, resp.text
    assert detail in resp.json()["detail"]


async def test_patch_rejects_bad_bodies(api: httpx.AsyncClient) -> None:
    sid = (await create(api, "Patch me"))["id"]
    for body, detail in [
        ({}, "give name and/or hidden"),
        ({"name": ""}, "body.name: String should have at least 1 character"),
        ({"name": "   "}, "body.name"),
        ({"name": "n" * 201}, "body.name: String should have at most 200 characters"),
        ({"hidden": "perhaps"}, "body.hidden"),
        ({"rule": PUNE}, "body.rule: Extra inputs are not permitted"),
        ([], "body"),
    ]:
        resp = await api.patch(f"/segments/{sid}", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert detail in resp.json()["detail"], body
    bad_json = await api.patch(f"/segments/{sid}", content=b"{nope", headers={"content-type": "application/json"})
    assert bad_json.status_code == 422
    assert "JSON decode error" in bad_json.json()["detail"]
    assert (await api.get(f"/segments/{sid}")).json()["name"] == "Patch me"


async def test_segments_of_segments_name_their_references(api: httpx.AsyncClient) -> None:
    vip = await create(api, "VIP", kind="custom_list", rule=None)
    churn = await create(api, "Churn risk", kind="past_behavior",
                         rule={"not": {"event": {"name": "Launched", "within": {"days": 14}}}})
    bad = await api.post("/segments", json={"name": "x", "kind": "live",
                                            "rule": {"all": [PUNE, {"not": {"in_segment": "s-nope"}}]}})
    assert bad.status_code == 422
    assert bad.json()["detail"] == "rule.all[1].not.in_segment: unknown segment 's-nope'"
    rule = {"all": [{"in_segment": vip["id"]}, {"not": {"in_segment": churn["id"]}}]}
    keep = await create(api, "VIP not churning", kind="past_behavior", rule=rule)
    assert (await api.get(f"/segments/{keep['id']}")).json()["summary"] == (
        "in segment VIP, and not in segment Churn risk")
    top = await create(api, "Reachable loyal", kind="live",
                       rule={"all": [{"in_segment": keep["id"]}, {"reachable": "email"}]})
    assert (await api.get(f"/segments/{vip['id']}/usage")).json() == {"campaigns": 0, "journeys": 0, "segments": 1}
    assert (await api.get(f"/segments/{keep['id']}/usage")).json()["segments"] == 1

    refused = await api.delete(f"/segments/{keep['id']}")
    assert refused.status_code == 409
    assert f"segment 'Reachable loyal' ({top['id']})" in refused.json()["detail"]
    assert (await api.delete(f"/segments/{top['id']}")).status_code == 204
    assert (await api.delete(f"/segments/{keep['id']}")).status_code == 204
    assert (await api.get(f"/segments/{vip['id']}/usage")).json()["segments"] == 0
    assert (await api.delete(f"/segments/{vip['id']}")).status_code == 204


@pytest.mark.parametrize(("rule", "detail"), [
    ({"event": {"name": "E", "within": {"weeks": 1}}}, "rule.event.within.weeks: unknown unit"),
    ({"event": {"name": "E", "within": {"days": 7}, "before": {"days": 7}}},
     "rule.event.before: must be shorter than within"),
    ({"sequence": {"steps": [{"name": "A"}]}}, "rule.sequence.steps: a sequence needs 2 to 5 steps, got 1 steps"),
    ({"any": [PUNE, {"sequence": {"steps": [{"name": s} for s in "ABCDEF"]}}]},
     "rule.any[1].sequence.steps: a sequence needs 2 to 5 steps, got 6 steps"),
])
async def test_bad_v2_rules_are_422_naming_the_node(api: httpx.AsyncClient, rule: Any, detail: str) -> None:
    resp = await api.post("/segments", json={"name": "x", "kind": "live", "rule": rule})
    assert resp.status_code == 422
    assert resp.json()["detail"].startswith(detail)
