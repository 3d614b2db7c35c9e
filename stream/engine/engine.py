"""The engine: batches of inputs in, committed per-user state and segment changes out.

Kafka-free on purpose: the Faust agent hands it `Message`s, the tests and
`stream.testing` do the same without a broker, and it talks to an
`EngineStore` (Redis, or dicts in unit tests). One asyncio lock serialises
event batches, window timers, replays and job chunks inside a worker, so they
never race on a user; the per-user compare-and-set only has zombies to fend
off. A batch returns only once every effect is stored (and acknowledged by
Redis replicas where there are any) and its resume points moved, so the
caller may then acknowledge the input (docs/DURABILITY.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence

from stream import metrics
from stream.config import Settings
from stream.engine.commit import CommitReport, Committer, Work
from stream.engine.definitions import Definitions
from stream.engine.resume import Gap, ResumePoints
from stream.ingest import Event, Invalid, Limits, ProfileUpdate, parse_event, parse_profile
from stream.membership import (
    ENTER,
    EXIT,
    UserState,
    apply_event,
    apply_profile,
    forget_segments,
    reevaluate,
    replay_due,
)
from stream.outputs import DeadLetter, Message, Outputs
from stream.segments import SegmentIndex
from stream.state.resp import RedisRestarted
from stream.state.store import EngineStore
from stream.state.userhash import dedupe_has, dedupe_token, forget_records
from stream.state.users import Lookup

Item = tuple[Message, Event | ProfileUpdate]


class Engine:
    def __init__(self, store: EngineStore, settings: Settings, outputs: Outputs,
                 clock: Callable[[], float] = time.time, writer: str = "engine") -> None:
        self.store = store
        self.settings = settings
        self.outputs = outputs
        self.clock = clock
        self.limits = Limits.from_settings(settings)
        self.definitions = Definitions(store)
        self.committer = Committer(store, outputs, settings.timezone, settings.partitions, settings.changelog)
        self.resume = ResumePoints(store, writer, (settings.topic_events, settings.topic_profiles))
        self.lock = asyncio.Lock()
        self._instance: str | None = None
        # How many Redis restarts (or failovers) a check noticed: a job part that spans one ran
        # partly on state the restart may have undone, so it runs again (JobRunner._run_part).
        self.restarts = 0

    async def _check_instance(self) -> None:
        """A Redis that restarted since the last step may have come back older: its resume
        points are compared before anything is applied on top of it."""
        now = await self.store.instance()
        if self._instance is not None and now != self._instance:
            self.restarts += 1
            self.store.drop_cache()
            await self.resume.reconcile()
        self._instance = now

    async def check_restart(self) -> None:
        """When a command was refused for reaching a restarted Redis, and no input arrives to
        start a step (which checks first): reconcile now, so timers and jobs go on."""
        if self.store.restart_seen():
            async with self.lock:
                await self._check_instance()

    async def durable(self) -> None:
        """Every write so far is as durable as Redis makes it (replicas acknowledged), and no
        Redis master restarted or failed over since the last check: otherwise some writes of
        this step may be gone although they were answered, and the step must run again."""
        await self.store.wait_durable()
        now = await self.store.instance()
        if self._instance is not None and now != self._instance:
            self.restarts += 1
            self.store.drop_cache()  # `_instance` stays: the step's retry reconciles first
            raise RedisRestarted(f"Redis restarted or failed over ({self._instance} -> {now}); "
                                 "doing the step again")
        self._instance = now

    async def close(self) -> None:
        await self.store.close()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- inputs ---------------------------------------------------------------------------

    async def process(self, messages: Sequence[Message], replay: bool = False) -> CommitReport:
        """Applies one batch; `replay` for a gap re-read from the log (no resume-point filter).

        Returns after every effect is stored and Kafka acknowledged it, so the caller may
        then acknowledge the messages. Gaps found on the way are in `resume.pending_gaps()`."""
        async with self.lock:
            now = self.now_ms()
            index = await self.definitions.current()
            for topic, count in Counter(msg.topic for msg in messages).items():
                metrics.EVENTS_CONSUMED.labels(topic).inc(count)
            positions: dict[tuple[int, str], int] = {}
            if not replay:
                await self._check_instance()  # before admitting: a restarted Redis may be behind us
            if replay:
                live = list(messages)
            else:
                live, skipped, positions = self.resume.admit(messages)
                if skipped:
                    metrics.EVENTS_PROCESSED.labels("any", "replayed").inc(skipped)
            inputs: dict[str, list[Item]] = defaultdict(list)
            partition_of: dict[str, int | None] = {}
            dead: list[DeadLetter] = []
            forgotten = 0
            for msg in live:
                try:
                    item: Event | ProfileUpdate = (
                        parse_event(msg.value, now, self.limits) if msg.topic == self.settings.topic_events
                        else parse_profile(msg.value, now, self.limits)
                    )
                except Invalid as exc:
                    dead.append(DeadLetter(msg, exc.reason, exc.detail))
                    continue
                gone_at = index.forgotten.get(item.user_id)
                if gone_at is not None and msg.timestamp_ms < gone_at:
                    forgotten += 1  # appended before the forget: never applied again
                    continue
                inputs[item.user_id].append((msg, item))
                partition_of[item.user_id] = msg.partition
            if forgotten:
                metrics.EVENTS_PROCESSED.labels("any", "forgotten").inc(forgotten)
            if dead:
                await self.outputs.send_dead_letters(dead)
                for letter in dead:
                    metrics.DLQ_MESSAGES.labels(letter.reason).inc()
                    metrics.EVENTS_PROCESSED.labels(letter.message.topic, "invalid").inc()
            metrics.BATCH_SIZE.observe(len(messages))

            def work(user: UserState, idx: SegmentIndex) -> list[tuple[str, str]]:
                return self._apply_inputs(user, inputs[user.user_id], idx, now, replay)

            lookups = [Lookup(uid) for uid in inputs]
            if replay:
                await self._check_instance()
            report = await self.committer.run(lookups, partition_of, work, index, now)
            await self.durable()
            if not replay:
                self.resume.advance(positions)
                await self.resume.persist({m.partition for m in messages})
            done = self.clock()
            for msg in live:
                metrics.END_TO_END_LATENCY.observe(max(0.0, done - msg.timestamp_ms / 1000))
            event_ts = [i.ts_ms for items in inputs.values() for _, i in items if isinstance(i, Event)]
            if event_ts:
                metrics.EVENT_TIME_LAG.set(max(0.0, done - max(event_ts) / 1000))
            return report

    def _apply_inputs(self, user: UserState, items: list[Item], index: SegmentIndex, now: int,
                      replay: bool = False) -> list[tuple[str, str]]:
        """Applies one user's items in order. A redelivered message (at or below the offset the
        user already applied) is skipped; a replayed gap is not filtered that way, since later
        messages may have been applied before it (a Redis that came back older): the dedupe
        window catches its events (it always holds the last commit's), and a profile update
        applied twice changes nothing."""
        was_known = user.exists
        mask_before = user.mask
        forget_segments(user, index.segments.keys())
        touched: set[str] = set()
        profile_changed = False
        outcomes: list[tuple[str, str]] = []
        events_topic = self.settings.topic_events
        for msg, item in items:
            applied_at = user.applied_events if msg.topic == events_topic else user.applied_profiles
            if msg.offset <= applied_at and not replay:  # redelivered: this user already has it
                outcomes.append((msg.topic, "duplicate"))
                continue
            if msg.topic == events_topic:
                user.applied_events = max(applied_at, msg.offset)
            else:
                user.applied_profiles = max(applied_at, msg.offset)
            user.dirty_applied = True
            if isinstance(item, Event):
                token = dedupe_token(item.event_id)
                if token in user.new_tokens or dedupe_has(user.dedupe, token):
                    outcomes.append((msg.topic, "duplicate"))
                    continue
                user.new_tokens[token] = None
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

    def pending_gaps(self) -> list[Gap]:
        return self.resume.pending_gaps()

    async def gap_replayed(self, gap: Gap) -> bool:
        """After a gap's messages went through `process(..., replay=True)`. True when the topic
        partition caught up: its resume point moves again and the stream applies it directly."""
        async with self.lock:
            await self.durable()
            closed = self.resume.replayed(gap)
            if closed:
                await self.resume.persist([gap.partition])
            return closed

    # -- timers ---------------------------------------------------------------------------

    async def expire_due(self, partitions: Iterable[int], limit: int = 2000) -> int:
        """Re-evaluates users whose window content changed by now; returns how many."""
        async with self.lock:
            now = self.now_ms()
            index = await self.definitions.current()
            partition_of: dict[str, int | None] = {}
            due_at: dict[str, int] = {}
            for uid, p, score in await self.store.due_users(list(partitions), now, limit):
                partition_of[uid] = p
                due_at[uid] = score
            if not partition_of:
                return 0

            def work(user: UserState, idx: SegmentIndex) -> list[tuple[str, str]]:
                forget_segments(user, idx.segments.keys())
                # The hash's `n` is committed with the aggregates it was computed from; the timer's
                # score is a side effect that can lag behind it. Replaying from a score older than
                # the state's last pruning measured pruned windows at earlier instants (a spurious
                # exit and entry, seen once the demo had a day-long window).
                first = user.due_ms if user.due_known else due_at[user.user_id]
                found = replay_due(user, idx, first, now)
                metrics.WINDOW_EXPIRIES.inc(sum(1 for t in found if t.op in (ENTER, EXIT)))
                return []

            await self.committer.run([Lookup(uid) for uid in partition_of], partition_of, work, index, now,
                                     due_changes=False)
            await self.durable()
            return len(partition_of)

    # -- jobs -------------------------------------------------------------------------------

    async def forget_user(self, user_id: str, partition: int, identities: Sequence[tuple[str, str]],
                          blocks: Sequence[str] = ()) -> None:
        """After a forget job ended the user's memberships: their state goes, and the changelog
        gets tombstones (the user's and each of its `blocks`') so a rebuild never brings them back."""
        async with self.lock:
            await self.store.delete_user(user_id, partition, identities)
            if self.settings.changelog:
                tombstones = forget_records(user_id, blocks)
                await self.outputs.send_changelog([(partition, key, value) for key, value in tombstones])
            await self.durable()

    async def run_users(self, user_ids: Sequence[str], partition: int | None, work: Work,
                        only_existing: bool = True) -> CommitReport:
        """For jobs: applies `work` to users under the engine lock. Users are read from the
        store, not the worker's cache: a job may tally what it reads without committing,
        and another process (the API's list upload) may have written them since."""
        async with self.lock:
            report = await self.committer.run([Lookup(u) for u in user_ids], dict.fromkeys(user_ids, partition),
                                              work, self.definitions.index, self.now_ms(),
                                              only_existing=only_existing, use_cache=False)
            await self.durable()
            return report
