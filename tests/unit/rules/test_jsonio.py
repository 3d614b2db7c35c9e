"""The hot-path JSON helpers read and write what the standard library would."""

from __future__ import annotations

import json

import pytest

from stream.rules.jsonio import dumps, loads

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("value", [
    {"name": "Asha", "city": "Pune", "age": 31, "score": 2.5, "vip": True, "none": None},
    [[3, 0], [0, 0, 1795983205048, 0, 12, 1.25]],
    ["s-1", "s-2"],
    {"é": "ünïcode ✓"},
])
def test_round_trips_like_the_standard_library(value: object) -> None:
    assert loads(dumps(value)) == value == json.loads(json.dumps(value))
    assert " " not in dumps(value).replace("ünïcode ✓", "")


def test_integers_beyond_64_bits_fall_back_to_the_standard_library() -> None:
    big = {"id": 2**70}
    assert dumps(big) == '{"id":1180591620717411303424}'
    assert loads(dumps(big)) == big
