"""One user's state and how inputs move it: the pure heart of the engine.

The agents load a `UserState` from Redis, call the functions here, and write
back what `changed_fields` says. Keeping this free of I/O lets the exact
recount, the live path and the tests share one definition of membership.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from stream.ingest import Event, ProfileUpdate
from stream.rules import (
    Aggregate,
    Scalar,
    aggregates_from_json,
    aggregates_to_json,
    channel_mask,
    event_matches,
    fold,
    new_aggregate,
    next_change_ms,
    prune,
    reachability,
)
from stream.rules.jsonio import dumps, loads
from stream.segments import Segment, SegmentIndex

# Outbox operations: what the segment-side keys must still be told.
EXIT, ENTER, MASK = 0, 1, 2
AGG_PREFIX = "a:"
BACKFILL_PREFIX = "bf:"  # marks a segment's creation backfill as merged, so a re-run cannot add it twice


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
    aggs: dict[str, list[Aggregate]] = field(default_factory=dict)
    stale_outbox: list[Transition] = field(default_factory=list)
    backfilled: set[str] = field(default_factory=set)
    due_ms: int | None = None  # next instant a window moves membership ("n"; None: none pending)
    due_known: bool = False  # "n" was stored, so untouched segments need no recomputation
    # "zq": the last commit changed "n"; its timer write may have died with a worker,
    # so the next touch (a redelivery, after a crash) writes it again.
    timer_queued: bool = False
    seen_event_ids: set[str] = field(default_factory=set)
    new_event_ids: list[str] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)
    outbox: list[Transition] = field(default_factory=list)
    written: tuple[dict[str, str], list[str]] | None = None  # set by a successful commit, until settled
    stored: dict[str, str] | None = None  # the hash this state was loaded from (kept by a caching store)

    @property
    def mask(self) -> int:
        return channel_mask(reachability(self.profile, self.subscriptions))


def load_user(user_id: str, fields: dict[str, str]) -> UserState:
    """Decodes the hash written by `changed_fields`; an empty hash is a user never seen."""
    user = UserState(user_id=user_id, exists=bool(fields))
    if not fields:
        return user
    user.version = int(fields.get("v", "0"))
    user.profile = loads(fields["p"]) if "p" in fields else {}
    user.profile_ts = int(fields.get("pt", "-1"))
    user.subscriptions = loads(fields["s"]) if "s" in fields else {}
    user.blacklisted = fields.get("b") == "1"
    user.members = set(loads(fields["m"])) if "m" in fields else set()
    for name, value in fields.items():
        if name.startswith(AGG_PREFIX):
            user.stored_aggs[name[len(AGG_PREFIX) :]] = value
        elif name.startswith(BACKFILL_PREFIX):
            user.backfilled.add(name[len(BACKFILL_PREFIX) :])
    user.timer_queued = "zq" in fields
    if "n" in fields:
        user.due_known = True
        user.due_ms = None if fields["n"] == "-" else int(fields["n"])
    if "o" in fields:
        user.stale_outbox = [Transition.from_list(row) for row in loads(fields["o"])]
    return user


def aggregates_for(user: UserState, seg: Segment) -> list[Aggregate]:
    aggs = user.aggs.get(seg.id)
    if aggs is None:
        raw = user.stored_aggs.get(seg.id)
        aggs = aggregates_from_json(raw) if raw else [new_aggregate() for _ in seg.conditions]
        if len(aggs) != len(seg.conditions):  # a stale shape can only come from a replaced rule
            aggs = [new_aggregate() for _ in seg.conditions]
        user.aggs[seg.id] = aggs
    return aggs


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
                fold(cond, agg, event.ts_ms, event.props)
                touched.add(sid)
    for sid in touched:
        user.dirty.add(AGG_PREFIX + sid)
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
    user.dirty.update(("p", "pt", "s", "b"))
    return True


def reevaluate(user: UserState, index: SegmentIndex, sids: set[str] | frozenset[str], now_ms: int,
               mask_before: int | None = None) -> list[Transition]:
    """Re-decides membership for `sids` and queues the transitions in the outbox.

    When reachability changed (`mask_before` differs), segments the user stays
    in are told too, so their samples carry the new channel mask.
    """
    reach = reachability(user.profile, user.subscriptions)
    mask = channel_mask(reach)
    found: list[Transition] = []
    for sid in sorted(sids):
        seg = index.segments.get(sid)
        if seg is None or seg.decide is None:
            continue
        aggs = aggregates_for(user, seg)
        for cond, agg in zip(seg.conditions, aggs, strict=True):  # strict: also checks the shape for decide
            before = len(agg.entries)
            prune(cond, agg, now_ms)
            if len(agg.entries) != before:
                user.dirty.add(AGG_PREFIX + sid)
        member = seg.decide(user.profile, reach, aggs, now_ms)
        if member != (sid in user.members):
            found.append(Transition(sid, ENTER if member else EXIT, now_ms, mask))
            (user.members.add if member else user.members.discard)(sid)
    if mask_before is not None and mask_before != mask:
        changed = {t.segment_id for t in found}
        found.extend(Transition(sid, MASK, now_ms, mask) for sid in sorted(user.members - changed))
    if found:
        user.outbox.extend(found)
        user.dirty.add("m")
    return found


def forget_segments(user: UserState, live: AbstractSet[str]) -> None:
    """Drops memberships and aggregates of deleted segments without emitting transitions."""
    gone = {sid for sid in user.members if sid not in live}
    if gone:
        user.members -= gone
        user.dirty.add("m")
    for sid in [s for s in user.stored_aggs if s not in live]:
        user.stored_aggs.pop(sid)
        user.aggs.pop(sid, None)
        user.dirty.add(AGG_PREFIX + sid)
    for sid in [s for s in user.backfilled if s not in live]:
        user.backfilled.discard(sid)
        user.dirty.add(BACKFILL_PREFIX + sid)


def merge_backfill(user: UserState, seg: Segment, extra: list[Aggregate]) -> bool:
    """Adds a creation backfill's aggregates once; live and backfill events are disjoint
    (split by log-append time at the segment's handover), so adding is exact."""
    if seg.id in user.backfilled:
        return False
    aggs = aggregates_for(user, seg)
    for agg, more in zip(aggs, extra, strict=True):
        agg.count += more.count
        agg.total += more.total
        if more.entries:
            agg.entries = sorted(agg.entries + more.entries)
    user.backfilled.add(seg.id)
    user.dirty.update((AGG_PREFIX + seg.id, BACKFILL_PREFIX + seg.id))
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
        user.dirty.add("n")
    return due


def apply_commit(stored: dict[str, str], written: dict[str, str], deleted: list[str]) -> None:
    """What lua/user_commit.lua does to the hash, done to a copy a worker keeps."""
    stored.update(written)
    for name in deleted:
        stored.pop(name, None)
    stored["v"] = str(int(stored.get("v", "0")) + 1)


def changed_fields(user: UserState) -> tuple[dict[str, str], list[str]]:
    """What to HSET and HDEL: only dirty fields, so a hot user costs bytes, not kilobytes."""
    to_set: dict[str, str] = {}
    to_del: list[str] = []
    for name in sorted(user.dirty):
        if name.startswith(AGG_PREFIX):
            sid = name[len(AGG_PREFIX) :]
            aggs = user.aggs.get(sid)
            if aggs is None or all(a.count == 0 and not a.entries for a in aggs):
                to_del.append(name)
            else:
                to_set[name] = aggregates_to_json(aggs)
        elif name == "p":
            to_set["p"] = dumps(user.profile)
        elif name == "pt":
            to_set["pt"] = str(user.profile_ts)
        elif name == "s":
            to_set["s"] = dumps(user.subscriptions)
        elif name == "b":
            to_set["b"] = "1" if user.blacklisted else "0"
        elif name.startswith(BACKFILL_PREFIX):
            if name[len(BACKFILL_PREFIX) :] in user.backfilled:
                to_set[name] = "1"
            else:
                to_del.append(name)
        elif name == "n":
            to_set["n"] = "-" if user.due_ms is None else str(user.due_ms)
        elif name == "m":
            to_set["m"] = dumps(sorted(user.members))
    if "n" in user.dirty:
        to_set["zq"] = "1"
    elif user.timer_queued:
        to_del.append("zq")
    if user.outbox:
        to_set["o"] = dumps([t.to_list() for t in user.outbox])
    elif user.stale_outbox:
        to_del.append("o")
    return to_set, to_del
