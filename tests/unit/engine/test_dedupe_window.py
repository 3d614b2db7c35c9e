"""The dedupe window in the user hash (`d`): fixed-width tokens, the newest 64 kept, a commit's own all kept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.state.memory import MemoryEngineStore
from stream.state.userhash import DEDUPE, DEDUPE_WINDOW, TOKEN_LEN, dedupe_has, dedupe_token, dedupe_window
from stream.testing import EngineHarness
from tests.unit.engine.conftest import NOW, Define
from tests.unit.engine.test_engine import ev

pytestmark = pytest.mark.unit


def test_tokens_are_fixed_width_and_url_safe() -> None:
    tokens = {dedupe_token(f"e{i}") for i in range(2000)}
    assert len(tokens) == 2000
    assert all(len(t) == TOKEN_LEN and t.replace("-", "").replace("_", "").isalnum() for t in tokens)


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=40, unique=True), st.text(max_size=8))
def test_only_whole_tokens_match(ids: list[str], probe: str) -> None:
    window = "".join(dedupe_token(i) for i in ids)
    assert all(dedupe_has(window, dedupe_token(i)) for i in ids)
    assert dedupe_has(window, dedupe_token(probe)) == (probe in ids)
    whole = {window[k:k + TOKEN_LEN] for k in range(0, len(window), TOKEN_LEN)}
    for shift in range(1, TOKEN_LEN):  # text straddling two tokens is not a token of the window
        straddling = window[shift:shift + TOKEN_LEN]
        if len(straddling) == TOKEN_LEN:
            assert dedupe_has(window, straddling) == (straddling in whole)


def test_the_window_keeps_the_newest_and_all_of_a_commits_own() -> None:
    old = "".join(dedupe_token(f"old{i}") for i in range(DEDUPE_WINDOW))
    kept = dedupe_window(old, [dedupe_token("new")])
    assert len(kept) == DEDUPE_WINDOW * TOKEN_LEN
    assert dedupe_has(kept, dedupe_token("new")) and not dedupe_has(kept, dedupe_token("old0"))
    assert dedupe_has(kept, dedupe_token("old1"))
    big = [dedupe_token(f"b{i}") for i in range(DEDUPE_WINDOW + 10)]
    assert dedupe_window(old, big) == "".join(big)


async def test_a_retried_event_counts_once_within_the_window_and_a_redelivery_always(
        harness: EngineHarness, store: MemoryEngineStore, define: Define) -> None:
    define({"event": {"name": "Charged", "count": {"op": "gte", "value": 100}}})
    await harness.send_events(*(ev("a", f"e{i}") for i in range(DEDUPE_WINDOW)))
    await harness.send_events(ev("a", "e0"), ev("a", f"e{DEDUPE_WINDOW - 1}"))  # retried: in the window
    stored = store.users["a"]
    assert len(stored[DEDUPE]) == DEDUPE_WINDOW * TOKEN_LEN
    assert store.members["s0"] == set()
    await harness.send_events(*(ev("a", f"x{i}") for i in range(100 - DEDUPE_WINDOW - 1)))
    assert store.members["s0"] == set(), "99 distinct Charged so far"
    await harness.send_events(ev("a", "x-last"))
    assert store.members["s0"] == {"a"}


async def test_one_batch_larger_than_the_window_keeps_every_token(
        harness: EngineHarness, store: MemoryEngineStore, define: Define) -> None:
    define({"event": {"name": "Charged", "count": {"op": "gte", "value": 1000}}})
    n = DEDUPE_WINDOW * 3
    await harness.send_events(*(ev("a", f"e{i}", ts=NOW - 1000 - i) for i in range(n)))
    assert len(store.users["a"][DEDUPE]) == n * TOKEN_LEN
    await harness.send_events(ev("a", "one-more"))
    assert len(store.users["a"][DEDUPE]) == DEDUPE_WINDOW * TOKEN_LEN
