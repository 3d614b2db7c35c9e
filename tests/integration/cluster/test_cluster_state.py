"""The state layer's cluster paths against the real cluster: routing, redirects, transactions, WAIT, SCAN.

Fast checks of what the scenario and the failover drill rely on: replies in
command order across the masters, a stale slot map fixed by MOVED, the slot
map re-read while a window is still queued on a connection (it used to take
that window's reply), transactions on the slot's master, WAIT on every
master, a scan that sees every master's keys, a run id per master, and a
member walk on its segment's slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess

import pytest
from redis.crc import key_slot

from stream.config import Settings
from stream.state.bulk import read_users
from stream.state.client import RedisClient, atomic, endpoint
from stream.state.keys import Keys
from stream.state.members import plant_members
from stream.state.overlap import ExactOverlap, exact_overlap
from stream.state.resp import RespRouter
from stream.state.walk import MemberWalk
from stream.wiring import Core
from tests.integration.cluster.conftest import Cluster

pytestmark = pytest.mark.integration


async def test_router_replies_in_order_across_masters_and_follows_moved(settings: Settings,
                                                                          redis: RedisClient) -> None:
    keys = Keys(settings.key_prefix)
    uids = [f"u{i}" for i in range(3000)]
    for start in range(0, len(uids), 500):
        pipe = redis.pipeline(transaction=False)
        for uid in uids[start:start + 500]:
            pipe.hset(keys.user(uid), "p", uid)
        await pipe.execute()
    router = RespRouter(endpoint(settings))
    try:
        masters = await router.masters()
        assert len(masters) == 3
        assert {await router.node_for(keys.user(u)) for u in uids} == set(masters), "users on every master"
        assert await read_users(router, keys, uids, ["p"]) == [[u] for u in uids]
        # A map that sends every slot to one master: the other masters' keys come back MOVED,
        # the map is read again and those commands re-sent to their owners.
        assert router._slots is not None
        router._slots = [masters[0]] * len(router._slots)
        assert await read_users(router, keys, uids, ["p"]) == [[u] for u in uids]
        assert len(set(router._slots)) == 3
    finally:
        await router.close()


async def test_slot_map_refresh_while_a_window_is_queued(settings: Settings, redis: RedisClient) -> None:
    keys = Keys(settings.key_prefix)
    uids = [f"q{i}" for i in range(600)]
    pipe = redis.pipeline(transaction=False)
    for uid in uids:
        pipe.hset(keys.user(uid), "p", uid)
    await pipe.execute()
    router = RespRouter(endpoint(settings))
    try:
        encoded = [b"HMGET", b"", b"p"]
        pending = await router.submit([(keys.user(u), [encoded[0], keys.user(u).encode(), encoded[2]])
                                       for u in uids])
        await router.refresh()  # CLUSTER SLOTS on connections that still owe the window's replies
        assert await router.result(pending) == [[u] for u in uids]
        assert await read_users(router, keys, uids[:5], ["p"]) == [[u] for u in uids[:5]], "still in step"
    finally:
        await router.close()


async def test_transactions_waits_scans_and_run_ids(settings: Settings, redis: RedisClient) -> None:
    core = Core.build(settings)
    try:
        keys = core.keys
        version, values = await atomic(redis, keys.segments, lambda p: (
            p.incr(keys.segments_version), p.hset(keys.segments, "s-1", "{}")))
        assert (version, values) == (1, 1)
        await core.store.wait_durable()  # a watermark and WAIT 1 on every master, each with a replica
        assert len(core.store._replicas) == 3 and all(n >= 1 for n in core.store._replicas.values())
        instance = await core.store.instance()
        assert len(instance.split(",")) == 3 and all(len(part.split("=")[1]) == 40 for part in instance.split(","))
        for p in range(12):
            await redis.sadd(keys.known(p), f"u{p}")
        found = {k async for k in redis.scan_iter(match=keys.known(0).replace("{p0}", "*"), count=100)}
        assert len({await core.router.node_for(keys.known(p)) for p in range(12)}) > 1
        assert found == {keys.known(p) for p in range(12)}, "a scan sees every master"
    finally:
        await core.close()


async def test_member_walk_on_the_segments_slot(settings: Settings, redis: RedisClient) -> None:
    """The member buckets share the segment's tag: one slot, and the walk and overlap read them there."""
    core = Core.build(settings)
    try:
        ids = [f"w{i}" for i in range(3_000)]
        await plant_members(redis, core.keys, "walked", ids)
        await plant_members(redis, core.keys, "other", [*ids[:1_000], "x"])
        assert len({await core.router.node_for(core.keys.member_bucket("walked", b)) for b in range(64)}) == 1
        walk = MemberWalk(core.router, core.keys, "walked", chunk=500)
        given = [uid async for window in walk.windows() for uid in window]
        assert sorted(given) == sorted(ids)
        assert await exact_overlap(core.router, core.keys, "walked", "other") == ExactOverlap(1_000, 2_000, 1)
    finally:
        await core.close()


async def test_router_follows_ask_and_tryagain_through_a_slot_migration(
        settings: Settings, redis: RedisClient, redis_cluster: Cluster) -> None:
    """One slot migrated by hand, key by key (what `redis-cli --cluster reshard` does): a key
    already moved answers ASK on its old master, a command over two keys split between the
    nodes answers TRYAGAIN until the slot has moved, then MOVED. The slot goes back afterwards."""
    keys = Keys(settings.key_prefix)
    uid = "migrating-1"
    first, second = keys.user(uid), keys.member_bucket(uid, 7)  # one hash tag: one slot
    await redis.hset(first, "p", "x")
    await redis.hset(second, "7", "")
    slot = key_slot(first.encode())
    source = redis_cluster.owner(first)
    assert source is not None
    target = next(p for p in redis_cluster.slot_owners() if p != source)
    ids = {p: cli(p, "cluster", "myid") for p in (source, target)}

    def move(key: str, src: int, dst: int) -> None:
        assert cli(src, "migrate", "127.0.0.1", str(dst), "", "0", "5000", "keys", key) == "OK"

    def begin(src: int, dst: int) -> None:
        cli(dst, "cluster", "setslot", str(slot), "importing", ids[src])
        cli(src, "cluster", "setslot", str(slot), "migrating", ids[dst])

    def finish(src: int, dst: int) -> None:
        for port in (dst, src):
            cli(port, "cluster", "setslot", str(slot), "node", ids[dst])

    router = RespRouter(endpoint(settings))
    begun = False
    try:
        assert await router.execute([(first, [b"HGET", first.encode(), b"p"])]) == ["x"]  # the map is read
        begun = True
        begin(source, target)
        move(first, source, target)
        asks = errors(source)["ASK"]
        assert await router.execute([(first, [b"HGET", first.encode(), b"p"])]) == ["x"], "ASK followed"
        assert errors(source)["ASK"] > asks

        async def complete() -> None:  # the rest of the slot moves while the router backs off
            await asyncio.sleep(0.3)
            move(second, source, target)
            finish(source, target)

        tries = errors(source)["TRYAGAIN"]
        mover = asyncio.create_task(complete())
        both = [b"EXISTS", first.encode(), second.encode()]
        assert await router.execute([(first, both)]) == [2], "TRYAGAIN waited out, then MOVED followed"
        await mover
        assert errors(source)["TRYAGAIN"] > tries
        assert redis_cluster.owner(first) == target
        assert await router.execute([(second, [b"HEXISTS", second.encode(), b"7"])]) == [1]
    finally:
        await router.close()
        if begun and redis_cluster.owner(first) == source:  # failed half way: end the migration first
            for key in (first, second):
                with contextlib.suppress(AssertionError):  # NOKEY: already moved
                    move(key, source, target)
            finish(source, target)
        if begun:  # home again, for the tests after this one
            begin(target, source)
            for key in (first, second):
                move(key, target, source)
            finish(target, source)
        assert redis_cluster.owner(first) == source


def cli(port: int, *args: str) -> str:
    done = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def errors(port: int) -> dict[str, int]:
    """The node's error replies by kind (INFO errorstats)."""
    found: dict[str, int] = {}
    for line in cli(port, "info", "errorstats").splitlines():
        if line.startswith("errorstat_"):
            name, _, rest = line[len("errorstat_"):].partition(":")
            found[name] = int(rest.split("=")[1].split(",")[0])
    return {kind: found.get(kind, 0) for kind in ("MOVED", "ASK", "TRYAGAIN")}
