"""A process's view of the segment definitions (and forgotten users), refreshed cheaply.

Definitions are materialised in the store by the control plane; this view
checks their version at most every `max_staleness` seconds and reloads only
when it moved. The bound matters for correctness, not only freshness:
segments hand events over from backfill to live at creation +
HANDOVER_GRACE_MS, so a worker must see a new segment well within that grace.
"""

from __future__ import annotations

import time

from stream.segments import EMPTY_INDEX, SegmentIndex
from stream.state.store import EngineStore


class Definitions:
    def __init__(self, store: EngineStore, max_staleness: float = 0.1) -> None:
        self.store = store
        self.max_staleness = max_staleness
        self.index: SegmentIndex = EMPTY_INDEX
        self._checked_at = float("-inf")

    async def current(self) -> SegmentIndex:
        now = time.monotonic()
        if now - self._checked_at >= self.max_staleness:
            version = await self.store.definitions_version()
            if version != self.index.version:
                self.index = await self.store.load_definitions()
            self._checked_at = now
        return self.index

    async def reload(self) -> SegmentIndex:
        self.index = await self.store.load_definitions()
        self._checked_at = time.monotonic()
        return self.index
