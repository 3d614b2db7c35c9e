"""The engine: batches of inputs in, committed per-user state and segment changes out.

Kafka-free on purpose: the Faust agent hands it `Message`s, the tests and
`stream.testing` do the same without a broker. One asyncio lock serialises
event batches, window timers and job chunks inside a worker, so they never
race on a user; the per-user compare-and-set only has zombies to fend off.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence

from redis.asyncio import Redis

from stream import metrics
from stream.agents.registry import Registry
from stream.config import Settings
from stream.ingest import Event, Invalid, ProfileUpdate, parse_event, parse_profile
from stream.membership import (
    ENTER,
    EXIT,
    UserState,
    apply_event,
    apply_profile,
    forget_segments,
    next_due_ms,
    reevaluate,
)
from stream.outputs import DeadLetter, Message, Outputs
from stream.segments import SegmentIndex
from stream.state.commit import CommitReport, Committer, Work
from stream.state.keys import Keys
from stream.state.sample import SampleStore
from stream.state.segments import SegmentStore
from stream.state.users import Lookup, UserStore

MAX_REPLAYED_CHANGES = 1000  # per user per tick; the rest waits for the next tick


class Engine:
    def __init__(self, redis: Redis, settings: Settings, outputs: Outputs,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.settings = settings
        self.outputs = outputs
        self.clock = clock
        self.keys = Keys(settings.key_prefix)
        self.users = UserStore(redis, self.keys, settings.dedupe_ttl_seconds, settings.user_cache_size)
        self.segments = SegmentStore(redis, self.keys)
        self.samples = SampleStore(redis, settings.key_prefix, settings.sketch_lg_k)
        self.registry = Registry(self.segments)
        self.committer = Committer(redis, self.keys, self.users, self.segments, self.samples, outputs,
                                   settings.timezone)
        self.lock = asyncio.Lock()

    async def close(self) -> None:
        await self.users.close()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- inputs ---------------------------------------------------------------------------

    async def process(self, messages: Sequence[Message]) -> CommitReport:
        """Applies one batch. Returns after every effect is in Redis and Kafka, so the
        caller may then acknowledge the messages."""
        async with self.lock:
            now = self.now_ms()
            index = await self.registry.current()
            inputs: dict[str, list[tuple[Message, Event | ProfileUpdate]]] = defaultdict(list)
            partition_of: dict[str, int] = {}
            dead: list[DeadLetter] = []
            for topic, count in Counter(msg.topic for msg in messages).items():
                metrics.EVENTS_CONSUMED.labels(topic).inc(count)
            for msg in messages:
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
            report = await self.committer.run(lookups, dict(partition_of), work, index, now)
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
                for row in rows:
                    uid, score = str(row[0]), int(row[1])
                    partition_of[uid] = p
                    due_at[uid] = score
            if not partition_of:
                return 0

            def work(user: UserState, idx: SegmentIndex) -> list[tuple[str, str]]:
                forget_segments(user, idx.segments.keys())
                sids = (set(user.stored_aggs) | set(user.aggs)) & idx.ruled
                # Replays every window change that fell due, each dated when the window
                # moved rather than when a (possibly restarted) worker noticed, so the
                # trend stays right across downtime.
                at: int | None = due_at[user.user_id]
                steps = 0
                while at is not None and at <= now and steps < MAX_REPLAYED_CHANGES:
                    found = reevaluate(user, idx, sids, at)
                    metrics.WINDOW_EXPIRIES.inc(sum(1 for t in found if t.op in (ENTER, EXIT)))
                    at = next_due_ms(user, idx, at)
                    steps += 1
                reevaluate(user, idx, sids, now)
                return []

            await self.committer.run([Lookup(uid) for uid in partition_of], dict(partition_of), work, index, now)
            return len(partition_of)

    # -- jobs -------------------------------------------------------------------------------

    async def run_users(self, user_ids: Sequence[str], partition: int, work: Work,
                        only_existing: bool = True) -> CommitReport:
        """For jobs: applies `work` to users under the engine lock. Users are read from
        Redis, not the worker's cache: a job may tally what it reads without committing,
        and another process (the API's list upload) may have written them since."""
        async with self.lock:
            return await self.committer.run([Lookup(u) for u in user_ids], dict.fromkeys(user_ids, partition),
                                            work, self.registry.index, self.now_ms(), only_existing=only_existing,
                                            use_cache=False)
