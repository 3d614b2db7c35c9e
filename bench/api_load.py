"""The query API's latency while the pipeline runs at half load: 50 concurrent clients on insights, trend and users.

Called by bench/pipeline.py after its latency phase, on the same stack: the
real API (`stream api`, one process) with an admin key, the pipeline's 20 live
segments, and events produced at half the pipeline's measured rate for the
phase's duration. The clients are aiohttp (httpx's pool topped out near 200
requests/s here, below the API: the load generator was the bottleneck). Each
client is closed-loop (next request when the last one answered) and picks
one of `GET /segments/{id}/insights` (the estimate), `/trend` and `/users` (a
sample) for a random segment. Latency is measured in
the bench process, which also produces the events, so it includes the client
side's own queueing on this 2-core machine.
"""

from __future__ import annotations

import asyncio
import math
import random
import subprocess
import time
from typing import Any

import aiohttp

from bench.export_bench import Api
from stream.config import Settings
from stream.generate import Workload, produce

ROUTES = ("insights", "trend", "users")


def percentile(values: list[float], q: float) -> float:
    """Nearest rank on the sorted values (q in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else float("nan")


async def run(settings: Settings, env: dict[str, str], workload: Workload, rate: float, seconds: float,
              proc: subprocess.Popen[bytes], clients: int = 50) -> dict[str, Any]:
    stream_env = {k: v for k, v in env.items() if k.startswith("STREAM_") and k != "STREAM_API_PORT"}
    api = Api(settings.redis_url, settings.kafka_bootstrap, settings.key_prefix, stream_env)
    latencies: dict[str, list[float]] = {r: [] for r in ROUTES}
    errors = 0
    took = seconds
    try:
        await api.wait()
        api.mint_key()
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(base_url=api.url, headers=api.headers, connector=connector) as http:
            async with http.get("/segments") as listed:
                listed.raise_for_status()
                sids = [s["id"] for s in (await listed.json())["segments"]]
            steady = Workload(seed=workload.seed + 5, users=workload.users, events=int(rate * seconds),
                              live_share=1.0)
            began = time.perf_counter()
            producing = asyncio.create_task(produce(settings, steady, rate=rate, progress=False, profiles=False))

            async def client(i: int) -> None:
                nonlocal errors
                rng = random.Random(i)
                while not producing.done():
                    if proc.poll() is not None:
                        raise RuntimeError(f"worker exited with {proc.returncode}")
                    route, sid = rng.choice(ROUTES), rng.choice(sids)
                    started = time.perf_counter()
                    async with http.get(f"/segments/{sid}/{route}") as got:
                        await got.read()
                        status = got.status
                    elapsed = time.perf_counter() - started
                    if status != 200:
                        errors += 1
                        continue
                    latencies[route].append(elapsed)

            await asyncio.gather(producing, *(client(i) for i in range(clients)))
            took = time.perf_counter() - began
    finally:
        api.stop()
    every = [x for values in latencies.values() for x in values]
    out: dict[str, Any] = {"clients": clients, "rate": rate, "requests": len(every), "errors": errors,
                           "requests_per_s": len(every) / took,
                           "api_insights_p99_ms_under_load": percentile(every, 0.99) * 1000,
                           "p50_ms": percentile(every, 0.50) * 1000}
    for route, values in latencies.items():
        out[f"{route}_p99_ms"] = percentile(values, 0.99) * 1000
    return out
