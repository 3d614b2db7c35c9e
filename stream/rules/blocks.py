"""Sealed blocks of a windowed condition's pending entries, so a heavy user's touch costs O(block).

A user with 100,000 events inside a 30-day sum window used to carry them all
in one field: every touch decoded and re-encoded 800 KB and summed every entry
(128 ms against 1.1 ms for a light user). Now the open tail keeps at most
`BLOCK_ENTRIES + TAIL_ENTRIES` entries; older ones are sealed, `BLOCK_ENTRIES` at a time,
into blocks stored in hash fields of their own. A block's directory row (in
the aggregate's own field) holds its id, first and last timestamps and a
*summary*: the block's entries settled as if they were all in range (count,
exact sum partials, min/max/avg/distinct figures). So a touch:

- counts a block wholly inside the range by its summary, skips one wholly
  outside it, and decodes only a block the range's edge cuts (usually the
  oldest one still in range, and for `before`, the one crossing now - B);
- writes only the blocks it created or changed, and deletes whole blocks as
  they leave the window (never partial ones: their expired entries are out of
  the range and ignored until the whole block goes).

Blocks may overlap in time (a late event goes into the open tail, whatever its
timestamp): each entry is in exactly one place, and every range test is made
per place. Sequences and `within`-only counts without tests are never sealed:
a sequence's entries are searched as a chain, and a count keeps only v+1
entries anyway (`prune`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Entry = tuple[Any, ...]
BLOCK_ENTRIES = 512
"""Entries per sealed block. 512 keeps a block's text near 4 KB and a heavy user's directory
near 200 rows at 100,000 events (about 1 ms to decode). The open tail is sealed when it holds
`BLOCK_ENTRIES + TAIL_ENTRIES`, so it keeps 64 to 575: re-encoded on every touch, it costs
about 0.6 us per entry."""
TAIL_ENTRIES = 64


@dataclass(slots=True)
class Summary:
    """A block's entries settled as if all were in range: what `Aggregate` settles, without its
    pending parts, since a heavy user's touch builds about 200 of them from the directory."""

    count: int
    total: list[float]
    extra: list[Any]


class MissingBlock(LookupError):
    """A block the directory names was not read with the aggregate (a reader that fetched
    only the aggregate's own field must fetch `block_fields` too)."""


@dataclass(slots=True)
class Block:
    id: int
    first: int
    last: int
    summary: Summary
    # None until a range edge cuts the block; read-only once decoded (storage shares it between touches)
    entries: list[Entry] | None = None
    row: list[Any] | None = None  # its directory row as read, written back as is while not dirty
    dirty: bool = False  # created or changed since it was read: to be written


@dataclass(slots=True)
class Blocks:
    """An aggregate's sealed blocks, the ids dropped since it was read, and how to decode one."""

    items: list[Block] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    next_id: int = 0
    decode: Callable[[str], list[Entry]] | None = None
    fetch: Callable[[int], str | None] | None = None  # a block's stored text by id

    def entries(self, block: Block) -> list[Entry]:
        if block.entries is None:
            raw = None if self.fetch is None else self.fetch(block.id)
            if raw is None or self.decode is None:
                raise MissingBlock(f"block {block.id} was not read")
            block.entries = self.decode(raw)
        return block.entries

    def add(self, entries: list[Entry], summary: Summary) -> None:
        self.items.append(Block(self.next_id, int(entries[0][0]), int(entries[-1][0]), summary, entries, dirty=True))
        self.next_id += 1

    def drop(self, keep: Callable[[Block], bool]) -> list[Block]:
        """Removes the blocks `keep` refuses; returns them."""
        gone = [b for b in self.items if not keep(b)]
        if gone:
            self.items = [b for b in self.items if keep(b)]
            self.dropped += [b.id for b in gone]
        return gone

    def split(self, lo: int | None, hi: int) -> tuple[list[Block], list[Entry]]:
        """For the range lo < ts <= hi (lo None: unbounded below): the blocks wholly inside it,
        and the in-range entries of the blocks its edges cut."""
        whole: list[Block] = []
        cut: list[Entry] = []
        for b in self.items:
            if (lo is not None and b.last <= lo) or b.first > hi:
                continue
            if (lo is None or b.first > lo) and b.last <= hi:
                whole.append(b)
                continue
            entries = self.entries(b)
            start = 0 if lo is None else bisect_right(entries, lo, key=_ts)
            cut.extend(entries[start:bisect_right(entries, hi, key=_ts)])
        return whole, cut

    def first_after(self, bound: int) -> int | None:
        """The smallest timestamp above `bound` in any block."""
        best: int | None = None
        for b in self.items:
            if b.last <= bound or (best is not None and b.first >= best):
                continue
            if b.first > bound:
                at = b.first
            else:
                entries = self.entries(b)
                at = int(entries[bisect_right(entries, bound, key=_ts)][0])
            if best is None or at < best:
                best = at
        return best


def _ts(entry: Entry) -> int:
    ts: int = entry[0]
    return ts
