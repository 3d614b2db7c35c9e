"""Where Redis memory goes, by key family: per-user keys grow with users, a segment's sample does not.

`MEMORY USAGE` of every key under a prefix, grouped by the key with its hash tag
and a trailing number blanked (`u:{}`, `seg:{}:m:<n>` for the member buckets,
...), so the benchmark can say which part of "bytes per user" scales with users and which is a bounded per-segment cost.
"""

from __future__ import annotations

import re
from collections import Counter

from stream.state.client import RedisClient

TAG = re.compile(r"\{[^}]*\}")
NUMBER = re.compile(r":\d+$")


def family(key: str, prefix: str) -> str:
    return NUMBER.sub(":<n>", TAG.sub("{}", key[len(prefix):]))


async def by_family(redis: RedisClient, prefix: str, batch: int = 2000) -> dict[str, int]:
    sizes: Counter[str] = Counter()
    keys: list[str] = []

    async def flush() -> None:
        pipe = redis.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key, samples=0)
        for key, used in zip(keys, await pipe.execute(), strict=True):
            sizes[family(key, prefix)] += int(used or 0)
        keys.clear()

    async for raw in redis.scan_iter(match=prefix + "*", count=5000):
        keys.append(raw.decode() if isinstance(raw, bytes) else str(raw))
        if len(keys) >= batch:
            await flush()
    if keys:
        await flush()
    return dict(sizes.most_common())
