"""`stream rebuild`: an empty Redis (or one restored from an old backup) back to the exact state.

Kafka is the log of record (docs/DURABILITY.md). The rebuild reads it back:

1. the control log, from its start: every segment, campaign, journey, API
   key, forgotten user (and, last, every list chunk);
2. the trend changelog: each segment's daily entered/exited counters;
3. per partition, the user changelog (compacted: each user's latest
   committed hash, with the input offsets it had applied, `qe`/`qp`); from
   those hashes the member sets, known users, timers and identity index;
4. per partition, the input logs from the older of the consumer group's
   committed offset and `STREAM_DEDUPE_TTL_SECONDS` ago: a message at or
   below the user's applied offset only gives its event id back to the
   user's dedupe window; one above it is applied through the engine, as the worker
   would have (its effects may have died with Redis);
5. the list chunks, the estimate samples (from the member sets), the resume
   points (where step 4 stopped), the control position and the epoch;
   segments whose creation backfill never finished get it again.

Workers wait while Redis has no epoch, so nothing else writes meanwhile.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from stream.config import Settings
from stream.control.epoch import set_epoch
from stream.control.log import CONTROL_PARTITION, decode, replay
from stream.control.records import ControlKind
from stream.engine.engine import Engine
from stream.engine.jobs import rebuild_sample
from stream.kafkaio.log import committed_offsets, consumer, end_offsets, read_range
from stream.rules.jsonio import loads
from stream.segments import CUSTOM_LIST
from stream.state.jobs import JobKind
from stream.state.lua import script
from stream.state.resp import Command, RespRouter
from stream.state.userhash import (
    APPLIED_EVENTS,
    APPLIED_PROFILES,
    DEDUPE,
    DEDUPE_WINDOW,
    DUE,
    MEMBERS,
    PROFILE,
    TRANSIENT,
    VERSION,
    dedupe_token,
    from_changelog,
    parse_block_key,
)
from stream.wiring import Core

IDENTITY_UPDATE = script("identity_update")
WRITE_CHUNK = 2000


@dataclass
class Summary:
    definitions: int = 0
    lists: int = 0
    users: int = 0
    members: dict[str, int] = field(default_factory=dict)
    trend_days: int = 0
    replayed: int = 0
    dedupe_ids: int = 0
    backfills: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"definitions, campaigns, journeys, keys, forgets: {self.definitions}",
            f"list chunks: {self.lists}",
            f"users restored: {self.users}",
            f"segments: {len(self.members)} ({sum(self.members.values())} memberships)",
            f"trend days: {self.trend_days}",
            f"input messages replayed past the changelog: {self.replayed}",
            f"event ids back in the dedupe window: {self.dedupe_ids}",
            f"creation backfills restarted: {len(self.backfills)}",
            f"took {self.seconds:.1f} s",
        ]


class Progress:
    """One line on stderr, redrawn: which step and how far."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, step: str, done: int, total: int | None = None) -> None:
        if self.quiet:
            return
        if total:
            width = 30
            filled = int(width * min(1.0, done / total))
            bar = "#" * filled + "-" * (width - filled)
            sys.stderr.write(f"\r{step:<28} [{bar}] {done:,}/{total:,}   ")
        else:
            sys.stderr.write(f"\r{step:<28} {done:,}   ")
        sys.stderr.flush()

    def done(self) -> None:
        if not self.quiet:
            sys.stderr.write("\n")


async def _write(router: RespRouter, commands: list[Command]) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(commands), WRITE_CHUNK):
        replies = await router.execute(commands[start:start + WRITE_CHUNK])
        for reply in replies:
            if isinstance(reply, Exception):
                raise RuntimeError(f"redis refused a rebuild write: {reply}")
        out += replies
    return out


def _hset(key: str, fields: dict[str, str]) -> Command:
    return key, [b"HSET", key.encode(), *(part.encode() for kv in fields.items() for part in kv)]


async def wipe(core: Core) -> int:
    """Deletes every key of the prefix (every node of a cluster), 1,000 UNLINKs per pipelined
    round trip: one round trip per key made a million users' wipe take minutes."""
    removed = 0
    batch: list[str] = []

    async def flush() -> int:
        pipe = core.redis.pipeline(transaction=False)
        for k in batch:
            pipe.unlink(k)
        return sum(int(n) for n in await pipe.execute())

    async for key in core.redis.scan_iter(match=core.keys.pattern(), count=5000):
        batch.append(str(key))
        if len(batch) >= 1000:
            removed += await flush()
            batch = []
    if batch:
        removed += await flush()
    return removed


async def rebuild(settings: Settings, quiet: bool = False, clock: Callable[[], float] = time.time) -> Summary:
    started = time.monotonic()
    progress = Progress(quiet)
    summary = Summary()
    core = Core.build(settings)
    router = core.router
    try:
        # 1. the control log, all but the list chunks (their users come back first)
        end = (await end_offsets(settings, settings.topic_control, [CONTROL_PARTITION]))[CONTROL_PARTITION]
        _, summary.definitions = await replay(settings, core.materializer, 0, end, follow_up=False,
                                              skip=frozenset({ControlKind.LIST}))
        progress("control log", summary.definitions)
        index = await core.segments.load_index()
        progress.done()

        # 2. trend days
        trend = await _restore_trend(core, settings, index.segments.keys())
        summary.trend_days = trend
        progress("trend days", trend)
        progress.done()

        # 3-4. users per partition, then the inputs past the changelog
        engine = Engine(core.store, settings, core.outputs, clock=clock, writer="rebuild")
        await engine.definitions.reload()
        resume: dict[int, dict[str, int]] = {}
        members: dict[str, set[str]] = defaultdict(set)
        for p in range(settings.partitions):
            users = await _restore_users(core, settings, p, index.segments.keys(), members, summary)
            progress("users", summary.users)
            resume[p] = await _replay_inputs(core, settings, engine, p, users, summary, clock)
            progress("users and inputs", summary.users + summary.replayed)
        progress.done()
        for sid in index.segments:
            summary.members[sid] = await core.segments.size(sid)

        # 5. lists, samples, resume points, control position, epoch, unfinished backfills
        position, summary.lists = await _replay_lists(core, settings, end)
        for n, sid in enumerate(sorted(index.segments), 1):
            sample_router = RespRouter(router.ep)
            try:
                await rebuild_sample(core.redis, sample_router, core.keys, core.samples, sid)
            finally:
                await sample_router.close()
            progress("estimate samples", n, len(index.segments))
        progress.done()
        for p, offsets in resume.items():
            await core.redis.delete(core.keys.resume(p))
            await core.redis.hset(core.keys.resume(p), mapping={**{k: str(v) for k, v in offsets.items()},
                                                                "w": "rebuild"})
        await core.materializer.set_position(max(position, end))
        await set_epoch(core.redis, core.keys, "rebuilt")
        backfilled = {str(s) for s in await core.redis.hkeys(core.keys.backfilled)}
        for seg in index.segments.values():
            if seg.kind != CUSTOM_LIST and seg.id not in backfilled:
                await core.jobs.create(JobKind.BACKFILL, seg.id, settings.partitions)
                summary.backfills.append(seg.id)
        for sid in index.segments:
            summary.members[sid] = await core.segments.size(sid)
        summary.seconds = time.monotonic() - started
        return summary
    finally:
        await core.close()


async def _restore_trend(core: Core, settings: Settings, live: Any) -> int:
    days = 0
    commands: list[Command] = []
    latest: dict[str, bytes | None] = {}
    async for batch in read_range(settings, settings.topic_trend_changelog, 0, 0):
        for msg in batch:
            if msg.key is not None:
                latest[msg.key.decode()] = msg.value
    for key, value in latest.items():
        sid, _, day = key.rpartition(":")
        if value is None or sid not in live:
            continue
        counts = json.loads(value)
        fields = {f"{k}:{day}": str(int(counts[k])) for k in ("e", "x") if int(counts.get(k, 0))}
        if fields:  # the worker's counters only exist once moved: a zero is no field
            commands.append(_hset(core.keys.trend(sid), fields))
            days += 1
    await _write(core.router, commands)
    return days


async def _restore_users(core: Core, settings: Settings, p: int, live: Any, members: dict[str, set[str]],
                         summary: Summary) -> dict[str, tuple[int, int]]:
    """Latest hash per user from the changelog; returns each user's applied (events, profiles) offsets."""
    latest: dict[str, bytes | None] = {}
    blocks: dict[str, dict[str, str]] = defaultdict(dict)  # a heavy user's sealed blocks, by field
    async for batch in read_range(settings, settings.topic_changelog, p, 0):
        for msg in batch:
            if msg.key is None:
                continue
            if (block := parse_block_key(msg.key)) is None:
                latest[msg.key.decode()] = msg.value
            elif msg.value is None:
                blocks[block[0]].pop(block[1], None)
            else:
                blocks[block[0]][block[1]] = msg.value.decode()
    applied: dict[str, tuple[int, int]] = {}
    commands: list[Command] = []
    known: list[str] = []
    due: dict[str, int] = {}
    identity: list[tuple[str, str, str]] = []
    joins: list[Command] = []
    joined: list[str] = []  # the segment of each of `joins`
    for uid, value in latest.items():
        if value is None:
            continue  # forgotten
        fields = {k: v for k, v in from_changelog(value).items() if k not in TRANSIENT}
        fields.update(blocks.get(uid, {}))  # blocks of a forgotten or unknown user stay out
        commands.append((core.keys.user(uid), [b"DEL", core.keys.user(uid).encode()]))
        commands.append(_hset(core.keys.user(uid), fields))
        applied[uid] = (int(fields.get(APPLIED_EVENTS, "-1")), int(fields.get(APPLIED_PROFILES, "-1")))
        known.append(uid)
        for sid in loads(fields[MEMBERS]) if MEMBERS in fields else []:
            if sid in live:
                members[sid].add(uid)
                bucket = core.keys.member_bucket_of(sid, uid)
                joins.append((bucket, [b"HSETNX", bucket.encode(), uid.encode(), b""]))
                joined.append(sid)
        if fields.get(DUE, "-") != "-":
            due[uid] = int(fields[DUE])
        profile = loads(fields[PROFILE]) if PROFILE in fields else {}
        identity += [(prop, str(profile[prop]), uid) for prop in ("email", "phone")
                     if isinstance(profile.get(prop), str)]
        summary.users += 1
    # The member counts move by the memberships that were new (a backup restored without --wipe
    # may hold some already), before the replay moves them further as live.
    added: Counter[str] = Counter()
    for sid, reply in zip(joined, await _write(core.router, joins), strict=True):
        added[sid] += int(reply)
    for sid, n in added.items():
        count = core.keys.member_count(sid)
        commands.append((count, [b"INCRBY", count.encode(), str(n).encode()]))
    for start in range(0, len(known), 1000):
        chunk = known[start:start + 1000]
        commands.append((core.keys.known(p), [b"SADD", core.keys.known(p).encode(), *(u.encode() for u in chunk)]))
    due_items = list(due.items())
    for start in range(0, len(due_items), 1000):
        chunk_due = due_items[start:start + 1000]
        pairs = [part for uid, at in chunk_due for part in (str(at).encode(), uid.encode())]
        commands.append((core.keys.due(p), [b"ZADD", core.keys.due(p).encode(), *pairs]))
    await _write(core.router, commands)
    if identity:
        calls = [(IDENTITY_UPDATE, [core.keys.identity(kind, value)], ["+", value, uid])
                 for kind, value, uid in identity]
        for start in range(0, len(calls), WRITE_CHUNK):
            await core.lua.call_many(calls[start:start + WRITE_CHUNK])
    return applied


async def _replay_inputs(core: Core, settings: Settings, engine: Engine, p: int, applied: dict[str, tuple[int, int]],
                         summary: Summary, clock: Callable[[], float]) -> dict[str, int]:
    """Dedupe windows back; input past each user's applied offset through the engine.

    Reads from the consumer group's committed offset (every message below it was acknowledged,
    so its effects reached the changelog), or earlier for `events` when the dedupe window starts
    earlier. Returns where each topic's reading stopped: the partition's resume point."""
    window_start_ms = int((clock() - settings.dedupe_ttl_seconds) * 1000)
    forgotten = engine.definitions.index.forgotten
    resume: dict[str, int] = {}
    for topic, is_events in ((settings.topic_profiles, False), (settings.topic_events, True)):
        committed = max(0, (await committed_offsets(settings, settings.app_id, topic, [p]))[p])
        end = (await end_offsets(settings, topic, [p]))[p]
        resume[topic] = end
        first = committed
        if is_events:
            at = await _offset_at(settings, topic, p, window_start_ms)
            first = min(committed, end if at is None else at)
        # Each user's newest event tokens at or below its applied offset. All of them come before
        # the user's first message above it, so they are written before the engine commits
        # that one (`flush`), and the engine's commit then extends the window as live.
        tokens: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=DEDUPE_WINDOW))
        dirty: set[str] = set()
        async for batch in read_range(settings, topic, p, first, end):
            todo = []
            for msg in batch:
                uid, event_id = _who(msg.value, is_events)
                done_at = applied.get(uid, (-1, -1))[0 if is_events else 1] if uid is not None else -1
                if msg.offset > done_at:
                    if msg.offset >= committed or uid is not None:
                        todo.append(msg)  # the engine dead-letters the invalid ones and skips forgotten users
                    continue
                if event_id is not None and uid is not None and msg.timestamp_ms >= window_start_ms:
                    gone = forgotten.get(uid)
                    if gone is None or msg.timestamp_ms >= gone:
                        tokens[uid].append(dedupe_token(event_id))
                        dirty.add(uid)
            if todo:
                await _flush_tokens(core, tokens, dirty)
                await engine.process(todo, replay=True)
                summary.replayed += len(todo)
        await _flush_tokens(core, tokens, dirty)
        summary.dedupe_ids += sum(len(t) for t in tokens.values())
    return resume


async def _flush_tokens(core: Core, tokens: dict[str, deque[str]], dirty: set[str]) -> None:
    """Writes the dedupe windows gathered since the last flush. The version moves too, so a hash
    the engine cached (from the profiles pass) answers "conflict" and is read again."""
    commands: list[Command] = []
    for uid in sorted(dirty):
        key = core.keys.user(uid)
        commands.append(_hset(key, {DEDUPE: "".join(tokens[uid])}))
        commands.append((key, [b"HINCRBY", key.encode(), VERSION.encode(), b"1"]))
    dirty.clear()
    if commands:
        await _write(core.router, commands)



def _who(raw: bytes | None, is_events: bool) -> tuple[str | None, str | None]:
    """(user id, event id) of a raw input message, None where it does not parse."""
    try:
        obj = json.loads(raw) if raw is not None else None
    except ValueError:
        return None, None
    if not isinstance(obj, dict) or not isinstance(obj.get("user_id"), str):
        return None, None
    event_id = obj.get("event_id") if is_events else None
    return obj["user_id"], event_id if isinstance(event_id, str) else None


async def _offset_at(settings: Settings, topic: str, p: int, at_ms: int) -> int | None:
    c = consumer(settings)
    await c.start()
    try:
        tp = TopicPartition(topic, p)
        found = (await c.offsets_for_times({tp: max(0, at_ms)}))[tp]
        return None if found is None else int(found.offset)
    finally:
        await c.stop()


async def _replay_lists(core: Core, settings: Settings, end: int) -> tuple[int, int]:
    chunks = 0
    position = 0
    async for batch in read_range(settings, settings.topic_control, CONTROL_PARTITION, 0, end):
        for msg in batch:
            record = decode(msg.key, msg.value, msg.offset, msg.timestamp_ms)
            position = msg.offset + 1
            if record is not None and record.kind == ControlKind.LIST and record.value is not None:
                await core.materializer.apply(record)
                chunks += 1
    return position, chunks
