"""One user's state and how inputs move it: the pure heart of the engine.

The agents load a `UserState` from Redis, call the functions here, and write
back what `changed_fields` says. Keeping this free of I/O lets the exact
recount, the live path and the tests share one definition of membership.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from stream.ingest import Event, ProfileUpdate
from stream.rules import (
    Aggregate,
    Scalar,
    aggregates_from_json,
    channel_mask,
    event_matches,
    fold,
    merge,
    new_aggregate,
    next_change_ms,
    prune,
    reachability,
)
from stream.segments import Segment, SegmentIndex

# Outbox operations: what the segment-side keys must still be told.
EXIT, ENTER, MASK = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Transition:
    segment_id: str
    op: int  # EXIT, ENTER or MASK (still a member, reachability changed)
    at_ms: int
    mask: int

    def to_list(self) -> list[object]:
        return [self.segment_id, self.op, self.at_ms, self.mask]

    @classmethod
    def from_list(cls, row: list[object]) -> Transition:
        sid, op, at_ms, mask = row
        return cls(str(sid), int(str(op)), int(str(at_ms)), int(str(mask)))


@dataclass(slots=True)
class UserState:
    user_id: str
    version: int = 0
    exists: bool = False
    profile: dict[str, Scalar] = field(default_factory=dict)
    profile_ts: int = -1
    subscriptions: dict[str, bool] = field(default_factory=dict)
    blacklisted: bool = False
    members: set[str] = field(default_factory=set)
    stored_aggs: dict[str, str] = field(default_factory=dict)
    # A heavy user's sealed blocks as stored (field name -> text), and how to find one by
    # (segment, condition index, block id): the state layer, which names the fields, sets it.
    stored_blocks: dict[str, str] = field(default_factory=dict)
    block_text: Callable[[str, int, int], str | None] | None = None
    reset_aggs: set[str] = field(default_factory=set)  # stored aggregates discarded (a replaced rule's)
    aggs: dict[str, list[Aggregate]] = field(default_factory=dict)
    stale_outbox: list[Transition] = field(default_factory=list)
    backfilled: set[str] = field(default_factory=set)
    due_ms: int | None = None  # next instant a window moves membership ("n"; None: none pending)
    due_known: bool = False  # "n" was stored, so untouched segments need no recomputation
    # "zq": the last commit changed "n"; its timer write may have died with a worker,
    # so the next touch (a redelivery, after a crash) writes it again.
    timer_queued: bool = False
    # Offsets of the last events/profiles message applied (the user's partition): a redelivered
    # message at or below them is already in this state, whatever happened to the dedupe window.
    applied_events: int = -1
    applied_profiles: int = -1
    # The dedupe window as stored ("d": the newest event ids' tokens, fixed width) and the
    # tokens of the events applied since load, in order (stream.state.userhash names both).
    dedupe: str = ""
    new_tokens: dict[str, None] = field(default_factory=dict)
    # What changed since load, by meaning; stream.state.userhash maps it to hash fields.
    dirty_profile: bool = False
    dirty_members: bool = False
    dirty_due: bool = False
    dirty_applied: bool = False
    dirty_aggs: set[str] = field(default_factory=set)
    dirty_backfills: set[str] = field(default_factory=set)
    outbox: list[Transition] = field(default_factory=list)
    written: tuple[dict[str, str], list[str]] | None = None  # set by a successful commit, until settled
    stored: dict[str, str] | None = None  # the hash this state was loaded from

    @property
    def dirty(self) -> bool:
        return bool(self.dirty_profile or self.dirty_members or self.dirty_due or self.dirty_applied
                    or self.dirty_aggs or self.dirty_backfills)

    @property
    def mask(self) -> int:
        return channel_mask(reachability(self.profile, self.subscriptions))


def aggregates_for(user: UserState, seg: Segment) -> list[Aggregate]:
    aggs = user.aggs.get(seg.id)
    if aggs is None:
        raw = user.stored_aggs.get(seg.id)
        try:
            find = user.block_text
            aggs = (aggregates_from_json(raw, seg.conditions,
                                         None if find is None else lambda ci, bid: find(seg.id, ci, bid))
                    if raw else fresh_aggregates(seg))
        except ValueError:  # a stale shape can only come from a replaced rule
            aggs = fresh_aggregates(seg)
            user.reset_aggs.add(seg.id)
        user.aggs[seg.id] = aggs
    return aggs


def fresh_aggregates(seg: Segment) -> list[Aggregate]:
    return [new_aggregate(c) for c in seg.conditions]


def apply_event(user: UserState, event: Event, index: SegmentIndex, appended_ms: int) -> set[str]:
    """Folds one (already deduplicated) event; returns the segments it touched.

    `appended_ms` is the Kafka log-append time: events appended before a
    segment's handover belong to its creation backfill, not to this path.
    """
    user.exists = True
    touched: set[str] = set()
    for sid in index.for_event(event.name):
        seg = index.segments[sid]
        if appended_ms < seg.handover_ms or not seg.counts(event.ts_ms):
            continue
        for cond, agg in zip(seg.conditions, aggregates_for(user, seg), strict=True):
            if event_matches(cond, event.name, event.props):
                fold(cond, agg, event.ts_ms, event.props, event.name)
                touched.add(sid)
    user.dirty_aggs |= touched
    return touched


def apply_profile(user: UserState, update: ProfileUpdate) -> bool:
    """Last write wins by `ts`, per update: an older update arriving late changes nothing."""
    user.exists = True
    if update.ts_ms < user.profile_ts:
        return False
    user.profile_ts = update.ts_ms
    user.profile.update(update.set)
    for prop in update.unset:
        user.profile.pop(prop, None)
    user.subscriptions.update(update.subscriptions)
    if update.blacklisted is not None:
        user.blacklisted = update.blacklisted
    user.dirty_profile = True
    return True


def reevaluate(user: UserState, index: SegmentIndex, sids: set[str] | frozenset[str], now_ms: int,
               mask_before: int | None = None) -> list[Transition]:
    """Re-decides membership for `sids` and queues the transitions in the outbox.

    Segments are decided inner first (`in_segment` dependency order), and a
    segment whose membership moved brings the segments that use it into the
    same pass, so an outer segment follows its inner one in the same commit
    whatever moved it (an event, time, a recount fix; uploads and forgets call
    `cascade`). When reachability changed (`mask_before` differs), segments the
    user stays in are told too, so their samples carry the new channel mask.
    """
    reach = reachability(user.profile, user.subscriptions)
    mask = channel_mask(reach)
    found: list[Transition] = []
    used_by, rank = index.used_by, index.rank
    queue = [(rank.get(sid, -1), sid) for sid in sids]
    heapq.heapify(queue)
    queued = set(sids)
    while queue:
        _, sid = heapq.heappop(queue)
        seg = index.segments.get(sid)
        if seg is None or seg.decide is None:
            continue
        aggs = aggregates_for(user, seg)
        for cond, agg in zip(seg.conditions, aggs, strict=True):  # strict: also checks the shape for decide
            before = agg.shape
            prune(cond, agg, now_ms)
            if agg.shape != before:
                user.dirty_aggs.add(sid)
        member = seg.decide(user.profile, reach, aggs, now_ms, user.members)
        if member != (sid in user.members):
            found.append(Transition(sid, ENTER if member else EXIT, now_ms, mask))
            (user.members.add if member else user.members.discard)(sid)
            for outer in used_by.get(sid, ()):
                if outer not in queued:
                    queued.add(outer)
                    heapq.heappush(queue, (rank.get(outer, -1), outer))
    if mask_before is not None and mask_before != mask:
        changed = {t.segment_id for t in found}
        found.extend(Transition(sid, MASK, now_ms, mask) for sid in sorted(user.members - changed))
    if found:
        user.outbox.extend(found)
        user.dirty_members = True
    return found


def cascade(user: UserState, index: SegmentIndex, changed: set[str] | frozenset[str], now_ms: int) -> list[Transition]:
    """After memberships of `changed` moved outside `reevaluate` (a list upload): the segments
    that use them are decided again, in dependency order."""
    outer: set[str] = set()
    for sid in changed:
        outer |= index.used_by.get(sid, frozenset())
    return reevaluate(user, index, outer, now_ms) if outer else []


def forget_segments(user: UserState, live: AbstractSet[str]) -> None:
    """Drops memberships and aggregates of deleted segments without emitting transitions."""
    gone = {sid for sid in user.members if sid not in live}
    if gone:
        user.members -= gone
        user.dirty_members = True
    for sid in [s for s in user.stored_aggs if s not in live]:
        user.stored_aggs.pop(sid)
        user.aggs.pop(sid, None)
        user.dirty_aggs.add(sid)
    for sid in [s for s in user.backfilled if s not in live]:
        user.backfilled.discard(sid)
        user.dirty_backfills.add(sid)


def merge_backfill(user: UserState, seg: Segment, extra: list[Aggregate]) -> bool:
    """Adds a creation backfill's aggregates once; live and backfill events are disjoint
    (split by log-append time at the segment's handover), so adding is exact."""
    if seg.id in user.backfilled:
        return False
    if seg.id in user.aggs or seg.id in user.stored_aggs:
        for cond, agg, more in zip(seg.conditions, aggregates_for(user, seg), extra, strict=True):
            merge(cond, agg, more)
    else:  # nothing live to add to: merging into fresh aggregates would only copy these
        if len(extra) != len(seg.conditions):
            raise ValueError(f"{seg.id}: {len(extra)} aggregates for {len(seg.conditions)} conditions")
        user.aggs[seg.id] = extra
    user.backfilled.add(seg.id)
    user.dirty_aggs.add(seg.id)
    user.dirty_backfills.add(seg.id)
    return True


def next_due_ms(user: UserState, index: SegmentIndex, now_ms: int) -> int | None:
    """The earliest instant a window moves this user's membership with no new input."""
    due: int | None = None
    for sid in set(user.stored_aggs) | set(user.aggs):
        seg = index.segments.get(sid)
        if seg is None or seg.rule is None or not seg.windowed:
            continue
        at = next_change_ms(seg.rule, aggregates_for(user, seg), now_ms, seg.conditions)
        if at is not None and (due is None or at < due):
            due = at
    return due


MAX_REPLAYED_CHANGES = 1000  # per user and touch; the rest waits for the next one


def replay_due(user: UserState, index: SegmentIndex, first_due_ms: int | None, now_ms: int) -> list[Transition]:
    """Applies every window change that fell due by `now_ms`, each at its own instant, then
    decides the user's windowed segments at `now_ms`; returns the transitions of the replay.
    The timer's path: each change is dated when the window moved rather than when a (possibly
    restarted) worker noticed, so the trend stays right across downtime."""
    if first_due_ms is None or first_due_ms > now_ms:
        return []
    sids = (set(user.stored_aggs) | set(user.aggs)) & index.ruled
    found: list[Transition] = []
    at: int | None = first_due_ms
    steps = 0
    while at is not None and at <= now_ms and steps < MAX_REPLAYED_CHANGES:
        found += reevaluate(user, index, sids, at)
        at = next_due_ms(user, index, at)
        steps += 1
    reevaluate(user, index, sids, now_ms)
    return found


def catch_up(user: UserState, index: SegmentIndex, now_ms: int) -> list[Transition]:
    """Before a touch that is not the timer's: if a window change fell due (stored `n` at or
    before now) and no timer round applied it yet, decides the user's windowed segments now.

    Without this, a touch between a due instant and the timer round that would apply it (an
    event within the timer interval, a job, an upload; the demo's hour-long rounds) decided
    only its own segments, and `update_due` then recomputed the next due from now: the change
    no one applied was lost for good. Decided at now, not replayed at each due instant: the
    state may already be pruned past those instants (replaying from a stale `n` gave a
    spurious exit and entry), so only the timer, whose score is the instant itself, replays.
    """
    if not user.due_known or user.due_ms is None or user.due_ms > now_ms:
        return []
    return reevaluate(user, index, (set(user.stored_aggs) | set(user.aggs)) & index.ruled, now_ms)


def update_due(user: UserState, index: SegmentIndex, now_ms: int) -> int | None:
    """Keeps `due_ms` right while decoding only the segments this touch decoded anyway.

    New events only add change points and pruning only drops past ones, so a
    stored due still in the future stays a change point (at worst a harmless
    early wake-up) and only the touched segments can bring it forward.
    """
    if not user.due_known or (user.due_ms is not None and user.due_ms <= now_ms):
        due = next_due_ms(user, index, now_ms)
    else:
        due = user.due_ms
        for sid, aggs in user.aggs.items():
            seg = index.segments.get(sid)
            if seg is None or seg.rule is None or not seg.windowed:
                continue
            at = next_change_ms(seg.rule, aggs, now_ms, seg.conditions)
            if at is not None and (due is None or at < due):
                due = at
    if due != user.due_ms or not user.due_known:
        user.due_ms, user.due_known = due, True
        user.dirty_due = True
    return due
