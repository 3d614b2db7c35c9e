"""How two segments overlap: members of both, of this one only, of the other only.

The estimate reads only the two retained samples (O(nominal entries) at any
segment size, stream/overlap.py says why it is unbiased); the exact count
walks the smaller member set against the other (stream/state/overlap.py),
so it costs O(min(|A|, |B|)) and is the one to ask for when a small overlap
of a big segment comes back with wide bounds.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from stream.api.auth import READ
from stream.api.deps import SegmentId, Svc, get_segment_or_404
from stream.api.models import OverlapEstimate, OverlapExact, errors
from stream.overlap import estimate_overlap
from stream.state.client import endpoint
from stream.state.overlap import exact_overlap
from stream.state.resp import RespRouter

router = APIRouter(tags=["insights"])

With = Annotated[str, Query(alias="with", min_length=1, max_length=100,
                            description="the other segment's id, e.g. s-1a2b3c4d5e")]


@router.get("/segments/{sid}/overlap", dependencies=[READ],
            response_model=OverlapEstimate | OverlapExact, responses=errors(404, 422))
async def overlap(svc: Svc, sid: SegmentId, other: With,
                  mode: Annotated[Literal["estimate", "exact"], Query()] = "estimate") -> dict[str, Any]:
    await get_segment_or_404(svc, sid)
    if not await svc.core.segments.exists(other):
        raise HTTPException(404, detail=f"with: segment {other!r} not found")
    core = svc.core
    head = {"mode": mode, "segment_id": sid, "with": other}
    if mode == "exact":
        router = RespRouter(endpoint(svc.settings))
        try:
            exact = await exact_overlap(router, core.keys, sid, other)
        finally:
            await router.close()
        return {**head, "both": exact.both, "only_segment": exact.only_a, "only_with": exact.only_b}
    # Both thetas first, so each sample is read only below the smaller one: at most 2K entries move, and
    # usually far fewer from the bigger segment's sample. Each read reports the theta its entries cover.
    (theta_a, _, _), (theta_b, _, _) = await asyncio.gather(core.samples.counters(sid), core.samples.counters(other))
    below = min(theta_a, theta_b)
    (theta_a, a), (theta_b, b) = await asyncio.gather(core.samples.entries_below(sid, below),
                                                      core.samples.entries_below(other, below))
    est = estimate_overlap(a, theta_a, b, theta_b)
    return {**head, "both": est.both, "only_segment": est.only_a, "only_with": est.only_b}
