"""Turns raw Kafka values into validated inputs, or a reason to dead-letter them.

Pure: no I/O. Every rejection carries a short machine-friendly reason (used as
a metric label, so the set of reasons is closed) and the agents forward the
original bytes untouched to the DLQ.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Scalar = str | int | float | bool

# Closed set: these become the `reason` label of stream_dlq_messages_total.
REASONS = ("not_json", "not_object", "missing_field", "bad_type", "bad_time", "future_time")


class Invalid(ValueError):
    """A message that cannot be applied; `reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    user_id: str
    name: str
    ts_ms: int
    props: dict[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProfileUpdate:
    user_id: str
    ts_ms: int
    set: dict[str, Scalar] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    subscriptions: dict[str, bool] = field(default_factory=dict)
    blacklisted: bool | None = None


def parse_time(value: object) -> int:
    """ISO-8601 with an explicit zone, or epoch milliseconds, to epoch ms.

    A zone-less ISO string is rejected rather than guessed: guessing the zone
    would silently shift windows by hours.
    """
    if isinstance(value, bool):
        raise Invalid("bad_time", "ts must be ISO-8601 with a zone or epoch milliseconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise Invalid("bad_time", "ts epoch milliseconds must be a non-negative number")
        return int(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise Invalid("bad_time", f"ts {value!r} is not ISO-8601") from exc
        if parsed.tzinfo is None:
            raise Invalid("bad_time", f"ts {value!r} has no time zone")
        return int(parsed.timestamp() * 1000)
    raise Invalid("bad_time", "ts must be ISO-8601 with a zone or epoch milliseconds")


def _load_object(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise Invalid("not_json", "empty message")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Invalid("not_json", f"value is not JSON ({exc.__class__.__name__})") from exc
    if not isinstance(value, dict):
        raise Invalid("not_object", "value must be a JSON object")
    return value


def _required_str(obj: dict[str, Any], name: str) -> str:
    if name not in obj or obj[name] is None:
        raise Invalid("missing_field", f"{name} is required")
    value = obj[name]
    if not isinstance(value, str) or not value:
        raise Invalid("bad_type", f"{name} must be a non-empty string")
    return value


def _timestamp(obj: dict[str, Any], now_ms: int, max_future_ms: int) -> int:
    if "ts" not in obj or obj["ts"] is None:
        raise Invalid("missing_field", "ts is required")
    ts_ms = parse_time(obj["ts"])
    if ts_ms > now_ms + max_future_ms:
        raise Invalid("future_time", f"ts is more than {max_future_ms // 1000} s in the future")
    return ts_ms


def _scalars(obj: object, what: str) -> dict[str, Scalar]:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise Invalid("bad_type", f"{what} must be an object")
    for key, value in obj.items():
        if not isinstance(value, str | int | float | bool) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise Invalid("bad_type", f"{what}.{key} must be a string, number or boolean")
    return dict(obj)


def parse_event(raw: bytes | None, now_ms: int, max_future_ms: int) -> Event:
    obj = _load_object(raw)
    return Event(
        event_id=_required_str(obj, "event_id"),
        user_id=_required_str(obj, "user_id"),
        name=_required_str(obj, "name"),
        ts_ms=_timestamp(obj, now_ms, max_future_ms),
        props=_scalars(obj.get("props"), "props"),
    )


def parse_profile(raw: bytes | None, now_ms: int, max_future_ms: int) -> ProfileUpdate:
    obj = _load_object(raw)
    user_id = _required_str(obj, "user_id")
    ts_ms = _timestamp(obj, now_ms, max_future_ms)
    unset = obj.get("unset") or []
    if not isinstance(unset, list) or not all(isinstance(p, str) for p in unset):
        raise Invalid("bad_type", "unset must be a list of property names")
    subs = obj.get("subscriptions") or {}
    if not isinstance(subs, dict) or not all(isinstance(v, bool) for v in subs.values()):
        raise Invalid("bad_type", "subscriptions must map channel names to booleans")
    blacklisted = obj.get("blacklisted")
    if blacklisted is not None and not isinstance(blacklisted, bool):
        raise Invalid("bad_type", "blacklisted must be a boolean")
    return ProfileUpdate(
        user_id=user_id,
        ts_ms=ts_ms,
        set=_scalars(obj.get("set"), "set"),
        unset=tuple(unset),
        subscriptions=dict(subs),
        blacklisted=blacklisted,
    )
