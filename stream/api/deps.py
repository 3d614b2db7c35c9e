"""The state objects every route needs, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from redis.asyncio import Redis

from stream.config import Settings
from stream.state.jobs import JobStore
from stream.state.keys import Keys
from stream.state.sample import SampleStore
from stream.state.segments import SegmentStore
from stream.state.users import UserStore


@dataclass(frozen=True)
class Services:
    redis: Redis
    settings: Settings
    keys: Keys
    segments: SegmentStore
    jobs: JobStore
    samples: SampleStore
    users: UserStore

    @classmethod
    def build(cls, redis: Redis, settings: Settings) -> Services:
        keys = Keys(settings.key_prefix)
        return cls(
            redis=redis,
            settings=settings,
            keys=keys,
            segments=SegmentStore(redis, keys),
            jobs=JobStore(redis, keys),
            samples=SampleStore(redis, settings.key_prefix, settings.sketch_lg_k),
            users=UserStore(redis, keys, settings.dedupe_ttl_seconds),
        )


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
