"""Per-user, per-condition running state, so an event costs O(log n), not a history replay.

A condition's counted events are split in two parts:

- *settled*: events that count now and forever (no `within`: an unbounded
  condition, or a `before`-only one whose entries have aged into range) are
  folded into running figures (`count`, `total`, `extra`), O(1) each;
- *pending*: with `within` or `before`, events that will enter or leave the
  range as time passes are kept as sorted `entries` (ts, column...), which
  also tells the timers the next instant membership can change. A heavy
  user's older pending entries are sealed into blocks (`stream.rules.blocks`)
  so a touch reads and writes a block, not the whole window.

Columns hold one value per aggregate test, read once at fold time: a sum's
amount (0 when not a finite number), a min/max/avg's number (None when not
one), a distinct's family-tagged key. A sequence's entry holds the bitmask of
the steps its event matches.
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream.rules.blocks import BLOCK_ENTRIES, TAIL_ENTRIES, Blocks, Summary
from stream.rules.model import AggTest, EventCond, PropFilter, Scalar, SequenceCond, Stateful
from stream.rules.ops import compare, is_number

Column = float | str | None
Entry = tuple[Any, ...]
"""(ts, columns...): ts an int, then floats, None or distinct keys (str), or a sequence's step mask."""


@dataclass(slots=True)
class Aggregate:
    count: int = 0
    # The settled sum (of the `sum` test, if any) as exact partials (`add_exact`): its value,
    # math.fsum(total), is then the same whatever order the events were folded in.
    total: list[float] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)  # pending (ts, columns...), sorted
    extra: list[Any] = field(default_factory=list)  # settled min/max/avg/distinct figures, in test order
    blocks: Blocks = field(default_factory=Blocks)  # older pending entries, sealed (stream.rules.blocks)

    @property
    def empty(self) -> bool:
        return self.count == 0 and not self.entries and not self.blocks.items

    @property
    def shape(self) -> tuple[int, int, int]:
        """Changes whenever pruning changed what is stored."""
        return len(self.entries), self.count, len(self.blocks.items)


@dataclass(frozen=True, slots=True)
class Measure:
    """What a condition sees at an instant: its count and each test's value (None: missing)."""

    count: int
    values: tuple[float | int | None, ...] = ()
    found: tuple[int, ...] | None = None  # a sequence's matched timestamps


def legacy_shape(cond: Stateful) -> bool:
    """v1 conditions (count, an optional sum): stored as [count, total, ts, v, dt, v, ...]."""
    return isinstance(cond, EventCond) and cond.legacy


def new_aggregate(cond: Stateful | None = None) -> Aggregate:
    agg = Aggregate()
    if isinstance(cond, EventCond) and not legacy_shape(cond):
        agg.extra = [_empty(t) for t in cond.tests if t.kind != "sum"]
    return agg


def _empty(test: AggTest) -> object:
    if test.kind == "avg":
        return [[], 0]
    if test.kind == "distinct":
        return []
    return None


def _filters(where: Sequence[PropFilter], props: Mapping[str, Scalar]) -> bool:
    return all(compare(f.op, props.get(f.prop), f.value) for f in where)


def event_matches(cond: Stateful, name: str, props: Mapping[str, Scalar]) -> bool:
    """Names match exactly (case included): SDKs send fixed event names, and guessing would merge events.
    A sequence matches an event that fits any of its steps."""
    if isinstance(cond, SequenceCond):
        return _step_mask(cond, name, props) != 0
    return name == cond.name and _filters(cond.where, props)


cond_matches = event_matches


def _step_mask(cond: SequenceCond, name: str, props: Mapping[str, Scalar]) -> int:
    mask = 0
    for i, step in enumerate(cond.steps):
        if step.name == name and _filters(step.where, props):
            mask |= 1 << i
    return mask


def number(value: object) -> float | None:
    """A finite number as a float; a bool, a string, a huge or non-finite value is not one."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if is_number(value):
        try:
            return float(value)
        except OverflowError:
            return None
    return None


def distinct_key(value: object) -> str | None:
    """Values compare by family: 1 and 1.0 are one value; "1", 1 and true are three."""
    if isinstance(value, bool):
        return "b:" + ("true" if value else "false")
    if isinstance(value, str):
        return "s:" + value
    as_number = number(value)
    return None if as_number is None else "n:" + repr(as_number)


def sum_value(cond: EventCond, props: Mapping[str, Scalar]) -> float:
    """A missing, non-numeric or non-finite amount adds nothing rather than poisoning the total."""
    test = cond.sum
    return 0.0 if test is None else (number(props.get(test.prop)) or 0.0)


def _columns(cond: EventCond, props: Mapping[str, Scalar]) -> tuple[Column, ...]:
    if legacy_shape(cond):
        return (sum_value(cond, props),)
    out: list[Column] = []
    for test in cond.tests:
        value = props.get(test.prop)
        if test.kind == "sum":
            out.append(number(value) or 0.0)
        elif test.kind == "distinct":
            out.append(distinct_key(value))
        else:
            out.append(number(value))
    return tuple(out)


def fold(cond: Stateful, agg: Aggregate, ts_ms: int, props: Mapping[str, Scalar], name: str | None = None) -> None:
    """The caller owns dedupe, the kind's lower bound and `event_matches`; folding twice counts twice.

    A sequence records which of its steps the event fits, so it needs the event's name."""
    if isinstance(cond, SequenceCond):
        if name is None:
            raise ValueError("folding into a sequence needs the event's name")
        fold_entry(cond, agg, ts_ms, (_step_mask(cond, name, props),))
    else:
        fold_entry(cond, agg, ts_ms, _columns(cond, props))


def entry_key(cond: Stateful) -> tuple[object, ...]:
    """Conditions with equal keys read the same entry from an event (`entry_columns`): the
    same name and filters, the same columns. A creation backfill reads an event once per key,
    not once per segment (50 "did X" segments over 7 names: 7 keys)."""
    if isinstance(cond, SequenceCond):
        return ("sequence", cond.steps)
    return ("event", cond.name, cond.where, legacy_shape(cond), tuple((t.kind, t.prop) for t in cond.tests))


def entry_columns(cond: Stateful, name: str, props: Mapping[str, Scalar]) -> tuple[Column, ...] | None:
    """What `fold` keeps of a matching event besides its instant (None: the event does not match)."""
    if isinstance(cond, SequenceCond):
        mask = _step_mask(cond, name, props)
        return (mask,) if mask else None
    if name != cond.name or not _filters(cond.where, props):
        return None
    return _columns(cond, props)


def fold_entry(cond: Stateful, agg: Aggregate, ts_ms: int, columns: Sequence[Column]) -> None:
    """`fold` once the event's columns are read (a sequence's: its step mask)."""
    bounds = cond.bounds
    if not bounds.fixed(ts_ms):
        return
    if isinstance(cond, SequenceCond):
        mask = columns[0]
        if agg.count or not mask:  # already found: with fixed bounds it stays found
            return
        insort(agg.entries, (ts_ms, mask), key=_ts)
        if not bounds.moving:
            _settle_chain(cond, agg, agg.entries)
        return
    if bounds.moving:
        insort(agg.entries, (ts_ms, *columns), key=_ts)
        if len(agg.entries) >= BLOCK_ENTRIES + TAIL_ENTRIES:
            _seal(cond, agg)
    else:
        _settle(cond, agg, columns)


def fold_sorted(cond: Stateful, agg: Aggregate, entries: Sequence[tuple[int, Sequence[Column]]]) -> None:
    """`fold_entry` of each (ts, columns), given in time order. Into an empty windowed event
    aggregate that is the entries as they come (bounded by `from`/`to`), sealed once at the
    end, which seals the same blocks as sealing along the way: a creation backfill's fold of a
    user with a million events in one list, not a million calls."""
    bounds = cond.bounds
    if isinstance(cond, EventCond) and bounds.moving and not agg.entries and not agg.blocks.items:
        fixed = bounds.fixed
        agg.entries = [(ts, *columns) for ts, columns in entries if fixed(ts)]
        _seal(cond, agg)
        return
    for ts, columns in entries:
        fold_entry(cond, agg, ts, columns)


def sealable(cond: Stateful) -> bool:
    """Windowed event conditions with a test, or with `before`: a `within`-only count keeps
    v+1 entries (prune), and a sequence's chain search needs its entries together."""
    if not isinstance(cond, EventCond) or not cond.bounds.moving:
        return False
    return bool(cond.tests) or cond.bounds.before_ms > 0 or cond.bounds.within_ms is None


def _seal(cond: Stateful, agg: Aggregate) -> None:
    """The open tail's oldest entries become blocks until it holds less than a block and its slack."""
    if not isinstance(cond, EventCond) or not sealable(cond):
        return
    while len(agg.entries) >= BLOCK_ENTRIES + TAIL_ENTRIES:
        part = agg.entries[:BLOCK_ENTRIES]
        del agg.entries[:BLOCK_ENTRIES]
        settled = new_aggregate(cond)
        for entry in part:
            _settle(cond, settled, entry[1:])
        agg.blocks.add(part, Summary(settled.count, settled.total, settled.extra))


def _absorb(cond: EventCond, agg: Aggregate, other: Aggregate | Summary) -> None:
    """Adds settled figures (a block's summary, a backfill's settled part) into `agg`'s."""
    agg.count += other.count
    for part in other.total:
        add_exact(agg.total, part)
    tests = [t for t in cond.tests if t.kind != "sum"] if not legacy_shape(cond) else []
    for slot, test in enumerate(tests):
        agg.extra[slot] = _combine(test, agg.extra[slot], other.extra[slot])


def add_exact(partials: list[float], x: float) -> list[float]:
    """Adds x to a sum kept as non-overlapping partials (Shewchuk's algorithm, as math.fsum
    uses inside): the partials' exact sum is the exact sum of every value added, so
    math.fsum(partials) is the correctly rounded total, independent of arrival order. Usually
    one or two floats."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]
    return partials


def _settle(cond: EventCond, agg: Aggregate, columns: Sequence[Any]) -> None:
    agg.count += 1
    if legacy_shape(cond):
        add_exact(agg.total, float(columns[0]))
        return
    slot = 0
    for test, value in zip(cond.tests, columns, strict=True):
        if test.kind == "sum":
            add_exact(agg.total, float(value))
            continue
        agg.extra[slot] = _merge(test, agg.extra[slot], value)
        slot += 1


def _merge(test: AggTest, figure: Any, value: Any) -> Any:
    if value is None:
        return figure
    if test.kind == "min":
        return value if figure is None or value < figure else figure
    if test.kind == "max":
        return value if figure is None or value > figure else figure
    if test.kind == "avg":
        total, n = figure
        return [add_exact(list(total), value), n + 1]
    keys: list[str] = figure
    if value in keys or len(keys) > test.value:  # more than `value` distinct decides every comparison
        return keys
    return sorted([*keys, value])


def merge(cond: Stateful, agg: Aggregate, other: Aggregate) -> None:
    """Adds `other`'s events (a creation backfill's, disjoint from the live ones) into `agg`."""
    if isinstance(cond, SequenceCond):
        if agg.count or other.count:
            agg.count, agg.entries = 1, agg.entries if agg.count else other.entries
            return
        agg.entries = sorted(agg.entries + other.entries, key=_ts)
        if not cond.bounds.moving:
            _settle_chain(cond, agg, agg.entries)
        return
    _absorb(cond, agg, other)
    for block in other.blocks.items:
        agg.blocks.add(other.blocks.entries(block), block.summary)
    if other.entries:
        agg.entries = sorted(agg.entries + other.entries, key=_ts)
        _seal(cond, agg)


def _combine(test: AggTest, a: Any, b: Any) -> Any:
    if test.kind == "avg":
        total = list(a[0])
        for part in b[0]:
            add_exact(total, part)
        return [total, a[1] + b[1]]
    if test.kind == "distinct":
        for key in b:
            a = _merge(test, a, key)
        return a
    return _merge(test, a, b)


def prune(cond: Stateful, agg: Aggregate, now_ms: int) -> None:
    """Safe only because time moves forward: what left the range never counts again, and what
    entered a range with no lower bound counts forever (so it is settled).

    Without tests, a `within`-only count compares with an integer v, and whether
    the v+1 most recent events up to now are inside the window decides that
    comparison for every operator; older entries can never matter again (a
    late event older than them would not be among the v+1 most recent either).
    So a heavy user's windowed count holds v+1 entries, not its history.
    """
    bounds = cond.bounds
    if not bounds.moving or not (agg.entries or agg.blocks.items):
        return
    within, shift = bounds.within_ms, bounds.before_ms
    entries = agg.entries
    if within is not None:
        horizon = now_ms - within
        agg.blocks.drop(lambda b: b.last > horizon)
        cut = bisect_right(entries, now_ms - within, key=_ts)
        if isinstance(cond, EventCond) and not cond.tests and shift == 0:
            keep = int(cond.count.value) + 1
            cut = max(cut, bisect_right(entries, now_ms, key=_ts) - keep)
        if cut:
            del entries[:cut]
        return
    # `before` alone: entries at or before now - B are in range for good.
    if isinstance(cond, EventCond):
        for block in agg.blocks.drop(lambda b: b.last > now_ms - shift):
            _absorb(cond, agg, block.summary)
    ready = bisect_right(entries, now_ms - shift, key=_ts)
    if not ready:
        return
    if isinstance(cond, SequenceCond):
        _settle_chain(cond, agg, entries[:ready])
        return
    for entry in entries[:ready]:
        _settle(cond, agg, entry[1:])
    del entries[:ready]


def _ts(entry: Entry) -> int:
    ts: int = entry[0]
    return ts


def _in_range(cond: Stateful, agg: Aggregate, now_ms: int) -> list[Entry]:
    bounds = cond.bounds
    entries = agg.entries
    if not bounds.moving:
        return entries  # a sequence's events while no chain is found yet (an event's are settled)
    within, shift = bounds.within_ms, bounds.before_ms
    lo = 0 if within is None else bisect_right(entries, now_ms - within, key=_ts)
    hi = bisect_right(entries, now_ms - shift, key=_ts)
    return entries[lo:hi] if lo < hi else []


def measure(cond: Stateful, agg: Aggregate, now_ms: int) -> Measure:
    """Future-dated or not-yet-old-enough entries wait outside the range until their time comes."""
    live = _in_range(cond, agg, now_ms)
    if isinstance(cond, SequenceCond):
        if agg.count:  # settled: the entries are the chain found
            return Measure(1, found=tuple(int(e[0]) for e in agg.entries))
        chain = _chain(cond, live)
        return Measure(0 if chain is None else 1, found=chain)
    settled = agg
    if agg.blocks.items:
        bounds = cond.bounds
        lo = None if bounds.within_ms is None else now_ms - bounds.within_ms
        whole, cut = agg.blocks.split(lo, now_ms - bounds.before_ms)
        live = [*live, *cut]
        if whole:  # fsum takes any list of partials: concatenating them keeps the sum exact
            settled = Aggregate(agg.count + sum(b.summary.count for b in whole),
                                [*agg.total, *(p for b in whole for p in b.summary.total)], extra=list(agg.extra))
            if settled.extra:
                tests = [t for t in cond.tests if t.kind != "sum"]
                for block in whole:
                    for slot, test in enumerate(tests):
                        settled.extra[slot] = _combine(test, settled.extra[slot], block.summary.extra[slot])
    count = settled.count + len(live)
    if legacy_shape(cond):
        if cond.sum is None:
            return Measure(count)
        # fsum: the answer must not depend on the order events arrived in.
        return Measure(count, (math.fsum([*settled.total, *(float(e[1]) for e in live)]),))
    values: list[float | int | None] = []
    slot = 0
    for col, test in enumerate(cond.tests, start=1):
        column = [e[col] for e in live]
        if test.kind == "sum":
            values.append(math.fsum([*settled.total, *column]))
            continue
        figure = settled.extra[slot]
        slot += 1
        values.append(_value(test, figure, column))
    return Measure(count, tuple(values))


def _value(test: AggTest, figure: Any, column: Sequence[Any]) -> float | int | None:
    present = [v for v in column if v is not None]
    if test.kind == "distinct":
        return len(set(figure) | set(present))
    if test.kind == "avg":
        total, n = figure
        n += len(present)
        return math.fsum([*total, *present]) / n if n else None
    pool = present if figure is None else [figure, *present]
    if not pool:
        return None
    best: float = min(pool) if test.kind == "min" else max(pool)
    return best


def holds(cond: Stateful, agg: Aggregate, now_ms: int) -> bool:
    m = measure(cond, agg, now_ms)
    if isinstance(cond, SequenceCond):
        return m.count > 0
    if not compare(cond.count.op, m.count, cond.count.value):
        return False
    return all(v is not None and compare(t.op, v, t.value) for t, v in zip(cond.tests, m.values, strict=True))


def _settle_chain(cond: SequenceCond, agg: Aggregate, entries: Sequence[Entry]) -> None:
    """A chain among entries that stay in range for good settles the sequence: it holds from
    now on, and only the chain's own k entries are kept (as the evidence explain shows)."""
    chain = _chain(cond, entries)
    if chain is not None:
        masks: dict[int, int] = {}
        for ts, mask in entries:
            masks[ts] = masks.get(ts, 0) | mask
        agg.count, agg.entries = 1, [(ts, masks[ts]) for ts in chain]


def _chain(cond: SequenceCond, entries: Sequence[Entry]) -> tuple[int, ...] | None:
    """The earliest-starting e1 < e2 < ... < ek within max_span, or None.

    For a fixed e1, taking each next step's earliest event after the previous
    one minimises ek, so if that chain is too long no chain from e1 fits; and a
    later e1 can only push every later step later, so the first start with no
    chain at all ends the search. O(n·k·log n).
    """
    k = len(cond.steps)
    by_step: list[list[int]] = [[] for _ in range(k)]
    for entry in entries:
        ts, mask = int(entry[0]), int(entry[1])
        for i in range(k):
            if mask >> i & 1:
                by_step[i].append(ts)
    span = None if cond.max_span is None else cond.max_span.ms
    for start in by_step[0]:
        found = [start]
        at = start
        for times in by_step[1:]:
            i = bisect_right(times, at)
            if i == len(times):
                return None
            at = times[i]
            found.append(at)
        if span is None or at - start <= span:
            return tuple(found)
    return None


def next_window_change(cond: Stateful, agg: Aggregate, now_ms: int) -> int | None:
    """An entry is in range on [ts + B, ts + W): it enters at ts + B (B = 0 without `before`)
    and leaves at ts + W; the earliest such instant after now."""
    bounds = cond.bounds
    if not bounds.moving or not (agg.entries or agg.blocks.items):
        return None
    within, shift = bounds.within_ms, bounds.before_ms
    entries = agg.entries
    candidates = []
    hi = bisect_right(entries, now_ms - shift, key=_ts)
    if hi < len(entries):
        candidates.append(int(entries[hi][0]) + shift)
    if (entering := agg.blocks.first_after(now_ms - shift)) is not None:
        candidates.append(entering + shift)
    if within is not None:
        lo = bisect_right(entries, now_ms - within, key=_ts)
        if lo < len(entries):
            candidates.append(int(entries[lo][0]) + within)
        if (leaving := agg.blocks.first_after(now_ms - within)) is not None:
            candidates.append(leaving + within)
    return min(candidates, default=None)
