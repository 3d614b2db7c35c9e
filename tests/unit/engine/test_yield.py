"""Background job chunks wait while an interactive part (a recount) runs in the same process."""

from __future__ import annotations

import asyncio

import pytest

from stream.engine.jobs import Yield

pytestmark = pytest.mark.unit


async def test_background_chunks_pause_while_an_interactive_part_runs_and_resume_after() -> None:
    gate = Yield()
    steps: list[int] = []

    async def background() -> None:
        for i in range(1000):
            await gate.wait()
            steps.append(i)
            await asyncio.sleep(0)

    task = asyncio.create_task(background())
    await asyncio.sleep(0)
    with gate.interactive():
        with gate.interactive():  # two recounts at once: both must end
            held = len(steps)
            for _ in range(50):
                await asyncio.sleep(0)
            assert len(steps) == held, "no background chunk while a recount runs"
        for _ in range(50):
            await asyncio.sleep(0)
        assert len(steps) == held, "one recount still runs"
    await asyncio.wait_for(task, timeout=5)
    assert steps == list(range(1000))


async def test_a_failed_interactive_part_releases_the_gate() -> None:
    gate = Yield()
    with pytest.raises(RuntimeError), gate.interactive():
        raise RuntimeError("part failed")
    await asyncio.wait_for(gate.wait(), timeout=1)
