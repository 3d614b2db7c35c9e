"""The raw RESP bulk reader against a real redis-server: replies in order, across windows and errors."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from stream.state.bulk import BulkReader
from stream.state.raw_scripts import RawScript

pytestmark = pytest.mark.integration


async def test_hmget_reads_every_key_in_order_with_missing_ones(private_redis: aioredis.Redis) -> None:
    for i in range(0, 5000, 2):
        await private_redis.hset(f"bulk:{{u{i}}}", mapping={"b": "0", "p": f'{{"n":"é{i}"}}'})
    keys = [f"bulk:{{u{i}}}" for i in range(5000)]
    async with BulkReader(private_redis) as bulk:
        got = await bulk.hmget(keys, ["b", "p", "s"])
    assert got == [["0", f'{{"n":"é{i}"}}', None] if i % 2 == 0 else [None, None, None] for i in range(5000)]


async def test_queued_windows_come_back_in_order(private_redis: aioredis.Redis) -> None:
    """A read may carry the start of the next window's replies; nothing is lost between them."""
    big = "x" * 3000
    for i in range(2000):
        await private_redis.hset(f"bulk2:{{u{i}}}", "p", f"{i}{big}")
    windows = [[f"bulk2:{{u{i}}}" for i in range(start, start + 500)] for start in range(0, 2000, 500)]
    async with BulkReader(private_redis) as bulk:
        sent = [bulk.send_hmget(w, ["p"]) for w in windows]
        replies = [await bulk.receive(n) for n in sent]
    assert [row[0] for window in replies for row in window] == [f"{i}{big}" for i in range(2000)]


async def test_an_error_reply_raises_and_the_url_db_is_selected(private_redis_url: str) -> None:
    client = aioredis.Redis.from_url(private_redis_url.rsplit("/", 1)[0] + "/3", decode_responses=True)
    try:
        await client.set("bulk3:{s}", "a string")
        await client.hset("bulk3:{h}", "f", "in db 3")
        async with BulkReader(client) as bulk:
            assert await bulk.hmget(["bulk3:{h}"], ["f"]) == [["in db 3"]]
            with pytest.raises(ResponseError, match="WRONGTYPE"):
                await bulk.hmget(["bulk3:{s}", "bulk3:{h}"], ["f"])
            assert await bulk.hmget(["bulk3:{h}"], ["f"]) == [["in db 3"]], "still in step after an error"
    finally:
        await client.flushdb()
        await client.aclose()


def test_tls_and_unix_sockets_fall_back_to_redis_py() -> None:
    assert not BulkReader(aioredis.Redis.from_url("rediss://127.0.0.1:6390/0")).supported
    assert not BulkReader(aioredis.Redis.from_url("unix:///tmp/redis.sock")).supported
    assert BulkReader(aioredis.Redis.from_url("redis://127.0.0.1:6390/0")).supported


async def test_raw_script_loads_itself_after_a_script_flush_and_raises_script_errors(
        private_redis: aioredis.Redis) -> None:
    script = RawScript(private_redis, "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    try:
        await private_redis.script_flush()
        assert await script.run_many([(["raw:{a}"], [2]), (["raw:{b}"], [5]), (["raw:{a}"], [1])]) == [2, 5, 3]
        await private_redis.script_flush()
        assert await script.run_many([(["raw:{a}"], [10])]) == [13]
        await private_redis.set("raw:{s}", "not a number")
        with pytest.raises(ResponseError, match="not an integer"):
            await script.run_many([(["raw:{a}"], [1]), (["raw:{s}"], [1])])
        # The failed batch dropped the connection; the next one reconnects and the first call had applied.
        assert await script.run_many([(["raw:{a}"], [0])]) == [14]
    finally:
        await script.close()


async def test_raw_script_survives_a_dropped_connection(private_redis: aioredis.Redis) -> None:
    script = RawScript(private_redis, "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    try:
        assert await script.run_many([(["raw2:{a}"], [1])]) == [1]
        killed = await private_redis.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        assert await script.run_many([(["raw2:{a}"], [1])]) == [2]
    finally:
        await script.close()
