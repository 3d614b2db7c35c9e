"""The engine: batches of inputs in, committed per-user state and segment changes out.

Kafka-free on purpose: the Faust agent hands it `Message`s, the tests and
`stream.testing` do the same without a broker. One asyncio lock serialises
event batches, window timers and job chunks inside a worker, so they never
race on a user; the per-user compare-and-set only has zombies to fend off.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from stream import metrics
from stream.agents.outputs import DeadLetter, Message, Outputs
from stream.agents.registry import Registry
from stream.config import Settings
from stream.ingest import Event, Invalid, ProfileUpdate, parse_event, parse_profile
from stream.membership import (
    ENTER,
    EXIT,
    Transition,
    UserState,
    apply_event,
    apply_profile,
    forget_segments,
    next_due_ms,
    reevaluate,
)
from stream.segments import SegmentIndex
from stream.state.keys import Keys
from stream.state.sample import SampleStore
from stream.state.segments import MemberChange, SegmentStore
from stream.state.users import Lookup, UserStore

MAX_ATTEMPTS = 20
IDENTITY_PROPS = ("email", "phone")

# Returns the metric outcomes to record once the user's commit has landed.
Work = Callable[[UserState, SegmentIndex], list[tuple[str, str]]]


@dataclass
class Applied:
    """What one committed user asks of the segment side."""

    user: UserState
    partition: int
    identities_before: dict[str, str]


@dataclass
class BatchReport:
    users: int = 0
    applied: list[UserState] = field(default_factory=list)
    transitions: list[tuple[str, str, Transition]] = field(default_factory=list)  # (user, change, t)


def _identities(user: UserState) -> dict[str, str]:
    return {p: str(user.profile[p]) for p in IDENTITY_PROPS if isinstance(user.profile.get(p), str)}


class Engine:
    def __init__(self, redis: Redis, settings: Settings, outputs: Outputs,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.settings = settings
        self.outputs = outputs
        self.clock = clock
        self.keys = Keys(settings.key_prefix)
        self.users = UserStore(redis, self.keys, settings.dedupe_ttl_seconds)
        self.segments = SegmentStore(redis, self.keys)
        self.samples = SampleStore(redis, settings.key_prefix, settings.sketch_lg_k)
        self.registry = Registry(self.segments)
        self.lock = asyncio.Lock()
        self.zone = ZoneInfo(settings.timezone)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- inputs ---------------------------------------------------------------------------

    async def process(self, messages: Sequence[Message]) -> BatchReport:
        """Applies one batch. Returns after every effect is in Redis and Kafka, so the
        caller may then acknowledge the messages."""
        async with self.lock:
            now = self.now_ms()
            index = await self.registry.current()
            inputs: dict[str, list[tuple[Message, Event | ProfileUpdate]]] = defaultdict(list)
            partition_of: dict[str, int] = {}
            dead: list[DeadLetter] = []
            for msg in messages:
                metrics.EVENTS_CONSUMED.labels(msg.topic).inc()
                try:
                    item: Event | ProfileUpdate = (
                        parse_event(msg.value, now, self.settings.max_future_seconds * 1000)
                        if msg.topic == self.settings.topic_events
                        else parse_profile(msg.value, now, self.settings.max_future_seconds * 1000)
                    )
                except Invalid as exc:
                    dead.append(DeadLetter(msg, exc.reason, exc.detail))
                    continue
                inputs[item.user_id].append((msg, item))
                partition_of[item.user_id] = msg.partition
            if dead:
                await self.outputs.send_dead_letters(dead)
                for letter in dead:
                    metrics.DLQ_MESSAGES.labels(letter.reason).inc()
                    metrics.EVENTS_PROCESSED.labels(letter.message.topic, "invalid").inc()
            metrics.BATCH_SIZE.observe(len(messages))

            def work(user: UserState, idx: SegmentIndex) -> list[tuple[str, str]]:
                return self._apply_inputs(user, inputs[user.user_id], idx, now)

            lookups = [
                Lookup(uid, [i.event_id for _, i in items if isinstance(i, Event)])
                for uid, items in inputs.items()
            ]
            report = await self._run(lookups, partition_of, work, now)
            done = self.clock()
            for msg in messages:
                metrics.END_TO_END_LATENCY.observe(max(0.0, done - msg.timestamp_ms / 1000))
            event_ts = [i.ts_ms for items in inputs.values() for _, i in items if isinstance(i, Event)]
            if event_ts:
                metrics.EVENT_TIME_LAG.set(max(0.0, done - max(event_ts) / 1000))
            return report

    def _apply_inputs(self, user: UserState, items: list[tuple[Message, Event | ProfileUpdate]],
                      index: SegmentIndex, now: int) -> list[tuple[str, str]]:
        was_known = user.exists
        mask_before = user.mask
        forget_segments(user, index.segments.keys())
        touched: set[str] = set()
        profile_changed = False
        outcomes: list[tuple[str, str]] = []
        for msg, item in items:
            if isinstance(item, Event):
                if item.event_id in user.seen_event_ids:
                    outcomes.append((msg.topic, "duplicate"))
                    continue
                user.seen_event_ids.add(item.event_id)
                user.new_event_ids.append(item.event_id)
                touched |= apply_event(user, item, index, msg.timestamp_ms)
            elif apply_profile(user, item):
                profile_changed = True
            else:
                outcomes.append((msg.topic, "stale"))
                continue
            outcomes.append((msg.topic, "ok"))
        sids = index.ruled if (not was_known or profile_changed) else frozenset(touched)
        reevaluate(user, index, sids, now, mask_before)
        return outcomes

    # -- timers ---------------------------------------------------------------------------

    async def expire_due(self, partitions: Iterable[int], limit: int = 2000) -> int:
        """Re-evaluates users whose window content changed by now; returns how many."""
        async with self.lock:
            now = self.now_ms()
            index = await self.registry.current()
            partition_of: dict[str, int] = {}
            due_at: dict[str, int] = {}
            for p in partitions:
                rows = await self.redis.zrangebyscore(self.keys.due(p), "-inf", now, start=0, num=limit,
                                                      withscores=True)
                for uid, score in rows:
                    partition_of[uid] = p
                    due_at[uid] = int(score)
            if not partition_of:
                return 0

            def work(user: UserState, idx: SegmentIndex) -> list[tuple[str, str]]:
                forget_segments(user, idx.segments.keys())
                sids = (set(user.stored_aggs) | set(user.aggs)) & idx.ruled
                # Transitions are dated when the window moved, not when a (possibly
                # restarted) worker noticed, so the trend stays right across downtime.
                at = min(due_at[user.user_id], now)
                found = reevaluate(user, idx, sids, at if at > 0 else now)
                metrics.WINDOW_EXPIRIES.inc(sum(1 for t in found if t.op in (ENTER, EXIT)))
                return []

            await self._run([Lookup(uid) for uid in partition_of], partition_of, work, now)
            return len(partition_of)

    # -- the shared commit path -------------------------------------------------------------

    async def run_users(self, user_ids: Sequence[str], partition: int, work: Work) -> BatchReport:
        """For jobs: applies `work` to existing users under the engine lock."""
        async with self.lock:
            now = self.now_ms()
            return await self._run([Lookup(u) for u in user_ids], dict.fromkeys(user_ids, partition), work,
                                   now, only_existing=True)

    async def _run(self, lookups: list[Lookup], partition_of: dict[str, int], work: Work, now: int,
                   only_existing: bool = False) -> BatchReport:
        index = self.registry.index
        pending = {lk.user_id: lk for lk in lookups}
        applied: list[Applied] = []
        outcomes: list[tuple[str, str]] = []
        for _attempt in range(MAX_ATTEMPTS):
            if not pending:
                break
            users = await self.users.load(list(pending.values()))
            batch: list[tuple[UserState, dict[str, str], list[tuple[str, str]]]] = []
            for user in users:
                if only_existing and not user.exists:
                    pending.pop(user.user_id)
                    continue
                before = _identities(user)
                batch.append((user, before, work(user, index)))
            to_commit = [b for b in batch if _needs_commit(b[0])]
            results = await self.users.commit(u for u, _, _ in to_commit)
            committed = {id(u) for (u, _, _), ok in zip(to_commit, results, strict=True) if ok}
            for user, before, outs in batch:
                if id(user) in committed or not _needs_commit(user):
                    applied.append(Applied(user, partition_of[user.user_id], before))
                    outcomes.extend(outs)
                    pending.pop(user.user_id)
        if pending:
            raise RuntimeError(f"{len(pending)} users kept conflicting; the batch will be redelivered")
        for topic, outcome in outcomes:
            metrics.EVENTS_PROCESSED.labels(topic, outcome).inc()
        return await self._publish(applied, index, now)

    async def _publish(self, applied: list[Applied], index: SegmentIndex, now: int) -> BatchReport:
        report = BatchReport(users=len(applied), applied=[a.user for a in applied])
        fresh: list[tuple[str, str, Transition]] = []
        replayed: list[tuple[str, str, Transition]] = []
        for a in applied:
            for t in a.user.outbox:
                if t.op in (ENTER, EXIT):
                    fresh.append((a.user.user_id, "entered" if t.op == ENTER else "exited", t))
            for t in a.user.stale_outbox:
                if t.op in (ENTER, EXIT):
                    replayed.append((a.user.user_id, "entered" if t.op == ENTER else "exited", t))
        # Kafka first: a crash after this and before the member sets is repaired by the
        # outbox replay, at worst re-sending a message (at-least-once output).
        if fresh:
            await self.outputs.send_changes([self._change_record(u, c, t) for u, c, t in fresh])
        member_changes: dict[str, list[MemberChange]] = defaultdict(list)
        origin: dict[str, list[tuple[bool, str, str, Transition]]] = defaultdict(list)
        for is_fresh, rows in ((False, replayed), (True, fresh)):
            for uid, change, t in rows:
                if t.segment_id not in index.segments:
                    continue
                member_changes[t.segment_id].append(("1" if t.op == ENTER else "0", uid, self._day(t.at_ms)))
                origin[t.segment_id].append((is_fresh, uid, change, t))
        changed = await self.segments.apply_members(member_changes)
        recovered: list[tuple[str, str, Transition]] = []
        for sid, flags in changed.items():
            for (is_fresh, uid, change, t), flag in zip(origin[sid], flags, strict=True):
                if flag:
                    metrics.SEGMENT_TRANSITIONS.labels(sid, change).inc()
                    if not is_fresh:
                        recovered.append((uid, change, t))
                if is_fresh:
                    report.transitions.append((uid, change, t))
        if recovered:
            await self.outputs.send_changes([self._change_record(u, c, t) for u, c, t in recovered])
        await self._side_effects(applied, index, now, set(member_changes))
        return report

    async def _side_effects(self, applied: list[Applied], index: SegmentIndex, now: int,
                            touched_segments: set[str]) -> None:
        sample_changes: dict[str, list[tuple[str, int | None]]] = defaultdict(list)
        known: dict[int, list[str]] = defaultdict(list)
        pipe = self.redis.pipeline(transaction=False)
        for a in applied:
            user = a.user
            known[a.partition].append(user.user_id)
            for t in [*user.stale_outbox, *user.outbox]:
                if t.segment_id in index.segments:
                    sample_changes[t.segment_id].append((user.user_id, None if t.op == EXIT else t.mask))
            due = next_due_ms(user, index, now)
            if due is None:
                pipe.zrem(self.keys.due(a.partition), user.user_id)
            else:
                pipe.zadd(self.keys.due(a.partition), {user.user_id: due})
            after = _identities(user)
            for prop, value in a.identities_before.items():
                if after.get(prop) != value:
                    pipe.srem(self.keys.identity(prop, value), user.user_id)
            for prop, value in after.items():
                if a.identities_before.get(prop) != value:
                    pipe.sadd(self.keys.identity(prop, value), user.user_id)
        for partition, uids in known.items():
            pipe.sadd(self.keys.known(partition), *uids)
        sizes = sorted(touched_segments)
        for sid in sizes:
            pipe.scard(self.keys.members(sid))
        replies = await pipe.execute()
        for sid, size in zip(sizes, replies[len(replies) - len(sizes):], strict=True):
            metrics.SEGMENT_MEMBERS.labels(sid).set(size)
        if sample_changes:
            await self.samples.apply(sample_changes)

    def _day(self, at_ms: int) -> str:
        return datetime.fromtimestamp(at_ms / 1000, self.zone).date().isoformat()

    def _change_record(self, user_id: str, change: str, t: Transition) -> tuple[str, bytes]:
        ts = datetime.fromtimestamp(t.at_ms / 1000, ZoneInfo("UTC")).isoformat().replace("+00:00", "Z")
        value = {"segment_id": t.segment_id, "user_id": user_id, "change": change, "ts": ts}
        return user_id, json.dumps(value, separators=(",", ":")).encode()


def _needs_commit(user: UserState) -> bool:
    return bool(user.dirty or user.new_event_ids or user.outbox or user.stale_outbox)
