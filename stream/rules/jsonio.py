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
from collections.abc import Sequence
from typing import Any

import orjson

# Digits become "0", so 19 digits in a row are a run of 19 "0"s, found by a substring search.
# A translate and a search cost ~0.15 µs per 130-byte text where `re.search("[0-9]{19}")`
# cost ~1 µs: the regex tried a match at every digit of every phone number.
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0000000000")
_LONG_RUN = b"0" * 19


def _long_digits(raw: bytes) -> bool:
    return len(raw) >= 19 and _LONG_RUN in raw.translate(_DIGITS_TO_ZERO)


def loads(text: str | bytes) -> Any:
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _long_digits(raw):
        return json.loads(text)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(text)


def objects(texts: Sequence[str | None]) -> list[dict[str, Any]]:
    """Each text's JSON object, `{}` where a text is missing, empty or not an object.

    A window of an export's profiles is decoded as one JSON array, one orjson
    call for 2,000 texts instead of 2,000 calls (the per-call cost was a
    third of an export's decoding). Texts are joined with commas, so a digit
    run cannot span two of them; a window that is not exactly one value per
    text (a malformed text, or one holding several values) is decoded text by
    text instead, each as `loads` would (so a text no JSON reader takes raises)."""
    joined = ("[" + ",".join(t or "{}" for t in texts) + "]").encode("utf-8", "surrogatepass")
    if not _long_digits(joined):
        try:
            values = orjson.loads(joined)
        except orjson.JSONDecodeError:
            values = None
        if type(values) is list and len(values) == len(texts):
            return [v if type(v) is dict else {} for v in values]
    return [_object(t) for t in texts]


def _object(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = loads(text)  # a text no JSON reader takes raises, as it does for one user
    return value if isinstance(value, dict) else {}


def dumps(value: Any) -> str:
    """Compact (no spaces), like json.dumps with separators=(",", ":").

    Only finite numbers reach here (ingest refuses the others and sums skip
    them); orjson would write a NaN as null."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
