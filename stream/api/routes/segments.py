"""Segments: create, list, read, delete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Response

from stream.api.deps import Services, services
from stream.rules import RuleError, describe, parse_segment, rule_to_json
from stream.segments import Segment
from stream.state.catalog import create_segment, delete_segment

router = APIRouter(tags=["segments"])
Svc = Annotated[Services, Depends(services)]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def segment_body(seg: Segment) -> dict[str, Any]:
    return {
        "id": seg.id,
        "name": seg.name,
        "kind": seg.kind,
        "rule": rule_to_json(seg.rule) if seg.rule is not None else None,
        "created_at": iso(seg.created_at_ms),
        "hidden": seg.hidden,
    }


async def get_segment_or_404(svc: Services, sid: str) -> Segment:
    seg = await svc.segments.get(sid)
    if seg is None:
        raise HTTPException(404, detail=f"segment {sid!r} not found")
    return seg


@router.post("/segments", status_code=201)
async def create(svc: Svc, body: Annotated[Any, Body()]) -> dict[str, Any]:
    try:
        spec = parse_segment(body)
    except RuleError as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    seg, job_id = await create_segment(svc.segments, svc.jobs, spec, svc.settings.partitions)
    return {**segment_body(seg), "backfill_job_id": job_id}


@router.get("/segments")
async def list_segments(svc: Svc, q: Annotated[str, Query(max_length=200)] = "",
                        include_hidden: bool = False) -> dict[str, Any]:
    index = await svc.segments.load_index()
    rows = []
    for seg in sorted(index.segments.values(), key=lambda s: s.created_at_ms):
        if (seg.hidden and not include_hidden) or q.lower() not in seg.name.lower():
            continue
        size, _ = await svc.samples.estimate(seg.id)
        rows.append({**segment_body(seg), "estimated_size": size.estimate})
    return {"segments": rows}


@router.get("/segments/{sid}")
async def read(svc: Svc, sid: str) -> dict[str, Any]:
    seg = await get_segment_or_404(svc, sid)
    job = await svc.jobs.for_segment(sid, "backfill")
    backfill = None if job is None else {"job_id": job.id, "status": job.status, "progress": job.progress}
    summary = describe(seg.rule) if seg.rule is not None else "users uploaded to this list"
    return {**segment_body(seg), "summary": summary, "backfill": backfill}


@router.delete("/segments/{sid}", status_code=204)
async def delete(svc: Svc, sid: str) -> Response:
    await get_segment_or_404(svc, sid)
    await delete_segment(svc.segments, svc.samples, sid)
    return Response(status_code=204)
