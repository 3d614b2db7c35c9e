"""`stream send`'s preparation: defaults filled, the worker's own checks applied, nothing sent on an error."""

from __future__ import annotations

import json

import pytest

from stream.cli import main
from stream.ingest import Limits
from stream.send import SendError, iso_now, prepare

pytestmark = pytest.mark.unit

NOW = 1_764_633_600_000  # 2025-12-02T00:00:00Z
LIMITS = Limits()


def test_an_event_gets_ts_and_event_id_and_is_keyed_by_user() -> None:
    [msg] = prepare("events", ['{"user_id": "u-1", "name": "Charged", "props": {"amount": 5}}'], NOW, LIMITS)
    body = json.loads(msg.value)
    assert msg.key == b"u-1"
    assert body["ts"] == "2025-12-02T00:00:00.000Z" and body["event_id"].startswith("e-")
    assert body["props"] == {"amount": 5}
    [again] = prepare("events", ['{"user_id": "u-1", "name": "Charged"}'], NOW, LIMITS)
    assert json.loads(again.value)["event_id"] != body["event_id"]


def test_given_fields_are_kept() -> None:
    text = '{"event_id": "e-9", "user_id": "u-2", "name": "Viewed", "ts": 1764633500000}'
    [msg] = prepare("events", [text], NOW, LIMITS)
    assert json.loads(msg.value) == json.loads(text)


def test_a_profile_gets_ts_but_no_event_id() -> None:
    [msg] = prepare("profiles", ['{"user_id": "u-3", "set": {"city": "Pune"}}', "  "], NOW, LIMITS)
    assert json.loads(msg.value) == {"user_id": "u-3", "set": {"city": "Pune"}, "ts": "2025-12-02T00:00:00.000Z"}


@pytest.mark.parametrize(("text", "reason"), [
    ('{"user_id": "u-1"}', "missing_field"),            # an event needs a name
    ('{"name": "Charged"}', "missing_field"),           # and a user
    ('{"user_id": "u-1", "name": "X", "ts": "yesterday"}', "bad_time"),
    ('{"user_id": "u-1", "name": "X", "ts": 1864633600000}', "future_time"),
    ("[1, 2]", "must be a JSON object"),
    ("{not json", "not JSON"),
])
def test_what_the_worker_would_dead_letter_is_refused(text: str, reason: str) -> None:
    with pytest.raises(SendError, match=reason):
        prepare("events", ['{"user_id": "u-0", "name": "Fine"}', text], NOW, LIMITS)


def test_raw_sends_the_text_unchecked_with_the_given_key() -> None:
    [msg] = prepare("events", ["{not json"], NOW, LIMITS, raw=True, key="k-1")
    assert (msg.key, msg.value) == (b"k-1", b"{not json")


def test_iso_now_keeps_milliseconds() -> None:
    assert iso_now(NOW + 7) == "2025-12-02T00:00:00.007Z"


def test_the_cli_refuses_a_bad_message_before_connecting(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # An unreachable broker: the refusal must come before any attempt to connect.
    monkeypatch.setenv("STREAM_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    from stream.config import get_settings

    get_settings.cache_clear()
    try:
        assert main(["send", "events", '{"user_id": "u-1"}']) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "message 1: missing_field: name is required" in err and "nothing was sent" in err


def test_options_may_come_between_the_kind_and_the_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr("stream.cli._send", lambda args: seen.append(args.messages) or 0)
    for argv in (["send", "events", "--raw", "--key", "k", "{not json"], ["send", "--raw", "events", "{not json"]):
        assert main(argv) == 0
    assert seen == [["{not json"], ["{not json"]]
    with pytest.raises(SystemExit):
        main(["topics", "stray"])
