"""Compact text form of a user's aggregates for one segment, as stored in Redis.

This is kept per user per segment, so bytes matter: each aggregate is a flat
list `[count, total, ts0, v0, dt1, v1, ...]` with timestamps delta-encoded
(`total` a number, or the list of its exact partials when one float cannot hold it)
(sorted entries make the deltas small and non-negative) and integral floats
written as integers. A plain counter costs about six bytes. A sequence's
entries are (ts, step mask), the same two columns. An event condition with
min/max/avg/distinct tests (rules v2) stores its settled figures as a list in
third place, `[count, total, [figures], ts0, c1, ..., cn, dt1, ...]`, with one
column per test; the condition says how many, so it is not stored.
"""

from __future__ import annotations

from collections.abc import Sequence

from stream.rules.aggregate import Aggregate, Entry, legacy_shape
from stream.rules.jsonio import dumps, loads
from stream.rules.model import EventCond, Stateful

_EXACT_INT = 2**53
_NUMBER = (int, float)
_CELL = (int, float, str, type(None))


def _num(value: object) -> object:
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_INT:
        return int(value)
    return value


def _total(partials: Sequence[float]) -> object:
    """A settled sum's exact partials: usually one number (as v1 stored it), else their list."""
    nonzero = [p for p in partials if p]
    if len(nonzero) <= 1:
        return _num(nonzero[0]) if nonzero else 0
    return nonzero


def _figure_json(figure: object) -> object:
    if isinstance(figure, list) and len(figure) == 2 and isinstance(figure[0], list):
        return [_total(figure[0]), figure[1]]  # avg: [partials, n]
    if isinstance(figure, list):
        return figure  # distinct keys
    return _num(figure)


def aggregates_to_json(aggs: Sequence[Aggregate]) -> str:
    out: list[list[object]] = []
    for agg in aggs:
        row: list[object] = [agg.count, _total(agg.total)]
        if agg.extra:
            row.append([_figure_json(x) for x in agg.extra])
        prev = 0
        for i, entry in enumerate(agg.entries):
            ts = entry[0]
            row.append(ts if i == 0 else ts - prev)
            row.extend(_num(c) for c in entry[1:])
            prev = ts
        out.append(row)
    return dumps(out)


def aggregates_from_json(text: str, conds: Sequence[Stateful] | None = None) -> list[Aggregate]:
    """Raises ValueError on anything this module did not write, rather than evaluating garbage.

    `conds` (the rule's stateful conditions) gives each row's column count;
    without it every row must be of the two-column shape."""
    data = loads(text)
    if not isinstance(data, list):
        raise ValueError("aggregates: expected a list")
    if conds is not None and len(conds) != len(data):
        raise ValueError(f"aggregates: {len(data)} rows for {len(conds)} conditions")
    return [_row(row, i, None if conds is None else conds[i]) for i, row in enumerate(data)]


def _width(cond: Stateful | None) -> int:
    if cond is None or not isinstance(cond, EventCond) or legacy_shape(cond):
        return 2
    return 1 + len(cond.tests)


def _row(row: object, index: int, cond: Stateful | None) -> Aggregate:
    if not isinstance(row, list) or len(row) < 2:
        raise ValueError(f"aggregates[{index}]: expected a list")
    width = _width(cond)
    extra: list[object] = []
    body = row[2:]
    if width > 2 or (body and isinstance(body[0], list)):
        if not body or not isinstance(body[0], list):
            raise ValueError(f"aggregates[{index}]: expected the settled figures in third place")
        extra, body = list(body[0]), body[1:]
    count, total = row[0], row[1]
    # type() rather than isinstance: a bool is an int to isinstance, and this runs per user per touch.
    if type(count) is not int or count < 0:
        raise ValueError(f"aggregates[{index}]: count must be a non-negative integer")
    if len(body) % width:
        raise ValueError(f"aggregates[{index}]: entries of {width} columns expected")
    entries: list[Entry] = []
    ts = 0
    plain = width == 2 and not extra
    masks = cond is not None and _is_mask(cond)  # a sequence's second column is an int, not a float
    for j in range(0, len(body), width):
        step = body[j]
        if type(step) is not int or (j and step < 0):
            raise ValueError(f"aggregates[{index}]: timestamps must be sorted integers")
        ts = step if j == 0 else ts + step
        cells = body[j + 1:j + width]
        if plain:
            if type(cells[0]) not in _NUMBER:
                raise ValueError(f"aggregates[{index}]: expected a number after each timestamp")
            entries.append((ts, int(cells[0]) if masks else float(cells[0])))
            continue
        if not all(type(c) in _CELL for c in cells):
            raise ValueError(f"aggregates[{index}]: unexpected cell")
        entries.append((ts, *(float(c) if type(c) is int else c for c in cells)))
    return Aggregate(count=count, total=_partials(total, index), entries=entries, extra=[_figure(x) for x in extra])


def _partials(value: object, index: int) -> list[float]:
    if type(value) in _NUMBER:
        return [float(value)] if value else []  # type: ignore[arg-type]
    if isinstance(value, list) and all(type(p) in _NUMBER for p in value):
        return [float(p) for p in value]
    raise ValueError(f"aggregates[{index}]: total must be a number or a list of numbers")


def _is_mask(cond: Stateful) -> bool:
    return not isinstance(cond, EventCond)


def _figure(value: object) -> object:
    """Settled figures: a number (min/max), None, [sum, n] (avg) or a list of keys (distinct)."""
    if isinstance(value, list) and len(value) == 2 and type(value[1]) is int and (
            type(value[0]) in _NUMBER or isinstance(value[0], list)):
        return [_partials(value[0], -1), value[1]]
    if type(value) is int:
        return float(value)
    return value
