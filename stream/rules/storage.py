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

A heavy user's sealed blocks (`stream.rules.blocks`) add an object right
after `total`: `{"k": next_id, "b": [[id, first_ts, last_ts, count, total,
([figures])], ...]}`, the directory with each block's summary; the block's
entries are stored apart (`block_to_json`, the same flat delta columns), in
a hash field per block that the caller names.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from stream.rules.aggregate import Aggregate, Entry, legacy_shape
from stream.rules.blocks import Block, Blocks, Summary
from stream.rules.jsonio import dumps, loads
from stream.rules.model import EventCond, Stateful

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
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


def _flat(entries: Sequence[Entry], row: list[object]) -> list[object]:
    if not entries:
        return row
    stamps = [e[0] for e in entries]
    steps = [stamps[0], *map(operator.sub, stamps[1:], stamps)]
    if len(entries[0]) == 2 and len(entries[-1]) == 2:  # one column (an aggregate's rows share a width)
        cells: list[object] = [None] * (2 * len(entries))
        cells[0::2] = steps
        cells[1::2] = [int(v) if type(v) is float and v.is_integer() and -_EXACT_INT < v < _EXACT_INT else v
                       for _, v in entries]  # _num, inlined: this is a heavy user's tail
        row += cells
        return row
    for step, entry in zip(steps, entries, strict=True):
        row.append(step)
        row.extend(_num(c) for c in entry[1:])
    return row


def aggregates_to_json(aggs: Sequence[Aggregate]) -> str:
    out: list[list[object]] = []
    for agg in aggs:
        row: list[object] = [agg.count, _total(agg.total)]
        if agg.blocks.items or agg.blocks.next_id:
            row.append({"k": agg.blocks.next_id, "b": [_summary_json(b) for b in agg.blocks.items]})
        if agg.extra:
            row.append([_figure_json(x) for x in agg.extra])
        out.append(_flat(agg.entries, row))
    return dumps(out)


def _summary_json(block: Block) -> list[object]:
    if block.row is not None and not block.dirty:
        return block.row  # as read: a block's summary never changes
    s = block.summary
    row: list[object] = [block.id, block.first, block.last, s.count, _total(s.total)]
    if s.extra:
        row.append([_figure_json(x) for x in s.extra])
    return row


def block_to_json(block: Block) -> str:
    if block.entries is None:
        raise ValueError(f"block {block.id}: its entries were never read")
    return dumps(_flat(block.entries, []))


def changed_blocks(aggs: Sequence[Aggregate]) -> tuple[list[tuple[int, int, str]], list[tuple[int, int]]]:
    """(condition index, block id, text) to write and (condition index, block id) to delete."""
    put: list[tuple[int, int, str]] = []
    gone: list[tuple[int, int]] = []
    for ci, agg in enumerate(aggs):
        put += [(ci, b.id, block_to_json(b)) for b in agg.blocks.items if b.dirty]
        gone += [(ci, bid) for bid in agg.blocks.dropped]
    return put, gone


def block_ids(text: str) -> list[tuple[int, int]]:
    """(condition index, block id) of every block an aggregate's stored text names."""
    if '{"k":' not in text:  # the directory's marker: most users have no block at all
        return []
    data = loads(text)
    out: list[tuple[int, int]] = []
    for ci, row in enumerate(data if isinstance(data, list) else []):
        if isinstance(row, list) and len(row) > 2 and isinstance(row[2], dict):
            out += [(ci, int(b[0])) for b in row[2].get("b", [])]
    return out


BlockText = Callable[[int, int], "str | None"]


def aggregates_from_json(text: str, conds: Sequence[Stateful] | None = None,
                         block_text: BlockText | None = None) -> list[Aggregate]:
    """Raises ValueError on anything this module did not write, rather than evaluating garbage.

    `conds` (the rule's stateful conditions) gives each row's column count;
    without it every row must be of the two-column shape. `block_text(condition
    index, block id)` gives a sealed block's stored text (None: not read); it is
    decoded only when a range edge cuts the block."""
    data = loads(text)
    if not isinstance(data, list):
        raise ValueError("aggregates: expected a list")
    if conds is not None and len(conds) != len(data):
        raise ValueError(f"aggregates: {len(data)} rows for {len(conds)} conditions")
    return [_row(row, i, None if conds is None else conds[i], block_text) for i, row in enumerate(data)]


def _width(cond: Stateful | None) -> int:
    if cond is None or not isinstance(cond, EventCond) or legacy_shape(cond):
        return 2
    return 1 + len(cond.tests)


def _row(row: object, index: int, cond: Stateful | None, block_text: BlockText | None = None) -> Aggregate:
    if not isinstance(row, list) or len(row) < 2:
        raise ValueError(f"aggregates[{index}]: expected a list")
    width = _width(cond)
    extra: list[object] = []
    body = row[2:]
    blocks = Blocks()
    if body and isinstance(body[0], dict):
        blocks = _directory(body[0], index, cond, block_text)
        body = body[1:]
    if width > 2 or (body and isinstance(body[0], list)):
        if not body or not isinstance(body[0], list):
            raise ValueError(f"aggregates[{index}]: expected the settled figures in third place")
        extra, body = list(body[0]), body[1:]
    count, total = row[0], row[1]
    # type() rather than isinstance: a bool is an int to isinstance, and this runs per user per touch.
    if type(count) is not int or count < 0:
        raise ValueError(f"aggregates[{index}]: count must be a non-negative integer")
    entries = _entries(body, index, cond, width, bool(extra))
    return Aggregate(count=count, total=_partials(total, index), entries=entries, extra=[_figure(x) for x in extra],
                     blocks=blocks)


class _Memo(Generic[K, V]):
    """A small least-recently-used map: what a heavy user's touch decoded last time, by its text.

    Only a heavy user has blocks, and a worker's user cache keeps its hash as text, so every
    touch decoded its ~195-row directory (about 1 ms) and the block a range edge cuts (512
    entries) again. Both texts are immutable and their decoding depends on nothing else, so
    the last `MEMO_SIZE` of each are kept; what they hold is shared and never mutated
    (summaries and sealed entries are read-only once decoded)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        value = self._items.pop(key, None)
        if value is not None:
            self._items[key] = value
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        while len(self._items) > self.size:
            del self._items[next(iter(self._items))]


MEMO_SIZE = 64
"""Directories and cut blocks kept decoded: 64 cut blocks of 512 entries are about 3 MB."""
_Row = tuple[int, int, int, Summary, list[Any]]
_DIRECTORIES: _Memo[str, list[_Row]] = _Memo(MEMO_SIZE)
_BLOCKS: _Memo[tuple[str, int, bool], list[Entry]] = _Memo(MEMO_SIZE)


def _directory(data: dict[str, Any], index: int, cond: Stateful | None, block_text: BlockText | None) -> Blocks:
    rows, next_id = data.get("b"), data.get("k")
    if not isinstance(rows, list) or type(next_id) is not int:
        raise ValueError(f"aggregates[{index}]: a block directory needs k and b")
    width = _width(cond)
    figures = isinstance(cond, EventCond) and not legacy_shape(cond)  # as `_row` finds them: not plain columns

    def decode(raw: str) -> list[Entry]:
        key = (raw, width, figures)
        entries = _BLOCKS.get(key)
        if entries is None:
            entries = _entries(loads(raw), index, cond, width, figures)
            _BLOCKS.put(key, entries)
        return entries

    blocks = Blocks(next_id=next_id, decode=decode,
                    fetch=None if block_text is None else lambda bid: block_text(index, bid))
    key = dumps(rows)
    decoded = _DIRECTORIES.get(key)
    if decoded is None:
        decoded = [_directory_row(b, index) for b in rows]
        _DIRECTORIES.put(key, decoded)
    blocks.items = [Block(bid, first, last, summary, row=row) for bid, first, last, summary, row in decoded]
    return blocks


def _directory_row(b: object, index: int) -> _Row:
    if (type(b) is not list or len(b) < 5 or type(b[0]) is not int or type(b[1]) is not int
            or type(b[2]) is not int or type(b[3]) is not int):
        raise ValueError(f"aggregates[{index}]: a block row is [id, first, last, count, total, ...]")
    summary = Summary(b[3], _partials(b[4], index), [_figure(x) for x in b[5]] if len(b) > 5 else [])
    return b[0], b[1], b[2], summary, b


def _entries(body: object, index: int, cond: Stateful | None, width: int, extra: bool) -> list[Entry]:
    if not isinstance(body, list) or len(body) % width:
        raise ValueError(f"aggregates[{index}]: entries of {width} columns expected")
    entries: list[Entry] = []
    ts = 0
    plain = width == 2 and not extra
    masks = cond is not None and _is_mask(cond)  # a sequence's second column is an int, not a float
    if plain and not masks and body:
        return _plain_entries(body, index)
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
    return entries


def _plain_entries(body: list[Any], index: int) -> list[Entry]:
    """(ts, number) pairs, checked and decoded a column at a time: a heavy user's tail and blocks."""
    steps, cells = body[0::2], body[1::2]
    if not set(map(type, steps)) <= {int} or min(steps[1:], default=0) < 0:
        raise ValueError(f"aggregates[{index}]: timestamps must be sorted integers")
    if not set(map(type, cells)) <= {int, float}:
        raise ValueError(f"aggregates[{index}]: expected a number after each timestamp")
    return list(zip(itertools.accumulate(steps), map(float, cells), strict=True))


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
