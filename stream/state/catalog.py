"""Creating and deleting segments: the definition, its backfill job, its keys.

Shared by the API and the tests so a segment is always born the same way.
"""

from __future__ import annotations

import time
import uuid

from stream.rules import SegmentSpec
from stream.segments import CUSTOM_LIST, Segment, make_segment
from stream.state.jobs import BACKFILL, CLEANUP, JobStore
from stream.state.sample import SampleStore
from stream.state.segments import SegmentStore


async def create_segment(segments: SegmentStore, jobs: JobStore, spec: SegmentSpec, partitions: int,
                         now_ms: int | None = None) -> tuple[Segment, str | None]:
    """Stores the definition and queues its creation backfill; returns (segment, job id)."""
    created = int(time.time() * 1000) if now_ms is None else now_ms
    seg = make_segment(f"s-{uuid.uuid4().hex[:10]}", spec.name, spec.kind, spec.rule, created)
    await segments.put(seg)
    job_id = None
    if seg.kind != CUSTOM_LIST:
        job_id = await jobs.create(BACKFILL, seg.id, partitions)
    return seg, job_id


async def delete_segment(segments: SegmentStore, samples: SampleStore, jobs: JobStore, sid: str,
                         partitions: int) -> str:
    """Segment-side keys go now; a cleanup job then drops every user's leftovers (membership,
    aggregates, backfill mark) partition by partition. Returns the cleanup job's id."""
    await segments.remove(sid)
    await samples.delete(sid)
    return await jobs.create(CLEANUP, sid, partitions)
