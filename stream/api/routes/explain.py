"""Why a user is in or out of a segment, and when time alone will change that.

The user's stored state is decided again here with the same rules code the
worker runs (`stream.explain`), node by node, so the answer shows each
condition's value and evidence (counts, aggregates, the window) rather than
only the verdict. It is `pii`: it reveals a user's behaviour, so it is
audited like the other user routes (the Guard records segment and user).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException

from stream.api.auth import PII
from stream.api.deps import SegmentId, Svc, UserId
from stream.api.models import ExplainOut, errors
from stream.explain import explain_user

router = APIRouter(tags=["users"])


# `:path`, as GET /users/{user_id}: producers' user ids may hold a slash.
@router.get("/segments/{sid}/users/{user_id:path}/explain", dependencies=[PII],
            response_model=ExplainOut, response_model_exclude_unset=True, responses=errors(404, 422))
async def explain(svc: Svc, sid: SegmentId, user_id: UserId) -> dict[str, Any]:
    # One read of every definition: the segment and the ones it uses through in_segment, consistent.
    index = await svc.core.segments.load_index()
    seg = index.segments.get(sid)
    if seg is None:
        raise HTTPException(404, detail=f"segment {sid!r} not found")
    user = await svc.core.users.read(user_id)
    if user is None:
        raise HTTPException(404, detail=f"user {user_id!r} not found")
    return {"segment_id": sid, "user_id": user_id, **explain_user(user, seg, index, int(time.time() * 1000))}
