"""Builds a process's stores, producer and control plane from the settings, once.

The worker, the API, `stream rebuild`, `stream keys`, the demo and the tests
all get their parts here, so they connect to the same Redis (one node or a
cluster, plain or TLS) and Kafka the same way and share one definition of
how a control record is materialised.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from stream.config import Settings
from stream.control.catalog import Catalog
from stream.control.log import ControlLog
from stream.control.materialize import Materializer
from stream.engine.commit import Committer
from stream.engine.lists import add_members
from stream.kafkaio.outputs import KafkaOutputs
from stream.outputs import Outputs
from stream.state.campaigns import CampaignStore
from stream.state.client import RedisClient, connect, endpoint
from stream.state.jobs import JobStore
from stream.state.keys import Keys
from stream.state.lua import LuaRunner
from stream.state.resp import RespRouter
from stream.state.sample import SampleStore
from stream.state.segments import SegmentStore
from stream.state.store import RedisEngineStore
from stream.state.users import UserStore


@dataclass
class Core:
    settings: Settings
    redis: RedisClient
    router: RespRouter
    lua: LuaRunner
    keys: Keys
    users: UserStore
    segments: SegmentStore
    samples: SampleStore
    store: RedisEngineStore
    jobs: JobStore
    campaigns: CampaignStore
    outputs: KafkaOutputs
    materializer: Materializer
    control: ControlLog
    catalog: Catalog
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, cache_size: int = 0, outputs: KafkaOutputs | None = None) -> Core:
        redis = connect(settings)
        router = RespRouter(endpoint(settings))
        lua = LuaRunner(redis, router)
        keys = Keys(settings.key_prefix)
        users = UserStore(redis, lua, keys, cache_size)
        segments = SegmentStore(redis, lua, keys)
        samples = SampleStore(redis, lua, keys, settings.sketch_lg_k)
        store = RedisEngineStore(redis, lua, keys, users, segments, samples,
                                 settings.redis_wait_replicas, settings.redis_wait_timeout_ms)
        out = outputs or KafkaOutputs(settings)
        materializer = Materializer(redis, lua, keys, settings.partitions, int(settings.backfill_group_seconds * 1000))
        control = ControlLog(settings, out, materializer)
        core = cls(settings, redis, router, lua, keys, users, segments, samples, store, JobStore(redis, keys),
                   CampaignStore(redis, keys), out, materializer, control,
                   Catalog(redis, keys, control, settings.partitions))
        committer = core.committer(out)

        async def add_list(sid: str, uids: Sequence[str], at_ms: int) -> None:
            index = await segments.load_index()
            await add_members(committer, index, sid, uids, int(time.time() * 1000))

        materializer.add_list_members = add_list
        return core

    def committer(self, outputs: Outputs) -> Committer:
        return Committer(self.store, outputs, self.settings.timezone, self.settings.partitions,
                         self.settings.changelog)

    async def close(self) -> None:
        await self.outputs.close()
        await self.lua.close()
        await self.redis.aclose()
