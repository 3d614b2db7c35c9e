"""`stream` command: worker, api, topics, check, demo.

Every command reads the one Settings object, so the environment variables in
the README apply to all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from typing import NoReturn

from stream.config import get_settings

GC_THRESHOLDS = (50_000, 20, 100)  # Python's default is (700, 10, 10)


def tune_gc() -> None:
    """Keeps Python's cyclic GC from eating the hot paths of the worker and the API.

    Profiling showed collections costing ~20% of the worker's throughput: Faust
    allocates several container objects per message, so the default gen0
    threshold collects thousands of times a second, and each full collection
    walks every long-lived object. What is alive at start-up (modules, the
    app) is frozen out of collections, and collections run after far more
    allocations; cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _worker(_: argparse.Namespace) -> NoReturn:
    from stream.agents.app import create_app

    app = create_app(get_settings())
    tune_gc()
    sys.argv = [sys.argv[0], "worker", "-l", "info", "--web-port", str(get_settings().worker_web_port)]
    app.main()  # runs until the worker stops, then exits the process


def _api(_: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    tune_gc()
    uvicorn.run("stream.api.app:create_app", factory=True, host=settings.api_host, port=settings.api_port,
                log_level="warning", access_log=False)
    return 0


def _topics(_: argparse.Namespace) -> int:
    from stream.topics import create_topics

    created = asyncio.run(create_topics(get_settings()))
    print("created: " + (", ".join(created) if created else "nothing (all exist)"))
    return 0


def _check(_: argparse.Namespace) -> int:
    """Exit 0 when some worker wrote its heartbeat in the last 10 s (arq-style health check)."""
    from redis import Redis

    from stream.state.keys import Keys

    settings = get_settings()
    client = Redis.from_url(settings.redis_url, decode_responses=True)
    alive = list(client.scan_iter(match=Keys(settings.key_prefix).heartbeat("*"), count=100))
    print(f"{len(alive)} worker(s) alive")
    return 0 if alive else 1


def _demo(args: argparse.Namespace) -> int:
    from stream.demo import load_demo

    asyncio.run(load_demo(get_settings(), users=args.users, events=args.events, api_url=args.api_url))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from stream.generate import Workload, produce

    workload = Workload(seed=args.seed, users=args.users, events=args.events, days=args.days,
                        live_share=args.live_share, duplicate_share=args.duplicates,
                        malformed_share=args.malformed)
    sent = asyncio.run(produce(get_settings(), workload, rate=args.rate, progress=not args.quiet))
    print(f"sent {sent} messages")
    return 0


def _bench(args: argparse.Namespace) -> int:
    """The suite lives in the repository's bench/ folder, next to the package."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "bench" / "run.py").exists():
        print("stream bench needs a checkout of the repository (bench/ is not installed)", file=sys.stderr)
        return 2
    extra = ["--quick"] if args.quick else []
    return subprocess.call([sys.executable, "-m", "bench.run", *extra], cwd=root, env=dict(os.environ))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a Faust worker").set_defaults(func=_worker)
    sub.add_parser("api", help="run the query API and dashboard").set_defaults(func=_api)
    sub.add_parser("topics", help="create the Kafka topics").set_defaults(func=_topics)
    sub.add_parser("check", help="exit 0 if a worker heartbeat is fresh").set_defaults(func=_check)
    demo = sub.add_parser("demo", help="load demo users, events and segments")
    # argparse converts a string default with `type`, so a bad variable fails like a bad flag would.
    demo.add_argument("--users", type=int, default=os.environ.get("STREAM_DEMO_USERS", "3000"),
                      help="demo users (default: $STREAM_DEMO_USERS or 3000)")
    demo.add_argument("--events", type=int, default=os.environ.get("STREAM_DEMO_EVENTS", "30000"),
                      help="demo events (default: $STREAM_DEMO_EVENTS or 30000)")
    demo.add_argument("--api-url", default=None)
    demo.set_defaults(func=_demo)
    gen = sub.add_parser("generate", help="produce a synthetic workload to Kafka")
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--users", type=int, default=10_000)
    gen.add_argument("--events", type=int, default=100_000)
    gen.add_argument("--days", type=int, default=90, help="event timestamps spread over this many past days")
    gen.add_argument("--rate", type=float, default=None, help="messages per second (default: as fast as possible)")
    gen.add_argument("--live-share", type=float, default=0.0, help="share of events stamped now")
    gen.add_argument("--duplicates", type=float, default=0.0, help="share of events sent twice")
    gen.add_argument("--malformed", type=float, default=0.0, help="share of malformed messages")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate)
    bench = sub.add_parser("bench", help="run the benchmark suite (from a repository checkout)")
    bench.add_argument("--quick", action="store_true")
    bench.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
