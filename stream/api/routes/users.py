"""A segment's sample users and any one user's profile, as shown on click."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from stream.api.auth import PII
from stream.api.deps import SegmentId, Services, Svc, UserId, get_segment_or_404
from stream.api.models import UserOut, UsersOut, errors
from stream.membership import UserState
from stream.rules import reachability
from stream.state.userhash import DECIDING, load_user, present

router = APIRouter(tags=["users"])


def user_body(user: UserState, live_segments: set[str]) -> dict[str, Any]:
    """Segments deleted since the user was last touched are dropped here, not left to confuse."""
    return {
        "user_id": user.user_id,
        "profile": user.profile,
        "reachability": reachability(user.profile, user.subscriptions),
        "blacklisted": user.blacklisted,
        "segments": sorted(user.members & live_segments),
    }


async def _live_segments(svc: Services) -> set[str]:
    return {str(k) for k in await svc.core.redis.hkeys(svc.core.keys.segments)}


@router.get("/segments/{sid}/users", dependencies=[PII],
             response_model=UsersOut, responses=errors(404, 422))
async def sample_users(svc: Svc, sid: SegmentId,
                       limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, Any]:
    await get_segment_or_404(svc, sid)
    core = svc.core
    # The estimate sample is a uniform sample of the members (by a hash of the id; all of them
    # up to 2K): a random pick from it is a random pick of members, in one command.
    picked = await core.redis.zrandmember(core.keys.sample(sid)[0], limit)
    ids = sorted(u.decode() if isinstance(u, bytes) else str(u) for u in picked or [])
    # The fields a user card shows, not the whole hash: a user's aggregates and blocks are most of it.
    pipe = core.redis.pipeline(transaction=False)
    for uid in ids:
        pipe.hmget(core.keys.user(uid), DECIDING)
    rows = await pipe.execute() if ids else []
    live = await _live_segments(svc)
    users = [load_user(uid, present(DECIDING, row)) for uid, row in zip(ids, rows, strict=True) if row[0] is not None]
    return {"users": [user_body(u, live) for u in users]}


@router.get("/users/{user_id:path}", dependencies=[PII],
             response_model=UserOut, responses=errors(404, 422))
async def user(svc: Svc, user_id: UserId) -> dict[str, Any]:
    found = await svc.core.users.read(user_id)
    if found is None:
        raise HTTPException(404, detail=f"user {user_id!r} not found")
    return user_body(found, await _live_segments(svc))
