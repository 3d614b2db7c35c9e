"""Campaigns and journeys, and how many of each use a segment.

Only what the segment pages need: a use count, and a refusal to delete a
segment something still sends to. Creation checks the segments exist in the
same atomic step as the write (see `RegistryStore`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response

from stream.api.auth import READ, WRITE
from stream.api.deps import SegmentId, Services, Svc, get_segment_or_404
from stream.api.models import (
    CampaignIn,
    CampaignList,
    CampaignOut,
    JourneyIn,
    JourneyList,
    JourneyOut,
    UsageOut,
    errors,
)
from stream.api.routes.segments import iso
from stream.control.catalog import Missing
from stream.state.campaigns import UserKind

CAMPAIGN, JOURNEY = UserKind.CAMPAIGN, UserKind.JOURNEY

router = APIRouter(tags=["campaigns and journeys"])
ItemId = Annotated[str, Path(min_length=1, max_length=100)]


def campaign_body(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item["id"], "name": item["name"], "segment_id": item["segment_ids"][0],
            "channel": item["channel"], "created_at": iso(int(item["created_at_ms"]))}


def journey_body(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item["id"], "name": item["name"], "segment_ids": item["segment_ids"],
            "created_at": iso(int(item["created_at_ms"]))}


def _missing(field: str, sid: str) -> HTTPException:
    return HTTPException(422, detail=f"{field}: segment {sid!r} does not exist")


NOUN = {CAMPAIGN: "campaign", JOURNEY: "journey"}


async def _get_or_404(svc: Services, kind: UserKind, item_id: str) -> dict[str, Any]:
    item = await svc.core.campaigns.get(kind, item_id)
    if item is None:
        raise HTTPException(404, detail=f"{NOUN[kind]} {item_id!r} not found")
    return item


async def _remove_or_404(svc: Services, kind: UserKind, item_id: str) -> Response:
    if not await svc.core.catalog.remove_user_of(kind, item_id):
        raise HTTPException(404, detail=f"{NOUN[kind]} {item_id!r} not found")
    return Response(status_code=204)


@router.post("/campaigns", dependencies=[WRITE],
             status_code=201, response_model=CampaignOut, responses=errors(400, 422))
async def create_campaign(svc: Svc, body: CampaignIn) -> dict[str, Any]:
    try:
        stored = await svc.core.catalog.add_user_of(CAMPAIGN, {"name": body.name, "channel": body.channel},
                                                    [body.segment_id])
    except Missing as exc:
        raise _missing("segment_id", exc.segment_id) from exc
    return campaign_body(stored)


@router.get("/campaigns", dependencies=[READ],
             response_model=CampaignList)
async def list_campaigns(svc: Svc) -> dict[str, Any]:
    return {"campaigns": [campaign_body(it) for it in await svc.core.campaigns.items(CAMPAIGN)]}


@router.get("/campaigns/{campaign_id}", dependencies=[READ],
             response_model=CampaignOut, responses=errors(404, 422))
async def read_campaign(svc: Svc, campaign_id: ItemId) -> dict[str, Any]:
    return campaign_body(await _get_or_404(svc, CAMPAIGN, campaign_id))


@router.delete("/campaigns/{campaign_id}", dependencies=[WRITE],
             status_code=204, response_class=Response, responses=errors(404, 422))
async def delete_campaign(svc: Svc, campaign_id: ItemId) -> Response:
    return await _remove_or_404(svc, CAMPAIGN, campaign_id)


@router.post("/journeys", dependencies=[WRITE],
             status_code=201, response_model=JourneyOut, responses=errors(400, 422))
async def create_journey(svc: Svc, body: JourneyIn) -> dict[str, Any]:
    if len(set(body.segment_ids)) != len(body.segment_ids):
        raise HTTPException(422, detail="segment_ids: duplicate segment id")
    try:
        stored = await svc.core.catalog.add_user_of(JOURNEY, {"name": body.name}, list(body.segment_ids))
    except Missing as exc:
        raise _missing("segment_ids", exc.segment_id) from exc
    return journey_body(stored)


@router.get("/journeys", dependencies=[READ],
             response_model=JourneyList)
async def list_journeys(svc: Svc) -> dict[str, Any]:
    return {"journeys": [journey_body(it) for it in await svc.core.campaigns.items(JOURNEY)]}


@router.get("/journeys/{journey_id}", dependencies=[READ],
             response_model=JourneyOut, responses=errors(404, 422))
async def read_journey(svc: Svc, journey_id: ItemId) -> dict[str, Any]:
    return journey_body(await _get_or_404(svc, JOURNEY, journey_id))


@router.delete("/journeys/{journey_id}", dependencies=[WRITE],
             status_code=204, response_class=Response, responses=errors(404, 422))
async def delete_journey(svc: Svc, journey_id: ItemId) -> Response:
    return await _remove_or_404(svc, JOURNEY, journey_id)


@router.get("/segments/{sid}/usage", dependencies=[READ],
             response_model=UsageOut, responses=errors(404, 422), tags=["segments"])
async def usage(svc: Svc, sid: SegmentId) -> dict[str, int]:
    await get_segment_or_404(svc, sid)
    used = await svc.core.campaigns.usage(sid)
    return {"campaigns": used.campaigns, "journeys": used.journeys, "segments": used.segments}
