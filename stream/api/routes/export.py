"""CSV export of a segment's members, streamed in constant memory.

Rows are produced a window of ~2000 members at a time (a step of the member
walk, `stream.state.walk`; one HMGET per member, the window sent at once over
a raw RESP connection, `stream.state.bulk`) and written as RFC 4180 text a
window at a time (`csvio.render_columns`, which quotes exactly as `csv.writer`
would), so the API's memory does not grow with the segment. Blacklisted users count in sizes but are never
exported; insights report how many there are, so the numbers reconcile.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from stream import metrics
from stream.api.auth import PII, Principal, Scope
from stream.api.deps import SegmentId, Services, Svc, get_segment_or_404
from stream.api.models import errors
from stream.csvio import Column, CsvError, RowFormatter, parse_fields, render, render_columns
from stream.rules.jsonio import objects
from stream.state.client import endpoint
from stream.state.userhash import BLACKLISTED, PROFILE, SUBSCRIPTIONS
from stream.state.walk import member_rows

router = APIRouter(tags=["export"])
# Documented only: the route checks names itself, to answer 400 naming the bad one.
FIELDS_PATTERN = r"^ *[A-Za-z0-9_.-]{1,64} *(, *[A-Za-z0-9_.-]{1,64} *)*$"

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "header row, then one row per member who is not blacklisted"},
}


USER_FIELDS = (BLACKLISTED, PROFILE, SUBSCRIPTIONS)


async def export_csv(svc: Services, sid: str, columns: Sequence[Column], state: Any,
                     raw: bool = False) -> AsyncIterator[str]:
    """The CSV, window by window; `state.rows` counts the rows actually sent, for the audit.

    A window is decoded and formatted whole: its profiles (and subscriptions, when a column
    asks reachability) as one JSON array, its cells a column at a time
    (`RowFormatter.columns`, `render_columns`), so the Python work per row is a few list steps."""
    started = time.perf_counter()
    state.rows = 0
    need_profile = any(c.kind != "user_id" for c in columns)
    need_subscriptions = any(c.kind == "reach" for c in columns)
    formatter = RowFormatter(columns, raw)
    core = svc.core
    try:
        yield render([[c.name for c in columns]])
        async for ids, values in member_rows(core.keys, endpoint(svc.settings), sid, USER_FIELDS):
            users, rows = ids, values
            if any(value[0] == "1" for value in values):
                rows = [value for value in values if value[0] != "1"]
                users = [uid for uid, value in zip(ids, values, strict=True) if value[0] != "1"]
            if not rows:
                continue
            profiles = objects([row[1] for row in rows]) if need_profile else [{}] * len(rows)
            subscriptions = objects([row[2] for row in rows]) if need_subscriptions else []
            metrics.EXPORT_ROWS.inc(len(rows))
            yield render_columns(formatter.columns(users, profiles, subscriptions))
            state.rows += len(rows)
    finally:
        metrics.EXPORT_DURATION.observe(time.perf_counter() - started)


@router.get("/segments/{sid}/export.csv", response_class=StreamingResponse,
            responses={**CSV_RESPONSE, **errors(400, 403, 404, 422)})
async def export(
    request: Request,
    svc: Svc,
    sid: SegmentId,
    principal: Annotated[Principal, PII],
    fields: Annotated[str, Query(
        max_length=4000, description="comma-separated: user_id, reachable_<channel>, or any profile property",
        json_schema_extra={"pattern": FIELDS_PATTERN})] = "user_id",
    raw: Annotated[bool, Query(description="admin only: cells as stored, without formula neutralisation")] = False,
) -> StreamingResponse:
    try:
        columns = parse_fields(fields)
    except CsvError as exc:
        raise HTTPException(400, detail=str(exc)) from exc
    if raw and not principal.holds(Scope.ADMIN):
        raise HTTPException(403, detail=f"raw=true needs the admin scope; this API key ({principal.name}) lacks it")
    await get_segment_or_404(svc, sid)
    return StreamingResponse(
        export_csv(svc, sid, columns, request.state, raw),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{re.sub(r"[^A-Za-z0-9_.-]", "_", sid)}.csv"'},
    )
