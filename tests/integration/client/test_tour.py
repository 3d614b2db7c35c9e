"""README's 60-second tour, command by command, on a real worker and API.

The same commands as the tour (curl with the admin key, `stream send`, jq-free
checks of what curl prints) against this test's own stack, so the text
proposed for the README is known to work: create a segment, send a profile
and an event, see the member, read the estimate, export the CSV.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import subprocess
import sys

import pytest

from stream.config import Settings
from tests.integration.client.conftest import Live
from tests.integration.conftest import ROOT, eventually, settings_env

pytestmark = pytest.mark.integration

CURL = shutil.which("curl") or "/usr/bin/curl"
SEGMENT = {"name": "Pune shoppers", "kind": "live", "rule": {"all": [
    {"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
    {"event": {"name": "Charged", "within_days": 30}}]}}


async def sh(settings: Settings, *args: str, stdin: str | None = None) -> str:
    done = await asyncio.to_thread(subprocess.run, list(args), env=settings_env(settings), cwd=ROOT, input=stdin,
                                   capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


async def test_the_tour(live: Live) -> None:
    auth = ["-H", f"Authorization: Bearer {live.admin_key}"]
    stream = [sys.executable, "-m", "stream.cli"]
    created = json.loads(await sh(live.settings, CURL, "-sf", "-X", "POST", f"{live.url}/segments", *auth,
                                  "-H", "content-type: application/json", "-d", json.dumps(SEGMENT)))
    sid = created["id"]
    assert sid.startswith("s-") and created["kind"] == "live"

    placed = await sh(live.settings, *stream, "send", "profiles",
                      '{"user_id": "u-42", "set": {"city": "Pune", "email": "ana@example.com"}}')
    assert placed.startswith(f"{live.settings.topic_profiles}[")
    await sh(live.settings, *stream, "send", "events",
             '{"user_id": "u-42", "name": "Charged", "props": {"amount": 120.5}}')

    async def member() -> bool:
        out = await sh(live.settings, CURL, "-s", f"{live.url}/users/u-42", *auth)
        return sid in json.loads(out).get("segments", [])

    await eventually(member, timeout=60, what="u-42 to enter the segment")
    size = json.loads(await sh(live.settings, CURL, "-sf", f"{live.url}/segments/{sid}/insights", *auth))["size"]
    assert size == {"estimate": 1.0, "lower_95": 1.0, "upper_95": 1.0}
    exported = await sh(live.settings, CURL, "-sf", f"{live.url}/segments/{sid}/export.csv?fields=user_id,email", *auth)
    assert list(csv.reader(io.StringIO(exported))) == [["user_id", "email"], ["u-42", "ana@example.com"]]

    # The DLQ, on purpose: a raw message the worker cannot parse is dead-lettered, not applied.
    await sh(live.settings, *stream, "send", "events", "--raw", "--key", "u-42", "{not json")

    async def dead_lettered() -> bool:
        text = await sh(live.settings, CURL, "-sf", f"http://127.0.0.1:{live.settings.worker_web_port}/metrics")
        return 'stream_dlq_messages_total{reason="not_json"} 1.0' in text

    await eventually(dead_lettered, timeout=30, what="the raw message to be dead-lettered as not_json")
    assert sid in json.loads(await sh(live.settings, CURL, "-sf", f"{live.url}/users/u-42", *auth))["segments"]
