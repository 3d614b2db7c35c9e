"""Micro-benchmark: how long SampleStore.estimate() takes for a 1,000,000-member segment.

The insights API promises estimates "in milliseconds at any size"; this shows
the read stays one HMGET plus a little arithmetic however big the segment is.

    .venv/bin/python bench/estimate_latency.py --redis-url redis://127.0.0.1:6380/0

Writes only under a fresh ``bench:<random>:`` prefix and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from stream.config import Settings
from stream.sketches import Estimate
from stream.wiring import Core


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6380/0")
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--lg-k", type=int, default=12)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=20_000, help="transitions per apply() pipeline")
    return parser.parse_args()


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _fmt(est: Estimate) -> str:
    return f"{est.estimate:,.0f} [{est.lower_95:,.0f}, {est.upper_95:,.0f}]"


async def run(redis_url: str, members: int, lg_k: int = 12, calls: int = 1000,
              chunk: int = 20_000) -> dict[str, float]:
    """Fills one segment's sample with `members`, then times estimate(); returns the figures."""
    args = argparse.Namespace(redis_url=redis_url, members=members, lg_k=lg_k, calls=calls, chunk=chunk)
    core = Core.build(Settings(redis_url=args.redis_url, key_prefix=f"bench:{uuid.uuid4().hex[:8]}:",
                               sketch_lg_k=args.lg_k))
    store = core.samples
    sid = "bench-segment"
    try:
        started = time.perf_counter()
        for start in range(0, args.members, args.chunk):
            end = min(start + args.chunk, args.members)
            await store.apply({sid: [(f"user-{i}", i % 32) for i in range(start, end)]})
        fill = time.perf_counter() - started
        print(f"filled {args.members:,} members in {fill:.1f}s ({args.members / fill:,.0f} transitions/s)")

        for _ in range(50):  # warm the connection pool and the bounds cache
            await store.estimate(sid)
        timings: list[float] = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            size, reach = await store.estimate(sid)
            timings.append((time.perf_counter() - t0) * 1000.0)
        timings.sort()
        print(
            f"estimate() over {args.calls} calls: p50 {_percentile(timings, 0.50):.3f} ms, "
            f"p99 {_percentile(timings, 0.99):.3f} ms, max {timings[-1]:.3f} ms, "
            f"mean {statistics.fmean(timings):.3f} ms"
        )
        print(f"size {_fmt(size)} (truth {args.members:,})")
        # i % 32 as the mask sets each channel bit for exactly half of the users.
        for name, est in reach.items():
            print(f"  {name:9s} {_fmt(est)} (truth {args.members // 2:,})")
        return {"members": args.members, "p50_ms": _percentile(timings, 0.50), "p99_ms": _percentile(timings, 0.99),
                "estimate": size.estimate, "lower_95": size.lower_95, "upper_95": size.upper_95}
    finally:
        await store.delete(sid)
        await core.close()


async def _main(args: argparse.Namespace) -> None:
    await run(args.redis_url, args.members, args.lg_k, args.calls, args.chunk)


if __name__ == "__main__":
    asyncio.run(_main(_parse()))
