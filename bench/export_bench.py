"""Benchmark: stream a CSV export of an N-member segment; rows/s and the API's peak RSS.

The export promises constant memory whatever the segment's size, so this
fills Redis directly (pipelined, no Kafka or worker needed) with N users in a
custom-list segment, runs the real API in a subprocess, downloads the export
and reads the API process's VmHWM (peak resident set) from /proc before and
after. Every 50th user is blacklisted and must be missing from the file.

    .venv/bin/python -m bench.export_bench --redis-url redis://127.0.0.1:6380/0 --members 1000000

Writes only under a fresh ``bench:<random>:`` prefix and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from bench.defs import install
from stream.segments import CUSTOM_LIST, make_segment
from stream.state.keys import Keys
from stream.state.members import plant_members

ROOT = Path(__file__).resolve().parents[1]
SID = "s-bench"
BLACKLIST_EVERY = 50


def parse(description: str | None = __doc__) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6380/0")
    parser.add_argument("--kafka", default="127.0.0.1:9092", help="bootstrap servers the API is given")
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=10_000, help="users per fill pipeline")
    return parser


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most the process ever had resident, so a short spike cannot be missed."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


async def fill(client: aioredis.Redis, redis_url: str, keys: Keys, members: int, chunk: int,
               in_segment: bool = True) -> float:
    """N users (v, profile, subscriptions, blacklist flag), in segment SID or only known; returns seconds."""
    started = time.perf_counter()
    await install(client, redis_url, keys, make_segment(SID, "bench", CUSTOM_LIST, None, int(time.time() * 1000)))
    for start in range(0, members, chunk):
        pipe = client.pipeline(transaction=False)
        ids = [f"u-{i}" for i in range(start, min(start + chunk, members))]
        for i, uid in enumerate(ids, start):
            profile = {"email": f"user{i}@example.com", "phone": f"+91{i:010d}", "city": "Pune, MH",
                       "name": f'User "{i}"', "score": i % 1000}
            pipe.hset(keys.user(uid), mapping={"v": 1, "p": json.dumps(profile), "s": '{"sms":false}',
                                               "b": "1" if i % BLACKLIST_EVERY == 0 else "0",
                                               "m": json.dumps([SID] if in_segment else [])})
        await pipe.execute()
        if in_segment:
            await plant_members(client, keys, SID, ids)
    return time.perf_counter() - started


async def drop(client: aioredis.Redis, prefix: str) -> None:
    batch: list[str] = []
    async for key in client.scan_iter(match=prefix + "*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            await client.delete(*batch)
            batch = []
    if batch:
        await client.delete(*batch)


class Api:
    """The real API (`stream api`) on a free port, with this run's prefix."""

    def __init__(self, redis_url: str, kafka: str, prefix: str, extra_env: dict[str, str] | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
        env.update({"STREAM_REDIS_URL": redis_url, "STREAM_KAFKA_BOOTSTRAP": kafka, "STREAM_KEY_PREFIX": prefix,
                    "STREAM_API_PORT": str(self.port), **(extra_env or {})})
        self.env = env
        self.proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "api"], env=env, cwd=ROOT)
        self.url = f"http://127.0.0.1:{self.port}"
        self.headers: dict[str, str] = {}

    def mint_key(self) -> None:
        """An admin key for this run's prefix, made as an operator would (`stream keys create`)."""
        made = subprocess.run([sys.executable, "-m", "stream.cli", "keys", "create", "--name", "bench",
                               "--scope", "admin"], env=self.env, cwd=ROOT, capture_output=True, text=True,
                              check=True)
        self.headers = {"authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}

    async def wait(self) -> None:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                if self.proc.poll() is not None:
                    raise RuntimeError("the API exited")
                try:
                    if (await client.get(self.url + "/livez")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("the API did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def run(redis_url: str, kafka: str, members: int, chunk: int = 10_000) -> dict[str, float]:
    """Fills, exports and measures; returns the figures (also printed)."""
    args = argparse.Namespace(redis_url=redis_url, kafka=kafka, members=members, chunk=chunk)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    client = aioredis.Redis.from_url(args.redis_url, decode_responses=True)
    tag = prefix.split(":")[1]
    api = Api(args.redis_url, args.kafka, prefix, {"STREAM_TOPIC_CONTROL": f"bench-control-{tag}",
                                                    "STREAM_TOPIC_CHANGELOG": f"bench-changelog-{tag}",
                                                    "STREAM_TOPIC_AUDIT": f"bench-audit-{tag}"})
    try:
        seconds = await fill(client, args.redis_url, Keys(prefix), args.members, args.chunk)
        print(f"filled {args.members:,} users in {seconds:.1f}s")
        await api.wait()
        api.mint_key()
        baseline = peak_rss_mb(api.proc.pid)
        fields = "user_id,email,phone,city,name,score,reachable_email,reachable_sms"
        rows = size = 0
        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=None) as http, http.stream(
                "GET", f"{api.url}/segments/{SID}/export.csv", params={"fields": fields}, headers=api.headers) as resp:
            resp.raise_for_status()
            first_byte = time.perf_counter() - started
            last = b""
            async for piece in resp.aiter_bytes():  # a piece may end between a row's \r and its \n
                size += len(piece)
                rows += (last + piece).count(b"\r\n")
                last = piece[-1:]
        elapsed = time.perf_counter() - started
        rows -= 1  # header
        expected = args.members - len(range(0, args.members, BLACKLIST_EVERY))
        assert rows == expected, f"exported {rows:,} rows, expected {expected:,}"
        peak = peak_rss_mb(api.proc.pid)
        print(f"exported {rows:,} rows ({size / 1e6:,.1f} MB) in {elapsed:.1f}s: {rows / elapsed:,.0f} rows/s, "
              f"first byte after {first_byte * 1000:.0f} ms")
        print(f"API peak RSS: {baseline:,.1f} MB after start-up, {peak:,.1f} MB after the export "
              f"(+{peak - baseline:,.1f} MB)")
        return {"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed, "rss_start_mb": baseline,
                "rss_peak_mb": peak}
    finally:
        api.stop()
        await drop(client, prefix)
        await client.aclose()


async def main(args: argparse.Namespace) -> None:
    await run(args.redis_url, args.kafka, args.members, args.chunk)


if __name__ == "__main__":
    asyncio.run(main(parse().parse_args()))
