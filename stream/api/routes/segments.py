"""Segments: create, list and search, read, rename or hide, delete."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Response

from stream.api.auth import READ, WRITE
from stream.api.deps import SegmentId, Services, Svc, get_segment_or_404
from stream.api.models import SegmentCreated, SegmentDetail, SegmentList, SegmentOut, SegmentPatch, errors
from stream.control.catalog import InUse, Missing
from stream.rules import (
    RuleError,
    describe,
    iso_ms,
    parse_segment,
    reference_path,
    referenced_segments,
    rule_to_json,
)
from stream.segments import Segment
from stream.state.jobs import JobKind

router = APIRouter(tags=["segments"])
ESTIMATE_BATCH = 32

CREATE_EXAMPLE = {"name": "Pune shoppers", "kind": "live",
                  "rule": {"profile": {"prop": "city", "op": "eq", "value": "Pune"}}}


iso = iso_ms  # the one formatter of instants (stream.rules); the other routes import it from here


def segment_body(seg: Segment) -> dict[str, Any]:
    return {
        "id": seg.id,
        "name": seg.name,
        "kind": seg.kind,
        "rule": rule_to_json(seg.rule) if seg.rule is not None else None,
        "created_at": iso(seg.created_at_ms),
        "hidden": seg.hidden,
    }


@router.post("/segments", dependencies=[WRITE],
             status_code=201, response_model=SegmentCreated, responses=errors(400, 422))
async def create(svc: Svc, body: Annotated[Any, Body(examples=[CREATE_EXAMPLE])] = None) -> dict[str, Any]:
    try:
        spec = parse_segment(body)
    except RuleError as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    try:
        seg, job_id = await svc.core.catalog.create_segment(spec)
    except Missing as exc:
        where = reference_path(spec.rule, exc.segment_id)
        raise HTTPException(422, detail=f"{where}: unknown segment {exc.segment_id!r}") from exc
    return {**segment_body(seg), "backfill_job_id": job_id}


@router.get("/segments", dependencies=[READ],
             response_model=SegmentList, responses=errors(422))
async def list_segments(svc: Svc, q: Annotated[str, Query(max_length=200, description="name contains")] = "",
                        include_hidden: bool = False) -> dict[str, Any]:
    index = await svc.core.segments.load_index()
    needle = q.strip().casefold()
    shown = [s for s in sorted(index.segments.values(), key=lambda s: (s.created_at_ms, s.id))
             if (include_hidden or not s.hidden) and needle in s.name.casefold()]
    sizes = []
    for start in range(0, len(shown), ESTIMATE_BATCH):  # bounded, so 1000 segments are not 1000 connections
        batch = shown[start:start + ESTIMATE_BATCH]
        sizes += await asyncio.gather(*(svc.core.samples.estimate(s.id) for s in batch))
    return {"segments": [{**segment_body(s), "estimated_size": size.estimate}
                         for s, (size, _) in zip(shown, sizes, strict=True)]}


@router.get("/segments/{sid}", dependencies=[READ],
             response_model=SegmentDetail, responses=errors(404, 422))
async def read(svc: Svc, sid: SegmentId) -> dict[str, Any]:
    seg = await get_segment_or_404(svc, sid)
    job = await svc.core.jobs.for_segment(sid, JobKind.BACKFILL)
    backfill = None if job is None else {"job_id": job.id, "status": job.status, "progress": job.progress}
    names = {} if seg.rule is None else {s.id: s.name for s in (await svc.core.segments.load_index()).segments.values()
                                         if s.id in referenced_segments(seg.rule)}
    summary = describe(seg.rule, names) if seg.rule is not None else "users uploaded to this list"
    return {**segment_body(seg), "summary": summary, "backfill": backfill}


@router.patch("/segments/{sid}", dependencies=[WRITE],
             response_model=SegmentOut, responses=errors(400, 404, 422))
async def update(svc: Svc, sid: SegmentId, patch: SegmentPatch) -> dict[str, Any]:
    if patch.name is None and patch.hidden is None:
        raise HTTPException(422, detail="body: give name and/or hidden to change")
    seg = await get_segment_or_404(svc, sid)
    changed = dataclasses.replace(
        seg,
        name=seg.name if patch.name is None else patch.name,
        hidden=seg.hidden if patch.hidden is None else patch.hidden,
    )
    if changed != seg and not await svc.core.catalog.update_segment(changed):
        raise HTTPException(404, detail=f"segment {sid!r} not found")
    return segment_body(changed)


@router.delete("/segments/{sid}", dependencies=[WRITE],
             status_code=204, response_class=Response, responses=errors(404, 409, 422))
async def delete(svc: Svc, sid: SegmentId) -> Response:
    await get_segment_or_404(svc, sid)
    try:
        await svc.core.catalog.delete_segment(sid)
    except InUse as exc:
        raise HTTPException(409, detail=await _in_use(svc, sid)) from exc
    return Response(status_code=204)


async def _in_use(svc: Services, sid: str) -> str:
    users = await svc.core.campaigns.users_of(sid)
    named = [f"{'campaign' if it['id'].startswith('cmp-') else 'journey'} {it['name']!r} ({it['id']})"
             for it in users[:20]]
    index = await svc.core.segments.load_index()
    outer = [s for s in index.segments.values() if s.rule is not None and sid in referenced_segments(s.rule)]
    named += [f"segment {s.name!r} ({s.id})" for s in outer[:20]]
    more = len(users) + len(outer) - len(named)
    return f"segment {sid!r} is used by {', '.join(named)}{f' and {more} more' if more > 0 else ''}; delete those first"
