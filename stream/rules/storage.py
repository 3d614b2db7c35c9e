"""Compact text form of a user's aggregates for one segment, as stored in Redis.

This is kept per user per segment, so bytes matter: each aggregate is a flat
list `[count, total, ts0, v0, dt1, v1, ...]` with timestamps delta-encoded
(sorted entries make the deltas small and non-negative) and integral floats
written as integers. A plain counter costs about six bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

from stream.rules.aggregate import Aggregate
from stream.rules.jsonio import dumps, loads

_EXACT_INT = 2**53
_NUMBER = (int, float)


def _num(value: float) -> int | float:
    if value.is_integer() and abs(value) < _EXACT_INT:
        return int(value)
    return value


def aggregates_to_json(aggs: Sequence[Aggregate]) -> str:
    out: list[list[int | float]] = []
    for agg in aggs:
        row: list[int | float] = [agg.count, _num(agg.total)]
        prev = 0
        for i, (ts, value) in enumerate(agg.entries):
            row.append(ts if i == 0 else ts - prev)
            row.append(_num(value))
            prev = ts
        out.append(row)
    return dumps(out)


def aggregates_from_json(text: str) -> list[Aggregate]:
    """Raises ValueError on anything this module did not write, rather than evaluating garbage."""
    data = loads(text)
    if not isinstance(data, list):
        raise ValueError("aggregates: expected a list")
    return [_row(row, i) for i, row in enumerate(data)]


def _row(row: object, index: int) -> Aggregate:
    # type() rather than isinstance: a bool is an int to isinstance, and this runs per user per touch.
    if not isinstance(row, list) or len(row) < 2 or len(row) % 2 or not all(type(x) in _NUMBER for x in row):
        raise ValueError(f"aggregates[{index}]: expected an even-length list of numbers")
    count, total = row[0], row[1]
    if not isinstance(count, int) or count < 0:
        raise ValueError(f"aggregates[{index}]: count must be a non-negative integer")
    entries: list[tuple[int, float]] = []
    ts = 0
    for j in range(2, len(row), 2):
        step = row[j]
        if not isinstance(step, int) or (j > 2 and step < 0):
            raise ValueError(f"aggregates[{index}]: timestamps must be sorted integers")
        ts = step if j == 2 else ts + step
        entries.append((ts, float(row[j + 1])))
    return Aggregate(count=count, total=float(total), entries=entries)
