"""Raw Kafka values to validated inputs, with a closed set of reasons for the rest."""

from __future__ import annotations

import json

import pytest

from stream.ingest import REASONS, Invalid, Limits, parse_event, parse_profile

pytestmark = pytest.mark.unit
NOW = 1_800_000_000_000
LIMITS = Limits(max_future_ms=300_000, max_id_length=16, max_props=3, max_value_length=8, max_message_bytes=400)


def reason(raw: bytes, profile: bool = False) -> str:
    with pytest.raises(Invalid) as err:
        (parse_profile if profile else parse_event)(raw, NOW, LIMITS)
    assert err.value.reason in REASONS
    return err.value.reason


def body(**fields: object) -> bytes:
    base: dict[str, object] = {"event_id": "e1", "user_id": "u1", "name": "Buy", "ts": NOW}
    base.update(fields)
    return json.dumps(base).encode()


def test_a_good_event_and_both_time_forms() -> None:
    ev = parse_event(body(ts="2027-01-15T08:00:00Z", props={"a": 1.5, "b": "x"}), NOW, LIMITS)
    assert (ev.user_id, ev.ts_ms, ev.props) == ("u1", 1_800_000_000_000, {"a": 1.5, "b": "x"})
    assert parse_event(body(ts=NOW - 5), NOW, LIMITS).ts_ms == NOW - 5


@pytest.mark.parametrize(("raw", "expected"), [
    (b"not json", "not_json"),
    (b"[1]", "not_object"),
    (body(event_id=None), "missing_field"),
    (body(user_id=5), "bad_type"),
    (body(ts="yesterday"), "bad_time"),
    (body(ts="2027-01-15T08:00:00"), "bad_time"),
    (body(ts=NOW + 300_001), "future_time"),
    (body(user_id="u" * 17), "too_long"),
    (body(props={"k": "v" * 9}), "too_long"),
    (body(props={"a": 1, "b": 2, "c": 3, "d": 4}), "too_many"),
    (body(props={"pad": "x", "more": "y" * 6}) + b" " * 400, "too_large"),
    (body(props={"a": [1]}), "bad_type"),
])
def test_each_rejection_names_its_reason(raw: bytes, expected: str) -> None:
    assert reason(raw) == expected


def test_profile_updates_are_checked_the_same_way() -> None:
    ok = parse_profile(json.dumps({"user_id": "u", "ts": NOW, "set": {"city": "Pune"}, "unset": ["age"],
                                   "subscriptions": {"sms": False}, "blacklisted": True}).encode(), NOW, LIMITS)
    assert (ok.set, ok.unset, ok.subscriptions, ok.blacklisted) == ({"city": "Pune"}, ("age",), {"sms": False}, True)
    assert reason(json.dumps({"user_id": "u", "ts": NOW, "unset": "age"}).encode(), profile=True) == "bad_type"
    assert reason(json.dumps({"user_id": "u", "ts": NOW, "blacklisted": "no"}).encode(), profile=True) == "bad_type"
    assert reason(json.dumps({"user_id": "u", "ts": NOW, "unset": list("abcd")}).encode(), profile=True) == "too_many"


@pytest.mark.parametrize("raw", [
    b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1e400}', b'{"a": 123456789012345678901234567890}',
    '{"a": "x"}'.encode("utf-16"), '{"a": "x"}'.encode("utf-32-le"), b'\xef\xbb\xbf{"a": 1}', b'{"a": "\\ud800"}',
    b'{"a": 1, "a": 2}', b'{"a": 1} x', b'{"a": 1}\n', b'\xff\xfe', b'{"a": "\xff"}', b'{"a": -0}', b'{"a": 0.1e1}',
    b'{"a": 1.7976931348623157e308}', b'{"a": 5e-324}', b"{'a': 1}", b"", b"  ", b'"text"', b"[1, 2,]",
    b"18446744073709551615", b"18446744073709551616", b"-9223372036854775809", b'{"ts": 1800000000000}',
    b"0.12345678901234567890123", b'{"id": "12345678901234567890"}',
])
def test_the_fast_json_reader_answers_as_the_standard_library(raw: bytes) -> None:
    """orjson decodes inputs, and refers what it refuses to the standard library: the same
    values, and the same refusals (so the same DLQ reasons) as before it."""
    from stream.rules.jsonio import loads

    def outcome(load: object) -> object:
        try:
            return ("value", repr(load(raw)))  # type: ignore[operator]
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return ("refused", exc.__class__.__name__)

    assert outcome(loads) == outcome(json.loads)
