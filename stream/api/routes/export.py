"""CSV export of a segment's members, streamed in constant memory.

Rows are produced a window of ~2000 members at a time (one HMGET per member,
the window sent at once over a raw RESP connection: `stream.state.bulk`) and
written through `csv.writer`, so the API's memory does not grow with the
segment. Blacklisted users count in sizes but are never
exported; insights report how many there are, so the numbers reconcile.
"""

from __future__ import annotations

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
from stream.rules import reachable
from stream.rules.jsonio import loads
from stream.state.bulk import BulkReader, bulk_reader, read_fields

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
    value = loads(raw)
    return value if isinstance(value, dict) else {}


USER_FIELDS = ("b", "p", "s")


async def _with_fields(svc: Services, bulk: BulkReader,
                       windows: AsyncIterator[list[str]]) -> AsyncIterator[tuple[list[str], list[Any]]]:
    """Each window of ids with its users' (b, p, s). With the bulk reader the next
    window's reads are already queued in Redis while the caller formats this one,
    so Redis and the API work side by side."""
    if not bulk.supported:
        async for ids in windows:
            yield ids, await read_fields(svc.redis, bulk, [svc.keys.user(uid) for uid in ids], USER_FIELDS)
        return
    queued: tuple[list[str], int] | None = None
    async for ids in windows:
        count = bulk.send_hmget([svc.keys.user(uid) for uid in ids], USER_FIELDS)
        if queued is not None:
            yield queued[0], await bulk.receive(queued[1])
        queued = (ids, count)
    if queued is not None:
        yield queued[0], await bulk.receive(queued[1])


async def export_csv(svc: Services, sid: str, columns: Sequence[Column]) -> AsyncIterator[str]:
    started = time.perf_counter()
    need_profile = any(c.kind != "user_id" for c in columns)
    channels = [c.key for c in columns if c.kind == "reach"]
    snapshot = MemberSnapshot(svc.redis, svc.keys, sid)
    try:
        yield render([[c.name for c in columns]])
        await snapshot.take()
        async with bulk_reader(svc.redis) as bulk:
            async for ids, values in _with_fields(svc, bulk, snapshot.windows()):
                rows: list[list[str]] = []
                for uid, (blacklisted, p, s) in zip(ids, values, strict=True):
                    if blacklisted == "1":
                        continue
                    profile = _loads(p) if need_profile else {}
                    subs = _loads(s) if channels else {}
                    reach = {channel: reachable(channel, profile, subs) for channel in channels}
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
