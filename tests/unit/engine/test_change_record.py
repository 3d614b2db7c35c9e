"""A segment-changes record is the contract's JSON whichever encoder wrote it."""

from __future__ import annotations

import json

import pytest

from stream.engine.commit import Committer
from stream.membership import ENTER, EXIT, Transition

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("at_ms", "ts"), [(1_796_282_435_000, "2026-12-03T07:20:35Z"),
                                            (1_796_282_435_007, "2026-12-03T07:20:35.007000Z")])
def test_the_record_names_the_change_and_its_instant_in_utc(at_ms: int, ts: str) -> None:
    key, value = Committer.change_record("u1", Transition("s-1", ENTER, at_ms, 0))
    assert key == "u1"
    assert json.loads(value) == {"segment_id": "s-1", "user_id": "u1", "change": "entered", "ts": ts}
    assert b" " not in value, "compact"


def test_a_user_id_orjson_refuses_is_written_all_the_same() -> None:
    odd = "u\ud800"  # a lone surrogate: json.loads takes "\\ud800", orjson refuses to write it
    key, value = Committer.change_record(odd, Transition("s-1", EXIT, 1_796_282_435_000, 0))
    assert key == odd
    assert json.loads(value) == {"segment_id": "s-1", "user_id": odd, "change": "exited",
                                 "ts": "2026-12-03T07:20:35Z"}
