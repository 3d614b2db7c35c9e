"""Admin routes: forgetting a user, reading the audit trail; and who the caller's key is."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from stream.api.auth import ADMIN, Principal, authenticated
from stream.api.deps import Svc, UserId
from stream.api.models import AuditOut, JobAccepted, WhoAmI, errors
from stream.control.log import CONTROL_PARTITION
from stream.kafkaio.log import end_offsets, read_range

router = APIRouter(tags=["access"])


@router.delete("/users/{user_id:path}", dependencies=[ADMIN], status_code=202, response_model=JobAccepted,
               responses=errors(404, 422, 503))
async def forget(svc: Svc, user_id: UserId) -> dict[str, Any]:
    """Forgets the user: every membership ends with an `exited` change, their state, samples,
    identity entries and list memberships go, and replays and rebuilds never bring them back."""
    if await svc.core.users.read(user_id) is None:
        raise HTTPException(404, detail=f"user {user_id!r} not found")
    job_id = await svc.core.catalog.forget_user(user_id)
    if job_id is None:
        raise HTTPException(503, detail="the forget was logged but its job did not start; retry")
    return {"job_id": job_id}


@router.get("/audit", dependencies=[ADMIN], response_model=AuditOut, responses=errors(422))
async def audit(svc: Svc, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """The newest records of the audit topic first."""
    topic = svc.settings.topic_audit
    end = (await end_offsets(svc.settings, topic, [CONTROL_PARTITION]))[CONTROL_PARTITION]
    records: list[dict[str, Any]] = []
    async for batch in read_range(svc.settings, topic, CONTROL_PARTITION, max(0, end - limit), end):
        records += [json.loads(m.value) for m in batch if m.value]
    return {"records": list(reversed(records))[:limit]}


@router.get("/auth/me", response_model=WhoAmI, responses=errors(401))
async def me(principal: Annotated[Principal, authenticated]) -> dict[str, Any]:
    """The calling key's name and scopes (the dashboard shows them and hides what they cannot do)."""
    return {"name": principal.name, "scopes": sorted(principal.scopes)}
