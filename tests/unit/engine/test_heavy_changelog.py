"""A heavy user's sealed blocks reach the changelog as records of their own, and the latest
record per key rebuilds exactly the hash Redis holds, as `stream rebuild` does."""

from __future__ import annotations

import json

import pytest

from stream.state.memory import MemoryEngineStore
from stream.state.userhash import BLOCK_PREFIX, TRANSIENT, from_changelog, parse_block_key
from stream.testing import EngineHarness
from tests.unit.engine.conftest import NOW, Define

pytestmark = pytest.mark.unit
MIN = 60_000
SUM = {"event": {"name": "Charged", "sum": {"prop": "amount", "op": "gte", "value": 10**9}, "within_days": 30}}


def rebuilt(harness: EngineHarness) -> dict[str, dict[str, str]]:
    latest: dict[bytes, bytes | None] = {}
    for _, key, value in harness.outputs.changelog:
        latest[key] = value
    users = {k.decode(): from_changelog(v) for k, v in latest.items() if parse_block_key(k) is None and v is not None}
    for key, value in latest.items():
        if (block := parse_block_key(key)) is not None and value is not None and block[0] in users:
            users[block[0]][block[1]] = value.decode()
    return users


async def test_blocks_are_changelog_records_of_their_own(
        harness: EngineHarness, store: MemoryEngineStore, define: Define) -> None:
    define(SUM)
    for batch in range(12):  # 1,200 events in the window: two blocks sealed, then one expires
        await harness.send_events(*[{"event_id": f"e{batch}-{i}", "user_id": "h", "name": "Charged",
                                     "ts": NOW - 29 * 24 * 60 * MIN + (batch * 100 + i) * MIN,
                                     "props": {"amount": 1}} for i in range(100)])
    blocks = sorted(n for n in store.users["h"] if n.startswith(BLOCK_PREFIX))
    assert len(blocks) == 2
    user_records = [json.loads(v) for _, k, v in harness.outputs.changelog if k == b"h" and v]
    assert all(not n.startswith(BLOCK_PREFIX) for r in user_records for n in r)
    assert max(len(v) for _, k, v in harness.outputs.changelog if k == b"h" and v) < 20_000
    want = {k: v for k, v in store.users["h"].items() if k not in TRANSIENT}
    assert rebuilt(harness)["h"] == want

    harness.clock.now = (NOW + 2 * 24 * 60 * MIN) / 1000  # the oldest block leaves the window
    await harness.send_events({"event_id": "late", "user_id": "h", "name": "Charged", "ts": NOW, "props": {}})
    assert len([n for n in store.users["h"] if n.startswith(BLOCK_PREFIX)]) < 2
    assert any(v is None and parse_block_key(k) for _, k, v in harness.outputs.changelog)  # a block tombstone
    assert rebuilt(harness)["h"] == {k: v for k, v in store.users["h"].items() if k not in TRANSIENT}
