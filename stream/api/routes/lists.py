"""Custom list uploads: a CSV of identities streamed in, matched users added.

The body is never held whole: bytes are decoded incrementally, split into
records by `RecordSplitter`, and resolved and added a thousand rows at a
time, so a 200 MB file costs the API a few hundred kilobytes. The header is
checked before anything changes; a bad row later is just unmatched.
"""

from __future__ import annotations

import codecs
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from stream.api.auth import WRITE
from stream.api.deps import SegmentId, Services, Svc, get_segment_or_404
from stream.api.models import UploadOut, errors
from stream.csvio import CsvError, RecordSplitter, identity_column
from stream.engine.lists import CHUNK, known_users, resolve
from stream.segments import CUSTOM_LIST

router = APIRouter(tags=["lists"])

TEXT_TYPES = frozenset({"text/csv", "text/plain", "application/csv", "application/vnd.ms-excel"})
BODY_DOC: dict[str, Any] = {"requestBody": {
    "required": True,
    "description": "CSV with a header naming a user_id, email or phone column (first of those wins)",
    "content": {"text/csv": {"schema": {"type": "string"}, "example": "email\r\nana@example.com\r\n"}},
}}


class Batch:
    """Counts rows and resolves/adds them a chunk at a time."""

    def __init__(self, svc: Services, sid: str, kind: str) -> None:
        self.svc, self.sid, self.kind = svc, sid, kind
        self.values: list[str] = []
        self.rows = self.matched = 0

    async def add(self, value: str) -> None:
        self.rows += 1
        self.values.append(value)
        if len(self.values) >= CHUNK:
            await self.flush()

    async def flush(self) -> None:
        if not self.values:
            return
        values, self.values = self.values, []
        core = self.svc.core
        if not await core.segments.exists(self.sid):
            raise HTTPException(404, detail=f"segment {self.sid!r} was deleted during the upload")
        found = await resolve(core.redis, core.keys, self.kind, values)
        known = await known_users(core.redis, core.keys, [uid for users in found for uid in users])
        try:
            # Logged first (the resolved users, so a replay adds the same), then added.
            await core.catalog.add_list_chunk(self.sid, sorted(known))
        except RuntimeError as exc:  # users kept changing under us; re-uploading is harmless (adds only)
            raise HTTPException(503, detail=f"upload stopped after {self.rows} rows: {exc}; retry it") from exc
        self.matched += sum(1 for users in found if any(u in known for u in users))


def _check_header(header: list[str]) -> tuple[int, str]:
    if any("\ufffd" in h or "\x00" in h for h in header):
        raise HTTPException(400, detail="body is not UTF-8 CSV text")
    try:
        return identity_column(header)
    except CsvError as exc:
        raise HTTPException(400, detail=str(exc)) from exc


@router.post("/segments/{sid}/list", dependencies=[WRITE],
             response_model=UploadOut, openapi_extra=BODY_DOC,
             responses=errors(400, 404, 409, 415, 422, 503))
async def upload(svc: Svc, sid: SegmentId, request: Request) -> dict[str, int]:
    seg = await get_segment_or_404(svc, sid)
    if seg.kind != CUSTOM_LIST:
        raise HTTPException(409, detail=f"segment {sid!r} is {seg.kind}; only custom_list segments take uploads")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media not in TEXT_TYPES:
        raise HTTPException(415, detail=f"content-type {media[:100]!r} is not CSV; send text/csv")
    await svc.core.outputs.ready()
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    splitter = RecordSplitter()
    column: tuple[int, str] | None = None
    batch: Batch | None = None

    async def take(records: list[list[str]]) -> None:
        nonlocal column, batch
        for record in records:
            if column is None:
                column = _check_header(record)
                batch = Batch(svc, sid, column[1])
                continue
            assert batch is not None
            idx = column[0]
            await batch.add(record[idx].strip() if idx < len(record) else "")

    async for chunk in request.stream():
        await take(splitter.feed(decoder.decode(chunk)))
    await take(splitter.feed(decoder.decode(b"", final=True)) + splitter.finish())
    if batch is None:
        raise HTTPException(400, detail="empty body: expected a CSV header with a user_id, email or phone column")
    await batch.flush()
    return {"rows": batch.rows, "matched": batch.matched, "unmatched": batch.rows - batch.matched}
