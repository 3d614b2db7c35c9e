"""The control log's records: what each kind of authored thing looks like in Kafka and in Redis.

One compacted topic (`STREAM_TOPIC_CONTROL`, one partition so it has one
order) holds everything people author. The Kafka key names the thing
(`segment:s-…`, `campaign:cmp-…`, `list:s-…:<chunk>`, …); the value is its
latest state as JSON, or a tombstone (null) once it is deleted. Compaction
keeps the latest record per key, so materialising must not depend on the
order of records of *different* keys: each record stands alone, and the
cross-thing checks (a campaign's segment exists, a used segment is not
deleted) are made by the writer under the control lock before it logs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stream.state.keys import Keys


class ControlKind(StrEnum):
    SEGMENT = "segment"
    CAMPAIGN = "campaign"
    JOURNEY = "journey"
    API_KEY = "apikey"
    FORGET = "forget"
    LIST = "list"
    BACKFILLED = "backfilled"


@dataclass(frozen=True)
class KindSpec:
    target: Callable[[Keys], str]  # the {ctl} hash the thing is materialised in
    usage_prefix: str  # "" when the thing uses no segments
    bumps_definitions: bool  # workers reload their definitions snapshot


KINDS: dict[ControlKind, KindSpec] = {
    ControlKind.SEGMENT: KindSpec(lambda k: k.segments, "s", True),
    ControlKind.CAMPAIGN: KindSpec(lambda k: k.campaigns, "c", False),
    ControlKind.JOURNEY: KindSpec(lambda k: k.journeys, "j", False),
    ControlKind.API_KEY: KindSpec(lambda k: k.api_keys, "", False),
    ControlKind.FORGET: KindSpec(lambda k: k.forgotten, "", True),
    ControlKind.LIST: KindSpec(lambda k: k.list_chunks, "", False),
    ControlKind.BACKFILLED: KindSpec(lambda k: k.backfilled, "", False),
}


@dataclass(frozen=True, slots=True)
class ControlRecord:
    key: str
    value: dict[str, Any] | None  # None: a tombstone
    offset: int
    timestamp_ms: int  # the broker's append time (the topic uses LogAppendTime)

    @property
    def kind(self) -> ControlKind:
        return ControlKind(self.key.split(":", 1)[0])

    @property
    def ident(self) -> str:
        """The thing's id within its kind (a list chunk: `<segment id>:<chunk>`)."""
        return self.key.split(":", 1)[1]


def record_key(kind: ControlKind, ident: str) -> str:
    return f"{kind}:{ident}"


def parse_key(key: str) -> tuple[ControlKind, str] | None:
    head, sep, ident = key.partition(":")
    try:
        return (ControlKind(head), ident) if sep and ident else None
    except ValueError:
        return None
