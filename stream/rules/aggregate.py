"""Per-user, per-condition running aggregates, so an event costs O(log n), not a history replay.

A condition without a window only ever grows, so a count and a total are
enough. A windowed one must know *when* each counted event leaves, so it
keeps (ts, value) pairs sorted by time; that also lets timers find the next
instant membership can change without any new event.
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections.abc import Mapping
from dataclasses import dataclass, field

from stream.rules.model import EventCond, Scalar, window_ms
from stream.rules.ops import compare, is_number


@dataclass(slots=True)
class Aggregate:
    count: int = 0
    total: float = 0.0
    entries: list[tuple[int, float]] = field(default_factory=list)


def new_aggregate() -> Aggregate:
    return Aggregate()


def event_matches(cond: EventCond, name: str, props: Mapping[str, Scalar]) -> bool:
    """Names match exactly (case included): SDKs send fixed event names, and guessing would merge events."""
    return name == cond.name and all(compare(f.op, props.get(f.prop), f.value) for f in cond.where)


def sum_value(cond: EventCond, props: Mapping[str, Scalar]) -> float:
    """A missing, non-numeric or non-finite amount adds nothing rather than poisoning the total."""
    if cond.sum is None:
        return 0.0
    value = props.get(cond.sum.prop)
    if isinstance(value, float):
        return value if math.isfinite(value) else 0.0
    if is_number(value):
        try:
            return float(value)
        except OverflowError:
            return 0.0
    return 0.0


def fold(cond: EventCond, agg: Aggregate, ts_ms: int, props: Mapping[str, Scalar]) -> None:
    """The caller owns dedupe and the kind's lower bound; folding twice counts twice."""
    value = sum_value(cond, props)
    if cond.within_days is None:
        agg.count += 1
        agg.total += value
    else:
        insort(agg.entries, (ts_ms, value))


def prune(cond: EventCond, agg: Aggregate, now_ms: int) -> None:
    """Safe only because time moves forward: an entry older than the window never counts again.

    Without a sum, only the count is compared with an integer v, and whether
    the v+1 most recent events up to now are inside the window decides that
    comparison for every operator; older entries can never matter again (a
    late event older than them would not be among the v+1 most recent either).
    So a heavy user's windowed condition holds v+1 entries, not its history.
    """
    if cond.within_days is None or not agg.entries:
        return
    cut = bisect_right(agg.entries, now_ms - window_ms(cond.within_days), key=_ts)
    if cond.sum is None:
        keep = int(cond.count.value) + 1
        cut = max(cut, bisect_right(agg.entries, now_ms, key=_ts) - keep)
    if cut:
        del agg.entries[:cut]


def window_stats(cond: EventCond, agg: Aggregate, now_ms: int) -> tuple[int, float]:
    """Future-dated entries (ts > now) wait outside the window until their time comes."""
    if cond.within_days is None:
        return agg.count, agg.total
    lo = bisect_right(agg.entries, now_ms - window_ms(cond.within_days), key=_ts)
    hi = bisect_right(agg.entries, now_ms, key=_ts)
    if hi <= lo:
        return 0, 0.0
    if cond.sum is None:
        return hi - lo, 0.0
    # fsum: the answer must not depend on the order events arrived in.
    return hi - lo, math.fsum(v for _, v in agg.entries[lo:hi])


def next_window_change(cond: EventCond, agg: Aggregate, now_ms: int) -> int | None:
    """An entry is counted on [ts, ts + W): it enters at ts and leaves at ts + W."""
    if cond.within_days is None:
        return None
    width = window_ms(cond.within_days)
    if width <= 0:
        return None
    lo = bisect_right(agg.entries, now_ms - width, key=_ts)
    hi = bisect_right(agg.entries, now_ms, key=_ts)
    candidates = []
    if lo < hi:
        candidates.append(agg.entries[lo][0] + width)
    if hi < len(agg.entries):
        candidates.append(agg.entries[hi][0])
    return min(candidates, default=None)


def _ts(entry: tuple[int, float]) -> int:
    return entry[0]
