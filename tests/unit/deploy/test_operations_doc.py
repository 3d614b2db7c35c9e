"""docs/OPERATIONS.md stays true to the code: every metric explained, every internal link resolving,
every setting and command it names existing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stream import metrics
from stream.config import Settings
from tests.unit.deploy.test_alerts import exported_series, slug

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
TEXT = (ROOT / "docs" / "OPERATIONS.md").read_text()
HEADINGS = {slug(line.lstrip("#")) for line in TEXT.splitlines() if line.startswith("#")}


def test_every_exported_metric_family_is_in_the_table() -> None:
    families = {line.split(" ")[2] for line in metrics.render()[0].decode().splitlines()
                if line.startswith("# TYPE stream_")}
    assert len(families) >= 20
    missing = sorted(f for f in families if f"`{f}`" not in TEXT)
    assert missing == []


def test_every_metric_named_is_exported() -> None:
    named = set(re.findall(r"`(stream_[a-z0-9_]+)", TEXT))
    assert named, "no metric named"
    assert sorted(named - exported_series()) == []


def test_internal_links_resolve() -> None:
    anchors = re.findall(r"\]\(#([^)]+)\)", TEXT)
    assert len(anchors) >= 8
    assert sorted(set(anchors) - HEADINGS) == []


def test_settings_named_exist() -> None:
    fields = {f"STREAM_{name.upper()}" for name in Settings.model_fields}
    named = {n for n in re.findall(r"\bSTREAM_[A-Z0-9_]+", TEXT) if not n.endswith("_")}  # not STREAM_TOPIC_*
    assert sorted(named - fields) == []


def test_commands_named_exist() -> None:
    from stream.cli import main

    for command in sorted(set(re.findall(r"`stream ([a-z]+)", TEXT))):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0, command
