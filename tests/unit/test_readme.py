"""README's configuration table is the settings object: every variable, with its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stream.config import Settings

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(STREAM_[A-Z0-9_]+)` \| (?:`([^`]*)`|\(empty\)) \|", re.M)


def default_text(value: object) -> str:
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    documented = {m.group(1): m.group(2) or "" for m in ROW.finditer(README.read_text())}
    expected = {f"STREAM_{name.upper()}": default_text(f.default) for name, f in Settings.model_fields.items()}
    assert {k: documented.get(k) for k in expected} == expected
    assert not set(documented) - set(expected), "README documents variables the settings do not read"
