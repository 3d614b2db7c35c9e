"""The raw RESP router and the Lua runner against a real redis-server.

Replies come back in command order across queued windows and error replies;
a script flush (NOSCRIPT) and a dropped connection are recovered by the
runner; the URL's database and credentials are used.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from stream.config import Settings
from stream.state.bulk import read_users, windows_with_fields
from stream.state.client import endpoint
from stream.state.keys import Keys
from stream.state.lua import LuaRunner, Script
from stream.state.resp import RespRouter

pytestmark = pytest.mark.integration

INCR = Script("incr", "return redis.call('INCRBY', KEYS[1], ARGV[1])", ("counter",), ("by",))


def router_for(url: str) -> RespRouter:
    return RespRouter(endpoint(Settings(redis_url=url)))


async def test_reads_every_user_in_order_with_missing_ones(private_redis: aioredis.Redis,
                                                           private_redis_url: str) -> None:
    keys = Keys("bulk:")
    for i in range(0, 5000, 2):
        await private_redis.hset(keys.user(f"u{i}"), mapping={"b": "0", "p": f'{{"n":"é{i}"}}'})
    router = router_for(private_redis_url)
    try:
        got = await read_users(router, keys, [f"u{i}" for i in range(5000)], ["b", "p", "s"])
    finally:
        await router.close()
    assert got == [["0", f'{{"n":"é{i}"}}', None] if i % 2 == 0 else [None, None, None] for i in range(5000)]


async def test_queued_windows_come_back_in_order(private_redis: aioredis.Redis, private_redis_url: str) -> None:
    """A read may carry the start of the next window's replies; nothing is lost between them."""
    keys = Keys("bulk2:")
    big = "x" * 3000
    for i in range(2000):
        await private_redis.hset(keys.user(f"u{i}"), "p", f"{i}{big}")

    async def windows():  # type: ignore[no-untyped-def]
        for start in range(0, 2000, 500):
            yield [f"u{i}" for i in range(start, start + 500)]

    router = router_for(private_redis_url)
    try:
        got = [row[0] async for _, rows in windows_with_fields(router, keys, windows(), ["p"]) for row in rows]
    finally:
        await router.close()
    assert got == [f"{i}{big}" for i in range(2000)]


async def test_an_error_reply_raises_and_the_url_db_is_selected(private_redis_url: str) -> None:
    url = private_redis_url.rsplit("/", 1)[0] + "/3"
    client = aioredis.Redis.from_url(url, decode_responses=True)
    keys = Keys("bulk3:")
    router = router_for(url)
    try:
        await client.set(keys.user("s"), "a string")
        await client.hset(keys.user("h"), "f", "in db 3")
        assert await read_users(router, keys, ["h"], ["f"]) == [["in db 3"]]
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await read_users(router, keys, ["s", "h"], ["f"])
        assert await read_users(router, keys, ["h"], ["f"]) == [["in db 3"]], "still in step after an error"
    finally:
        await router.close()
        await client.flushdb()
        await client.aclose()


async def test_runner_loads_scripts_after_a_flush_and_raises_script_errors(private_redis: aioredis.Redis,
                                                                           lua: LuaRunner) -> None:
    await private_redis.script_flush()
    calls = [(INCR, ["raw:{a}"], [2]), (INCR, ["raw:{b}"], [5]), (INCR, ["raw:{a}"], [1])]
    assert await lua.call_many(calls) == [2, 5, 3]
    await private_redis.script_flush()
    assert await lua.call_many([(INCR, ["raw:{a}"], [10])]) == [13]
    await private_redis.script_flush()
    assert await lua.call(INCR, ["raw:{a}"], [1]) == 14, "the redis-py path reloads too"
    await private_redis.set("raw:{s}", "not a number")
    with pytest.raises(ResponseError, match="not an integer"):
        await lua.call_many([(INCR, ["raw:{a}"], [1]), (INCR, ["raw:{s}"], [1])])
    assert await lua.call_many([(INCR, ["raw:{a}"], [0])]) == [15], "the first call of the failed batch applied"


async def test_runner_survives_a_dropped_connection(private_redis: aioredis.Redis, lua: LuaRunner) -> None:
    assert await lua.call_many([(INCR, ["raw2:{a}"], [1])]) == [1]
    killed = await private_redis.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    assert await lua.call_many([(INCR, ["raw2:{a}"], [1])]) == [2]


async def test_a_script_checks_its_named_inputs(lua: LuaRunner) -> None:
    with pytest.raises(ValueError, match=r"incr.lua takes keys \(counter\)"):
        await lua.call_many([(INCR, ["a", "b"], [1])])
    with pytest.raises(ValueError, match=r"takes args \(by\)"):
        await lua.call(INCR, ["a"], [])


async def test_concurrent_callers_each_get_their_own_replies(private_redis: aioredis.Redis,
                                                             private_redis_url: str) -> None:
    """The engine, the control tailer and job parts of one worker share a router: replies must
    never cross between them, even when one caller is cancelled in the middle of its read."""
    router = router_for(private_redis_url)
    big = b"y" * 200_000  # several socket reads per reply, so a cancellation lands mid-read

    async def caller(n: int) -> None:
        for i in range(30):
            token = f"{n}:{i}".encode()
            got = await router.execute([(None, [b"ECHO", token]), (None, [b"ECHO", big + token])])
            assert got == [token.decode(), (big + token).decode()], (n, i)

    try:
        for _ in range(5):
            victim = asyncio.create_task(router.execute([(None, [b"ECHO", big])] * 20))
            await asyncio.sleep(0.001)
            victim.cancel()
            await asyncio.gather(*(caller(n) for n in range(8)))
            with contextlib.suppress(asyncio.CancelledError):
                await victim
        assert (await router.execute([(None, [b"PING"])])) == ["PONG"]
    finally:
        await router.close()
