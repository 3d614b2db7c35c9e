"""The hot-path JSON helpers read and write what the standard library would."""

from __future__ import annotations

import json

import pytest

from stream.rules.jsonio import dumps, loads, objects

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


TEXTS = ['{"a": 1}', None, "", "[1, 2]", '"text"', '{"b": 123456789012345678901}', '{"c": "\udcff"}',
         '{"d": NaN}', '{"e": "é ✓", "f": [1, {"g": null}]}', "{}", '{"h": -9223372036854775809}']


def _object_of(text: str | None) -> dict[str, object]:
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {}


@pytest.mark.parametrize("text", [t for t in TEXTS if t])
def test_text_input_reads_as_the_standard_library(text: str) -> None:
    assert repr(loads(text)) == repr(json.loads(text))


@pytest.mark.parametrize("window", [TEXTS, TEXTS[:1], [], ['{"x": 1}'] * 3, ['{"a": 1}', "1, 2"][:1]])
def test_a_window_decoded_at_once_is_each_text_decoded_alone(window: list[str | None]) -> None:
    assert repr(objects(window)) == repr([_object_of(t) for t in window])


@pytest.mark.parametrize("window", [['{"a": 1}', "1, 2"], ["1, 2", "3"], ['{"a": 1}]', '[{"b": 2}']])
def test_a_text_holding_several_values_is_refused_as_it_would_be_alone(window: list[str]) -> None:
    """Joined, `1, 2` would read as two values and shift every later text onto the wrong user."""
    with pytest.raises(json.JSONDecodeError):
        objects(window)
