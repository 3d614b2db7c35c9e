"""JSON for the hot paths: orjson, with the standard library as the fallback.

Per-user state is decoded and encoded on every touch and every recount, and
input messages on every event; orjson does it several times faster. It
refuses a few inputs the standard library takes (NaN literals, UTF-16, lone
surrogates), so a refusal falls back to `json` rather than failing a message
or a user whose profile once held such a value; and it reads an integer
outside 64 bits as a float (2**64 as 1.8446744073709552e+19), so a text with
19 or more digits in a row goes to `json` at once, which keeps it exact.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_DIGITS = re.compile(r"[0-9]{19}")
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")


def loads(text: str | bytes) -> Any:
    long = (_LONG_DIGITS_BYTES.search(text) if isinstance(text, bytes) else _LONG_DIGITS.search(text))
    if long is not None:
        return json.loads(text)
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
