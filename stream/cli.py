"""`stream` command: worker, api, topics, check, demo.

Every command reads the one Settings object, so the environment variables in
the README apply to all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import NoReturn

from stream.config import get_settings


def _worker(_: argparse.Namespace) -> NoReturn:
    from stream.agents.app import create_app

    app = create_app(get_settings())
    sys.argv = [sys.argv[0], "worker", "-l", "info", "--web-port", str(get_settings().worker_web_port)]
    app.main()  # runs until the worker stops, then exits the process


def _api(_: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a Faust worker").set_defaults(func=_worker)
    sub.add_parser("api", help="run the query API and dashboard").set_defaults(func=_api)
    sub.add_parser("topics", help="create the Kafka topics").set_defaults(func=_topics)
    sub.add_parser("check", help="exit 0 if a worker heartbeat is fresh").set_defaults(func=_check)
    demo = sub.add_parser("demo", help="load demo users, events and segments")
    demo.add_argument("--users", type=int, default=3000)
    demo.add_argument("--events", type=int, default=30000)
    demo.add_argument("--api-url", default=None)
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
