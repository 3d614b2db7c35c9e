"""Campaigns and journeys as materialised from the control log, and who uses a segment.

Written only by the control plane (`stream.control`); read here. Usage is
kept as counters (`c:<sid>`, `j:<sid>`, `s:<sid>` in one hash, moved by
`lua/control_apply.lua` with each record) so the delete check is O(1)
however many campaigns exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stream.state.client import RedisClient
from stream.state.keys import Keys


class UserKind(StrEnum):
    """Things that use segments, by their usage-counter prefix."""

    CAMPAIGN = "c"
    JOURNEY = "j"
    SEGMENT = "s"


@dataclass(frozen=True, slots=True)
class Usage:
    campaigns: int
    journeys: int
    segments: int = 0

    @property
    def total(self) -> int:
        return self.campaigns + self.journeys + self.segments


class CampaignStore:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._items = {UserKind.CAMPAIGN: keys.campaigns, UserKind.JOURNEY: keys.journeys}

    async def items(self, kind: UserKind) -> list[dict[str, Any]]:
        raw = await self.redis.hvals(self._items[kind])
        return sorted((json.loads(r) for r in raw), key=lambda it: (it["created_at_ms"], it["id"]))

    async def get(self, kind: UserKind, item_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(self._items[kind], item_id)
        return dict(json.loads(raw)) if raw else None

    async def usage(self, sid: str) -> Usage:
        c, j, s = await self.redis.hmget(self.keys.usage, [f"{k}:{sid}" for k in UserKind])
        return Usage(int(c or 0), int(j or 0), int(s or 0))

    async def users_of(self, sid: str) -> list[dict[str, Any]]:
        """The campaigns and journeys naming `sid`, for a 409 that says what to detach first."""
        found = [it for kind in (UserKind.CAMPAIGN, UserKind.JOURNEY) for it in await self.items(kind)]
        return [it for it in found if sid in it["uses"]]
