"""`promtool check metrics` accepts what the real worker and API export.

DESIGN.md promises it for every /metrics output; the unit tier checks the
declared families, this checks the live text after traffic has created the
labelled series (histogram buckets, per-route and per-outcome counters).
"""

from __future__ import annotations

import asyncio
import shutil

import httpx
import pytest

from tests.integration.ops.conftest import OpsStack, drive_traffic

pytestmark = pytest.mark.integration

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


async def promtool_check(text: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(PROMTOOL, "check", "metrics", stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate(text.encode())
    return proc.returncode or 0, out.decode(errors="replace")


async def test_promtool_accepts_worker_and_api_metrics(ops_stack: OpsStack) -> None:
    if not shutil.which(PROMTOOL):
        pytest.fail("promtool is not installed (make provision installs Debian's prometheus)")
    await drive_traffic(ops_stack)
    async with httpx.AsyncClient() as client:
        worker = (await client.get(ops_stack.worker_url + "/metrics")).text
        api = (await client.get(ops_stack.api_url + "/metrics")).text
    # the traffic really reached the labelled families being linted
    assert 'outcome="duplicate"' in worker
    assert 'outcome="invalid"' in worker
    assert "stream_end_to_end_latency_seconds_bucket{" in worker
    assert "stream_dlq_messages_total{" in worker
    assert 'route="/segments/{sid}/trend"' in api
    assert "stream_export_duration_seconds_bucket{" in api
    for name, text in (("worker", worker), ("api", api)):
        code, out = await promtool_check(text)
        assert code == 0, f"promtool check metrics failed on the {name}'s /metrics:\n{out}"
