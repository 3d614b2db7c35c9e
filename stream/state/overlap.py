"""Exact overlap of two segments, from their member buckets, one segment's slot at a time.

The two segments carry different hash tags, so on a Redis Cluster they live
on different slots and no single command may touch both. A user sits in the
same bucket number in every segment (`Keys.member_bucket_of`), so the
overlap is the sum over buckets of |A_b & B_b|: both segments are read
bucket group by bucket group (HKEYS, one round trip per group and segment
slot), each bucket whole in one reply, so no id is counted twice, and the
sizes are the numbers of ids read, so "only in A" cannot go negative.

Members joining or leaving during the reading may or may not be counted; the
answer is exact for a segment nobody is changing and off by at most the
changes made meanwhile otherwise. Memory: one group of buckets at a time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from stream.state.keys import MEMBER_BUCKETS, Keys
from stream.state.resp import RespRouter
from stream.state.walk import bucket_ids

__all__ = ["ExactOverlap", "exact_overlap"]

GROUP = 256  # buckets per round trip: ~60k ids of each segment at 1M members


@dataclass(frozen=True, slots=True)
class ExactOverlap:
    """Members of both segments, of the first only and of the second only."""

    both: int
    only_a: int
    only_b: int


async def exact_overlap(router: RespRouter, keys: Keys, sid_a: str, sid_b: str) -> ExactOverlap:
    """Count the overlap exactly: both segments read once, O(|A| + |B|) ids, a group at a time."""
    both = size_a = size_b = 0
    for first in range(0, MEMBER_BUCKETS, GROUP):
        last = min(first + GROUP, MEMBER_BUCKETS)
        if sid_a == sid_b:
            in_a = in_b = await bucket_ids(router, keys, sid_a, first, last)
        else:
            in_a, in_b = await asyncio.gather(bucket_ids(router, keys, sid_a, first, last),
                                              bucket_ids(router, keys, sid_b, first, last))
        for a, b in zip(in_a, in_b, strict=True):
            size_a += len(a)
            size_b += len(b)
            if a and b:
                both += len(a) if a is b else len(set(a).intersection(b))
    return ExactOverlap(both=both, only_a=size_a - both, only_b=size_b - both)
