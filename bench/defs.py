"""Definitions written straight into Redis, for benchmarks that fill Redis directly.

The product logs every definition to Kafka first (stream.control); these
benchmarks measure reads of state they write themselves, with no broker, so
they materialise the definition the same way the control plane does, from a
record that was never logged.
"""

from __future__ import annotations

from stream.config import Settings
from stream.control.catalog import segment_record
from stream.control.materialize import Materializer
from stream.control.records import ControlKind, ControlRecord, record_key
from stream.segments import Segment
from stream.state.client import RedisClient, endpoint
from stream.state.keys import Keys
from stream.state.lua import LuaRunner
from stream.state.resp import RespRouter


async def install(redis: RedisClient, redis_url: str, keys: Keys, seg: Segment) -> None:
    lua = LuaRunner(redis, RespRouter(endpoint(Settings(redis_url=redis_url))))
    try:
        record = ControlRecord(record_key(ControlKind.SEGMENT, seg.id), segment_record(seg), 0, seg.created_at_ms)
        await Materializer(redis, lua, keys, 1, 0).apply(record, follow_up=False)
    finally:
        await lua.router.close()
