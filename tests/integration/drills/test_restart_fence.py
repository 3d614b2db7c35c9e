"""The raw router never lets a step begun on one Redis process go on against the next one.

The router reconnects and re-sends by itself. Before this fence, a batch in
flight when Redis was killed and restored from an older copy finished its
commits on the copy, and the replay that followed found the profile updates
it had skipped stale (`test_drill_redis_restored_from_an_older_copy` failed
that way in CI: a user's newer update applied, the older one with the phone
number lost).
"""

from __future__ import annotations

import pytest

from stream.config import Settings
from stream.state.client import endpoint
from stream.state.resp import RedisRestarted, RespRouter
from tests.integration.drills.conftest import RedisProc

pytestmark = pytest.mark.integration


async def run_ids(router: RespRouter) -> dict[tuple[str, int], str]:
    infos = await router.on_every_master([b"INFO", b"server"], fenced=False)
    return {node: next(line.split(":", 1)[1].strip() for line in str(info).splitlines()
                       if line.startswith("run_id:")) for node, info in infos.items()}


async def test_a_restarted_redis_refuses_the_step_until_its_process_is_accepted(drill_redis: RedisProc) -> None:
    fenced = RespRouter(endpoint(Settings(redis_url=drill_redis.url)))
    plain = RespRouter(endpoint(Settings(redis_url=drill_redis.url)))  # never accepts: the API's way
    try:
        before = await run_ids(fenced)
        fenced.accept(before)
        assert await fenced.execute([("k", [b"SET", b"k", b"1"])]) == ["OK"]
        assert await plain.execute([("k", [b"GET", b"k"])]) == ["1"]
        drill_redis.kill()
        drill_redis.start()
        for _ in range(2):  # refused again: nobody accepted the new process yet
            with pytest.raises(RedisRestarted, match="another process now"):
                await fenced.execute([("k", [b"SET", b"k", b"2"])])
            assert fenced.restart_seen
        assert await plain.execute([("k", [b"GET", b"k"])]) != ["2"]  # the refused write never ran
        after = await run_ids(fenced)
        assert after != before
        fenced.accept(after)
        assert not fenced.restart_seen
        assert await fenced.execute([("k", [b"SET", b"k", b"3"])]) == ["OK"]
        assert await plain.execute([("k", [b"GET", b"k"])]) == ["3"]
    finally:
        await fenced.close()
        await plain.close()
