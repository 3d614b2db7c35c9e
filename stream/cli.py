"""`stream` command: worker, api, topics, check, rebuild, keys, demo, generate, send, bench.

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

from stream.config import Settings, get_settings

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


def _refusals(settings: Settings) -> list[str]:
    """What Kafka and Redis refuse in these settings (credentials, certificates, protocol), one line each."""
    from stream.kafkaio.client import kafka_refusal
    from stream.state.client import redis_refusal

    async def both() -> list[str | None]:
        return list(await asyncio.gather(kafka_refusal(settings), redis_refusal(settings)))

    return [reason for reason in asyncio.run(both()) if reason]


def _refuse_to_start(command: str, settings: Settings) -> None:
    """A service whose settings a dependency refuses can never become ready: it says which and why,
    and exits 2. An unreachable dependency is an outage instead, which the services ride out."""
    reasons = _refusals(settings)
    for reason in reasons:
        print(f"stream {command}: {reason}", file=sys.stderr)
    if reasons:
        sys.exit(2)


def _worker(_: argparse.Namespace) -> NoReturn:
    from stream.agents.app import create_app

    _refuse_to_start("worker", get_settings())
    app = create_app(get_settings())
    tune_gc()
    sys.argv = [sys.argv[0], "worker", "-l", "info", "--web-port", str(get_settings().worker_web_port)]
    app.main()  # runs until the worker stops, then exits the process


def _api(_: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    _refuse_to_start("api", settings)
    tune_gc()
    uvicorn.run("stream.api.app:create_app", factory=True, host=settings.api_host, port=settings.api_port,
                log_level="warning", access_log=False)
    return 0


def _topics(_: argparse.Namespace) -> int:
    from stream.kafkaio.topics import create_topics

    created = asyncio.run(create_topics(get_settings()))
    print("created: " + (", ".join(created) if created else "nothing (all exist)"))
    return 0


def _check(_: argparse.Namespace) -> int:
    """Exit 0 when some worker wrote its heartbeat in the last 10 s (arq-style health check)."""
    from stream.state.heartbeats import alive_workers

    workers = asyncio.run(alive_workers(get_settings()))
    print(f"{len(workers)} worker(s) alive")
    return 0 if workers else 1


def _rebuild(args: argparse.Namespace) -> int:
    """Restores Redis from Kafka (docs/DURABILITY.md); prints what it restored."""
    from stream.rebuild import rebuild, wipe
    from stream.wiring import Core

    settings = get_settings()

    async def run() -> list[str]:
        if args.wipe:
            core = Core.build(settings)
            try:
                removed = await wipe(core)
            finally:
                await core.close()
            print(f"wiped {removed} keys under {settings.key_prefix!r}", file=sys.stderr)
        return (await rebuild(settings, quiet=args.quiet)).lines()

    for line in asyncio.run(run()):
        print(line)
    return 0


def _keys(args: argparse.Namespace) -> int:
    """API keys: create (prints the key once, as the last line), list, revoke."""
    from stream.wiring import Core

    async def run() -> int:
        core = Core.build(get_settings())
        try:
            if args.action == "create":
                scopes = [s.strip() for s in args.scope.split(",") if s.strip()]
                try:
                    made = await core.catalog.create_key(args.name, scopes)
                except ValueError as exc:
                    print(f"stream keys create: {exc}", file=sys.stderr)
                    return 2
                print(f"created key {made.name!r} ({made.id}) with scopes {','.join(made.scopes)}; "
                      "it is shown only now:", file=sys.stderr)
                print(made.token)
                return 0
            if args.action == "list":
                for key in await core.catalog.keys_list():
                    print(f"{key['name']}\t{key['id']}\t{','.join(key['scopes'])}\tcreated_at_ms={key['created_at_ms']}")
                return 0
            if not await core.catalog.revoke_key(args.name):
                print(f"stream keys revoke: no key named {args.name!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.name!r}", file=sys.stderr)
            return 0
        finally:
            await core.close()

    return asyncio.run(run())


def _demo(args: argparse.Namespace) -> int:
    """--days N (N > 0): N days of history lived by the engine on a simulated clock
    (stream/demo_history.py); --days 0: users, events and segments through the API, now."""
    from stream.demo import DEMO_SEGMENTS, load_demo

    if args.days > 0:
        from stream.demo_history import HistoryRefused, load_history

        try:
            done = asyncio.run(load_history(get_settings(), DEMO_SEGMENTS, days=args.days, users=args.users))
        except HistoryRefused as exc:
            print(f"stream demo: {exc}", file=sys.stderr)
            return 0 if exc.already_loaded else 2
        print(f"demo: {done.days} days lived in {done.seconds:.0f} s: {done.users} users, {done.events} events, "
              f"{done.segments} segments")
        return 0
    key = os.environ.get("STREAM_API_KEY", "")
    if args.api_key_file:
        with open(args.api_key_file, encoding="utf-8") as fh:
            key = fh.read().strip()
    if not key:
        print("stream demo: needs a key with the write scope: --api-key-file or $STREAM_API_KEY", file=sys.stderr)
        return 2
    asyncio.run(load_demo(get_settings(), users=args.users, events=args.events, api_url=args.api_url, api_key=key))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from stream.generate import Workload, produce

    workload = Workload(seed=args.seed, users=args.users, events=args.events, days=args.days,
                        live_share=args.live_share, duplicate_share=args.duplicates,
                        malformed_share=args.malformed)
    sent = asyncio.run(produce(get_settings(), workload, rate=args.rate, progress=not args.quiet))
    print(f"sent {sent} messages")
    return 0


def _send(args: argparse.Namespace) -> int:
    """Events or profile updates from the arguments (or stdin, one JSON object a line) to Kafka."""
    import time

    from stream.ingest import Limits
    from stream.send import SendError, prepare, send

    settings = get_settings()
    texts = args.messages or sys.stdin.read().splitlines()
    try:
        messages = prepare(args.kind, texts, int(time.time() * 1000), Limits.from_settings(settings),
                           raw=args.raw, key=args.key)
    except SendError as exc:
        print(f"stream send: {exc}; nothing was sent", file=sys.stderr)
        return 2
    if not messages:
        print("stream send: no message given (arguments, or one JSON object per line on stdin)", file=sys.stderr)
        return 2
    topic = settings.topic_events if args.kind == "events" else settings.topic_profiles
    for partition, offset in asyncio.run(send(settings, args.kind, messages)):
        print(f"{topic}[{partition}]@{offset}")
    print(f"sent {len(messages)} message(s) to {topic}", file=sys.stderr)
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
    rb = sub.add_parser("rebuild", help="restore Redis from the Kafka logs and changelogs")
    rb.add_argument("--wipe", action="store_true", help="delete every key of the prefix first (a stale backup)")
    rb.add_argument("--quiet", action="store_true", help="no progress bar")
    rb.set_defaults(func=_rebuild)
    keys = sub.add_parser("keys", help="create, list or revoke API keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="create a key; prints it once, as the last line")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", required=True, help="comma separated: read, pii, write, admin")
    keys_sub.add_parser("list", help="names, ids and scopes (never the secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by name (effective within a second)")
    revoke.add_argument("name")
    keys.set_defaults(func=_keys)
    demo = sub.add_parser("demo", help="load demo users, events and segments")
    # argparse converts a string default with `type`, so a bad variable fails like a bad flag would.
    demo.add_argument("--users", type=int, default=os.environ.get("STREAM_DEMO_USERS", "3000"),
                      help="demo users (default: $STREAM_DEMO_USERS or 3000)")
    demo.add_argument("--events", type=int, default=os.environ.get("STREAM_DEMO_EVENTS", "30000"),
                      help="demo events (default: $STREAM_DEMO_EVENTS or 30000)")
    demo.add_argument("--days", type=int, default=int(os.environ.get("STREAM_DEMO_DAYS", "0")),
                      help="days of history lived on a simulated clock, with no worker running "
                           "(default: $STREAM_DEMO_DAYS or 0: load through the API, now)")
    demo.add_argument("--api-url", default=None)
    demo.add_argument("--api-key-file", default=None,
                      help="file holding a key with the write scope (default: $STREAM_API_KEY)")
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
    snd = sub.add_parser("send", help="send events or profile updates (JSON) to the input topics by hand")
    snd.add_argument("kind", choices=["events", "profiles"], help="which input topic")
    snd.add_argument("messages", nargs="*", help="JSON objects (default: one per line on stdin)")
    snd.add_argument("--raw", action="store_true", help="send the text as it is, unchecked (to see the DLQ)")
    snd.add_argument("--key", default="", help="message key with --raw (otherwise the user_id)")
    snd.set_defaults(func=_send)
    bench = sub.add_parser("bench", help="run the benchmark suite (from a repository checkout)")
    bench.add_argument("--quick", action="store_true")
    bench.set_defaults(func=_bench)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "send":
        # argparse gives `send`'s messages no chance once an option follows the kind
        # (`stream send events --raw '{...}'`): the text after the options is still a message.
        args.messages = [*args.messages, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args))
    except Exception as exc:
        from aiokafka.errors import KafkaError
        from redis.exceptions import RedisError

        # ssl errors are OSErrors; aiokafka says only "Unable to bootstrap" and keeps the cause to its log
        if not isinstance(exc, KafkaError | RedisError | OSError):
            raise
        reasons = _refusals(get_settings())
        if not reasons:
            raise
        for reason in reasons:
            print(f"stream {args.command}: {reason}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
