"""Trend, insights (estimate or exact), exact recounts and their jobs."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from stream.api.auth import READ, WRITE
from stream.api.deps import SegmentId, Svc, get_segment_or_404
from stream.api.models import EstimateInsights, ExactInsights, JobAccepted, JobOut, TrendOut, errors
from stream.api.routes.segments import iso
from stream.rules import CHANNELS
from stream.state.jobs import JobKind
from stream.state.trend import build_trend, local_day, read_trend

router = APIRouter(tags=["insights"])


@router.get("/segments/{sid}/trend", dependencies=[READ],
             response_model=TrendOut, responses=errors(404, 422))
async def trend(svc: Svc, sid: SegmentId) -> dict[str, Any]:
    seg = await get_segment_or_404(svc, sid)
    counters, size = await read_trend(svc.core.redis, svc.core.keys, sid)
    today = datetime.now(svc.zone).date()
    created = local_day(seg.created_at_ms, svc.zone)
    points, today_point = build_trend(counters, size, created, today)
    # The creation day in the zone that splits the days: a browser knows neither that zone nor, before
    # the first full day, the first point's date, so it cannot derive it from created_at itself.
    return {"points": points, "today": today_point, "created_date": created.isoformat()}


@router.get("/segments/{sid}/insights", dependencies=[READ],
             response_model=EstimateInsights | ExactInsights,
            responses=errors(404, 422))
async def insights(svc: Svc, sid: SegmentId,
                   mode: Annotated[Literal["estimate", "exact"], Query()] = "estimate") -> dict[str, Any]:
    await get_segment_or_404(svc, sid)
    if mode == "estimate":
        size, reach = await svc.core.samples.estimate(sid)
        return {"mode": "estimate", "as_of": iso(int(time.time() * 1000)),
                "size": size, "reachability": {c: reach[c] for c in CHANNELS}}
    raw = await svc.core.redis.get(svc.core.keys.exact(sid))
    if not raw:
        raise HTTPException(404, detail=f"segment {sid!r} was never recounted; POST /segments/{sid}/recount first")
    exact = json.loads(raw)
    return {
        "mode": "exact",
        "computed_at": iso(int(exact["computed_at_ms"])),
        "size": int(exact["size"]),
        "blacklisted": int(exact["blacklisted"]),
        "reachability": {c: int(exact["reachability"].get(c, 0)) for c in CHANNELS},
        "drift": int(exact.get("drift", 0)),
        "users_scanned": int(exact.get("users_scanned", 0)),
    }


@router.post("/segments/{sid}/recount", dependencies=[WRITE],
             status_code=202, response_model=JobAccepted, responses=errors(404, 422))
async def recount(svc: Svc, sid: SegmentId) -> dict[str, Any]:
    await get_segment_or_404(svc, sid)
    return {"job_id": await svc.core.jobs.create(JobKind.RECOUNT, sid, svc.settings.partitions)}


@router.get("/jobs/{job_id}", dependencies=[READ],
             response_model=JobOut, responses=errors(404, 422), tags=["jobs"])
async def job(svc: Svc, job_id: Annotated[str, Path(min_length=1, max_length=100)]) -> dict[str, Any]:
    found = await svc.core.jobs.get(job_id)
    if found is None:
        raise HTTPException(404, detail=f"job {job_id!r} not found")
    return {"job_id": found.id, "type": str(found.kind), "segment_id": found.segment_id, "status": str(found.status),
            "progress": found.progress, "result": found.result, "error": found.error}
