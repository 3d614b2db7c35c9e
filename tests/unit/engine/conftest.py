"""The engine over the in-memory store: no Redis, no Kafka, a manual clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stream.config import Settings
from stream.rules import parse_rule
from stream.segments import SegmentIndex, make_segment
from stream.state.memory import MemoryEngineStore
from stream.testing import EngineHarness

NOW = 1_800_000_000_000
DAY = 86_400_000


@pytest.fixture
def settings() -> Settings:
    return Settings(partitions=4, key_prefix="unit:", user_cache_size=100)


@pytest.fixture
def store() -> MemoryEngineStore:
    return MemoryEngineStore(lg_k=6, cache_size=100)


@pytest.fixture
def harness(store: MemoryEngineStore, settings: Settings) -> EngineHarness:
    h = EngineHarness.create(store, settings)
    h.clock.now = NOW / 1000
    return h


Define = Callable[..., SegmentIndex]


@pytest.fixture
def define(store: MemoryEngineStore) -> Define:
    """Replaces the store's definitions (as the control plane would), bumping the version."""

    def make(*rules: dict[str, Any], kind: str = "past_behavior", created_at_ms: int = NOW - 30 * DAY,
             forgotten: dict[str, int] | None = None) -> SegmentIndex:
        segs = [make_segment(f"s{i}", f"seg {i}", kind, parse_rule(r), created_at_ms, created_at_ms)
                for i, r in enumerate(rules)]
        index = SegmentIndex.build(segs, store.index.version + 1, forgotten)
        store.set_definitions(index)
        return index

    return make
