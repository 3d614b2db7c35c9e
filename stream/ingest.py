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

from stream.rules.jsonio import loads

Scalar = str | int | float | bool

# Closed set: these become the `reason` label of stream_dlq_messages_total.
REASONS = ("not_json", "not_object", "missing_field", "bad_type", "bad_time", "future_time",
           "too_large", "too_long", "too_many")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one input message may carry (README "Configuration"). A 100,000-character user_id
    was once accepted and became two 100 KB Redis keys; bounded input keeps keys and hashes
    small and the dead-letter queue is where the rest goes, with the reason."""

    max_future_ms: int = 300_000
    max_id_length: int = 256
    max_props: int = 100
    max_value_length: int = 1024
    max_message_bytes: int = 64 * 1024

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(settings.max_future_seconds * 1000, settings.max_id_length, settings.max_props,
                   settings.max_value_length, settings.max_message_bytes)


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


def _load_object(raw: bytes | None, limits: Limits) -> dict[str, Any]:
    if raw is None:
        raise Invalid("not_json", "empty message")
    if len(raw) > limits.max_message_bytes:
        raise Invalid("too_large", f"message is {len(raw)} bytes; at most {limits.max_message_bytes}")
    try:
        value = loads(raw)  # orjson (~4x the standard library: 20% of a backfill's scan), same answers
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Invalid("not_json", f"value is not JSON ({exc.__class__.__name__})") from exc
    if not isinstance(value, dict):
        raise Invalid("not_object", "value must be a JSON object")
    return value


def _required_str(obj: dict[str, Any], name: str, max_length: int) -> str:
    if name not in obj or obj[name] is None:
        raise Invalid("missing_field", f"{name} is required")
    value = obj[name]
    if not isinstance(value, str) or not value:
        raise Invalid("bad_type", f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise Invalid("too_long", f"{name} is {len(value)} characters; at most {max_length}")
    return value


def _timestamp(obj: dict[str, Any], now_ms: int, max_future_ms: int) -> int:
    if "ts" not in obj or obj["ts"] is None:
        raise Invalid("missing_field", "ts is required")
    ts_ms = parse_time(obj["ts"])
    if ts_ms > now_ms + max_future_ms:
        raise Invalid("future_time", f"ts is more than {max_future_ms // 1000} s in the future")
    return ts_ms


_SCALAR_TYPES = frozenset((str, int, float, bool))


def _scalars(obj: object, what: str, limits: Limits) -> dict[str, Scalar]:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise Invalid("bad_type", f"{what} must be an object")
    if len(obj) > limits.max_props:
        raise Invalid("too_many", f"{what} has {len(obj)} entries; at most {limits.max_props}")
    longest = limits.max_value_length
    for key, value in obj.items():  # by exact type: JSON yields no subclasses, and it is per event
        if len(key) > longest:
            raise Invalid("too_long", f"{what} has a name of {len(key)} characters; at most {longest}")
        kind = type(value)
        if kind is str:
            if len(value) > longest:
                raise Invalid("too_long", f"{what}.{key[:100]} is {len(value)} characters; at most {longest}")
        elif (kind is float and not math.isfinite(value)) or kind not in _SCALAR_TYPES:
            raise Invalid("bad_type", f"{what}.{key[:100]} must be a string, number or boolean")
    return obj


def parse_event(raw: bytes | None, now_ms: int, limits: Limits) -> Event:
    obj = _load_object(raw, limits)
    return Event(
        event_id=_required_str(obj, "event_id", limits.max_id_length),
        user_id=_required_str(obj, "user_id", limits.max_id_length),
        name=_required_str(obj, "name", limits.max_value_length),
        ts_ms=_timestamp(obj, now_ms, limits.max_future_ms),
        props=_scalars(obj.get("props"), "props", limits),
    )


def parse_profile(raw: bytes | None, now_ms: int, limits: Limits) -> ProfileUpdate:
    obj = _load_object(raw, limits)
    user_id = _required_str(obj, "user_id", limits.max_id_length)
    ts_ms = _timestamp(obj, now_ms, limits.max_future_ms)
    unset = obj.get("unset") or []
    if not isinstance(unset, list) or not all(isinstance(p, str) for p in unset):
        raise Invalid("bad_type", "unset must be a list of property names")
    if len(unset) > limits.max_props:
        raise Invalid("too_many", f"unset has {len(unset)} entries; at most {limits.max_props}")
    subs = obj.get("subscriptions") or {}
    if not isinstance(subs, dict) or not all(isinstance(v, bool) for v in subs.values()):
        raise Invalid("bad_type", "subscriptions must map channel names to booleans")
    if len(subs) > limits.max_props or any(len(k) > limits.max_value_length for k in subs):
        raise Invalid("too_many", f"subscriptions has more than {limits.max_props} entries or an overlong name")
    blacklisted = obj.get("blacklisted")
    if blacklisted is not None and not isinstance(blacklisted, bool):
        raise Invalid("bad_type", "blacklisted must be a boolean")
    return ProfileUpdate(
        user_id=user_id,
        ts_ms=ts_ms,
        set=_scalars(obj.get("set"), "set", limits),
        unset=tuple(unset),
        subscriptions=dict(subs),
        blacklisted=blacklisted,
    )
