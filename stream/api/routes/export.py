"""CSV export of a segment's members, streamed in constant memory.

Rows are produced a window of ~2000 members at a time (one pipelined HMGET
per window) and written through `csv.writer`, so the API's memory does not
grow with the segment. Blacklisted users count in sizes but are never
exported; insights report how many there are, so the numbers reconcile.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from stream import metrics
from stream.api.deps import SegmentId, Services, Svc, get_segment_or_404
from stream.api.models import errors
from stream.api.snapshot import MemberSnapshot
from stream.csvio import Column, CsvError, parse_fields, render, row
from stream.rules import reachability

router = APIRouter(tags=["export"])
# Documented only: the route checks names itself, to answer 400 naming the bad one.
FIELDS_PATTERN = r"^ *[A-Za-z0-9_.-]{1,64} *(, *[A-Za-z0-9_.-]{1,64} *)*$"

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "header row, then one row per member who is not blacklisted"},
}


def _loads(raw: str | bytes | None) -> dict[str, Any]:
    if not raw:
        return {}
    value = json.loads(raw)
    return value if isinstance(value, dict) else {}


async def export_csv(svc: Services, sid: str, columns: Sequence[Column]) -> AsyncIterator[str]:
    started = time.perf_counter()
    need_profile = any(c.kind != "user_id" for c in columns)
    need_subs = any(c.kind == "reach" for c in columns)
    snapshot = MemberSnapshot(svc.redis, svc.keys, sid)
    try:
        yield render([[c.name for c in columns]])
        await snapshot.take()
        async for ids in snapshot.windows():
            pipe = svc.redis.pipeline(transaction=False)
            for uid in ids:
                pipe.hmget(svc.keys.user(uid), ["b", "p", "s"])
            rows: list[list[str]] = []
            for uid, (blacklisted, p, s) in zip(ids, await pipe.execute(), strict=True):
                if blacklisted == "1":
                    continue
                profile = _loads(p) if need_profile else {}
                reach = reachability(profile, _loads(s)) if need_subs else {}
                rows.append(row(uid, profile, reach, columns))
            if rows:
                metrics.EXPORT_ROWS.inc(len(rows))
                yield render(rows)
    finally:
        metrics.EXPORT_DURATION.observe(time.perf_counter() - started)
        await snapshot.drop()


@router.get("/segments/{sid}/export.csv", response_class=StreamingResponse,
            responses={**CSV_RESPONSE, **errors(400, 404, 422)})
async def export(
    svc: Svc,
    sid: SegmentId,
    fields: Annotated[str, Query(
        max_length=4000, description="comma-separated: user_id, reachable_<channel>, or any profile property",
        json_schema_extra={"pattern": FIELDS_PATTERN})] = "user_id",
) -> StreamingResponse:
    try:
        columns = parse_fields(fields)
    except CsvError as exc:
        raise HTTPException(400, detail=str(exc)) from exc
    await get_segment_or_404(svc, sid)
    return StreamingResponse(
        export_csv(svc, sid, columns),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{re.sub(r"[^A-Za-z0-9_.-]", "_", sid)}.csv"'},
    )
