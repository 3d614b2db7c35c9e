"""JSON for the hot paths: orjson, with the standard library as the fallback.

Per-user state is decoded and encoded on every touch and every recount, and
orjson does it several times faster. It refuses a few inputs the standard
library takes (integers beyond 64 bits, NaN literals), so a refusal falls back
to `json` rather than failing a user whose profile once held such a value.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def dumps(value: Any) -> str:
    """Compact (no spaces), like json.dumps with separators=(",", ":").

    Only finite numbers reach here (ingest refuses the others and sums skip
    them); orjson would write a NaN as null."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
