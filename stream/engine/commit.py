"""The one way user state changes reach the store, the segment side and Kafka.

Load -> caller's pure work -> compare-and-set commit (retrying conflicts) ->
segment-changes messages -> member sets and trend -> samples, timers, known
users, identity index -> changelog. The worker's events, timers and jobs use
it, and so do the API's list upload and the control plane's list replay, so
every membership change takes the same path.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
from aiokafka.partitioner import murmur2

from stream import metrics
from stream.membership import ENTER, EXIT, Transition, UserState, catch_up, update_due
from stream.outputs import ChangelogRecord, Outputs
from stream.segments import SegmentIndex
from stream.state.members import MemberChange
from stream.state.store import EngineStore, SideEffects
from stream.state.userhash import apply_commit, changelog_records
from stream.state.users import COMMITTED, Lookup

MAX_ATTEMPTS = 20
IDENTITY_PROPS = ("email", "phone")

# Pure work on a loaded user; returns (topic, outcome) pairs to count once committed.
Work = Callable[[UserState, SegmentIndex], list[tuple[str, str]]]


@dataclass
class Applied:
    user: UserState
    partition: int | None  # None: the caller does not know it (API); timers and known set untouched
    identities_before: dict[str, str]
    committed: bool = True


@dataclass
class CommitReport:
    applied: list[UserState] = field(default_factory=list)
    transitions: list[tuple[str, str, Transition]] = field(default_factory=list)  # (user, change, t)


def identities(user: UserState) -> dict[str, str]:
    return {p: str(user.profile[p]) for p in IDENTITY_PROPS if isinstance(user.profile.get(p), str)}


def needs_commit(user: UserState) -> bool:
    return bool(user.dirty or user.new_tokens or user.outbox or user.stale_outbox)


def net_replay(rows: list[tuple[str, Transition]]) -> list[tuple[str, Transition]]:
    """What of a stale outbox can be replayed: per (user, segment), the last row when the rows
    flip the member once (an odd count), nothing when they cancel out (an even count).

    A member set shows only the net effect of a commit's rows. An exit and an entry of one
    segment (a timer replay: out at one due instant, back in at the next) leave it as they
    found it whether or not they were applied, so replaying them row by row "changed" it twice
    and counted both again in the trend on every later touch. Only a net flip can be told
    lost (the set still holds the state before it); after a crash in that window, the rows
    between the first and the last of a group are missing from the trend, not double counted.
    """
    groups: dict[tuple[str, str], list[tuple[str, Transition]]] = defaultdict(list)
    for uid, t in rows:
        groups[uid, t.segment_id].append((uid, t))
    return [group[-1] for group in groups.values() if len(group) % 2 == 1]


def partition_for(user_id: str, partitions: int) -> int:
    """The input partition of a user: producers key by user_id with Kafka's default partitioner."""
    return int(murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


def change_name(t: Transition) -> str:
    return "entered" if t.op == ENTER else "exited"


async def together(*steps: Awaitable[None]) -> None:
    """Runs the steps at once; when one fails the others are cancelled and that first error
    is raised as it is (not wrapped in a group), so the caller's retry classifies it."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class Committer:
    def __init__(self, store: EngineStore, outputs: Outputs, timezone: str, partitions: int,
                 changelog: bool = True) -> None:
        self.store = store
        self.outputs = outputs
        self.zone = ZoneInfo(timezone)
        self.partitions = partitions
        self.changelog = changelog
        self._days: dict[int, str] = {}

    async def run(self, lookups: Sequence[Lookup], partition_of: dict[str, int | None], work: Work,
                  index: SegmentIndex, now: int, only_existing: bool = False,
                  use_cache: bool = True, due_changes: bool = True) -> CommitReport:
        """`due_changes=False` is the timer's: its work replays the due changes itself."""
        pending = {lk.user_id: lk for lk in lookups}
        applied: list[Applied] = []
        outcomes: list[tuple[str, str]] = []
        for _attempt in range(MAX_ATTEMPTS):
            if not pending:
                break
            users = await self.store.load_users(list(pending.values()), use_cache)
            batch: list[tuple[UserState, dict[str, str], list[tuple[str, str]]]] = []
            for user in users:
                if only_existing and not user.exists:
                    pending.pop(user.user_id)
                    continue
                before = identities(user)
                if due_changes:  # a window change no timer applied yet goes first (membership.catch_up)
                    found = catch_up(user, index, now)
                    metrics.WINDOW_EXPIRIES.inc(sum(1 for t in found if t.op in (ENTER, EXIT)))
                outs = work(user, index)
                update_due(user, index, now)
                batch.append((user, before, outs))
            to_commit = [u for u, _, _ in batch if needs_commit(u)]
            results = await self.store.commit_users(to_commit)
            committed = {id(u) for u, r in zip(to_commit, results, strict=True) if r == COMMITTED}
            for user, before, outs in batch:
                if id(user) in committed or not needs_commit(user):
                    applied.append(Applied(user, partition_of.get(user.user_id), before, id(user) in committed))
                    outcomes.extend(outs)
                    pending.pop(user.user_id)
        if pending:
            raise RuntimeError(f"{len(pending)} users kept conflicting; the batch will be redelivered")
        for (topic, outcome), count in Counter(outcomes).items():
            metrics.EVENTS_PROCESSED.labels(topic, outcome).inc(count)
        report = await self._publish(applied, index, now)
        for a in applied:
            if use_cache:  # a job sweeping every user would only push the hot ones out
                self.store.settle(a.user)
            else:
                a.user.stored = a.user.written = None
        return report

    async def _publish(self, applied: list[Applied], index: SegmentIndex, now: int) -> CommitReport:
        report = CommitReport(applied=[a.user for a in applied])
        fresh = [(a.user.user_id, t) for a in applied for t in a.user.outbox if t.op in (ENTER, EXIT)]
        replayed = net_replay([(a.user.user_id, t) for a in applied for t in a.user.stale_outbox
                               if t.op in (ENTER, EXIT)])
        counted: Counter[tuple[str, str]] = Counter()
        trend_records: list[tuple[str, bytes]] = []
        # A stale outbox (the last touch's transitions, kept in `o` until this touch) is applied
        # first: only the rows that still change a member set were lost by a crash or a Redis that
        # came back older, and only those are sent again. They go before this touch's own
        # transitions, so the topic's last word on each (segment, user) is the current one.
        recovered = [row for row, changed in await self._apply_members(replayed, index, counted, trend_records)
                     if changed]
        # Kafka first: a crash between this and the member sets is repaired by the outbox replay
        # on the user's next touch, at worst sending a message twice.
        if fresh or recovered:
            await self.outputs.send_changes([self.change_record(u, t) for u, t in (*recovered, *fresh)])
        await self._apply_members(fresh, index, counted, trend_records)
        report.transitions = [(uid, change_name(t), t) for uid, t in fresh if t.segment_id in index.segments]
        for (sid, change), count in counted.items():
            metrics.SEGMENT_TRANSITIONS.labels(sid, change).inc(count)
        touched = {t.segment_id for _, t in (*replayed, *fresh) if t.segment_id in index.segments}
        # The Redis side effects and the changelog (Kafka) do not depend on each other, and both
        # only have to be done before the input is acknowledged: one waits out the other's trip.
        if self.changelog:
            await together(self._side_effects(applied, index, touched), self._changelog(applied, trend_records))
        else:
            await self._side_effects(applied, index, touched)
        return report

    async def _apply_members(self, rows: list[tuple[str, Transition]], index: SegmentIndex,
                             counted: Counter[tuple[str, str]], trend_records: list[tuple[str, bytes]],
                             ) -> list[tuple[tuple[str, Transition], bool]]:
        """Member sets and day counters for `rows`; each row with whether it changed its set."""
        member_changes: dict[str, list[MemberChange]] = defaultdict(list)
        origin: dict[str, list[tuple[str, Transition]]] = defaultdict(list)
        for uid, t in rows:
            if t.segment_id in index.segments:
                member_changes[t.segment_id].append(("1" if t.op == ENTER else "0", uid, self.day(t.at_ms)))
                origin[t.segment_id].append((uid, t))
        if not member_changes:
            return []
        out: list[tuple[tuple[str, Transition], bool]] = []
        for sid, result in (await self.store.apply_members(member_changes)).items():
            for (uid, t), flag in zip(origin[sid], result.flags, strict=True):
                if flag:
                    counted[sid, change_name(t)] += 1
                out.append(((uid, t), bool(flag)))
            trend_records += [(f"{sid}:{day}", json.dumps({"e": e, "x": x}, separators=(",", ":")).encode())
                              for day, (e, x) in result.days.items()]
        return out

    async def _changelog(self, applied: list[Applied], trend_records: list[tuple[str, bytes]]) -> None:
        """The committed hashes, so an empty Redis can be rebuilt (docs/DURABILITY.md). After the
        Redis writes and before the input is acknowledged, like every other effect."""
        records: list[ChangelogRecord] = []
        for a in applied:
            user = a.user
            if user.written is None or user.stored is None:
                continue
            merged, written = user.stored, user.written
            apply_commit(merged, *written)
            user.written = None  # merged in place: settle caches `stored` as is
            partition = a.partition if a.partition is not None else partition_for(user.user_id, self.partitions)
            records += [(partition, key, value) for key, value in changelog_records(user.user_id, merged, written)]
        sends = [*([self.outputs.send_changelog(records)] if records else []),
                 *([self.outputs.send_trend(trend_records)] if trend_records else [])]
        await together(*sends)

    async def _side_effects(self, applied: list[Applied], index: SegmentIndex, touched_segments: set[str]) -> None:
        sample_changes: dict[str, list[tuple[str, int | None]]] = defaultdict(list)
        effects = SideEffects()
        for a in applied:
            user = a.user
            for t in [*user.stale_outbox, *user.outbox]:
                if t.segment_id in index.segments:
                    sample_changes[t.segment_id].append((user.user_id, None if t.op == EXIT else t.mask))
            if a.partition is not None and a.committed:
                effects.known.setdefault(a.partition, []).append(user.user_id)
            # Only a changed due (or one a crash may have lost) needs the timer set touched.
            if a.partition is not None and a.committed and (user.dirty_due or user.timer_queued):
                if user.due_ms is None:
                    effects.undue.setdefault(a.partition, []).append(user.user_id)
                else:
                    effects.due.setdefault(a.partition, {})[user.user_id] = user.due_ms
            after = identities(user)
            for prop, value in a.identities_before.items():
                if after.get(prop) != value:
                    effects.identity.append(("-", prop, value, user.user_id))
            for prop, value in after.items():
                if a.identities_before.get(prop) != value:
                    effects.identity.append(("+", prop, value, user.user_id))
        effects.sizes = sorted(touched_segments)
        sizes = await self.store.side_effects(effects)
        for sid, size in sizes.items():
            metrics.SEGMENT_MEMBERS.labels(sid).set(size)
        if sample_changes:
            await self.store.apply_samples(sample_changes)

    def day(self, at_ms: int) -> str:
        """Trend days follow the configured zone's midnights; memoised per minute, since today's
        offsets are whole minutes, so no minute straddles a midnight."""
        minute = at_ms // 60_000
        found = self._days.get(minute)
        if found is None:
            if len(self._days) > 4096:
                self._days.clear()
            found = self._days[minute] = datetime.fromtimestamp(at_ms / 1000, self.zone).date().isoformat()
        return found

    @staticmethod
    def change_record(user_id: str, t: Transition) -> tuple[str, bytes]:
        """orjson writes the instant as isoformat() does with "Z" for +00:00 (checked over 100,000
        random instants); the standard library takes what orjson refuses (lone surrogates)."""
        at = datetime.fromtimestamp(t.at_ms / 1000, UTC)
        value = {"segment_id": t.segment_id, "user_id": user_id, "change": change_name(t), "ts": at}
        try:
            return user_id, orjson.dumps(value, option=orjson.OPT_UTC_Z)
        except TypeError:
            value["ts"] = at.isoformat().replace("+00:00", "Z")
            return user_id, json.dumps(value, separators=(",", ":")).encode()
