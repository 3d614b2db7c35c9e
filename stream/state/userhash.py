"""The user hash `u:{uid}`: its field names, decoding, encoding, the commit's arguments.

The one home of the field letters: the engine, jobs, recount, export, lists,
the changelog and `stream rebuild` all read and write users through these
functions (table and reasons: docs/STATE.md). Short names because a field
name is stored once per user: at a million users every letter costs a MB.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from functools import cache

from stream.membership import Transition, UserState
from stream.rules import Scalar, aggregates_to_json
from stream.rules.jsonio import dumps, loads
from stream.rules.storage import block_ids, changed_blocks

VERSION = "v"
PROFILE = "p"
PROFILE_TS = "pt"
SUBSCRIPTIONS = "s"
BLACKLISTED = "b"
MEMBERS = "m"
DUE = "n"
TIMER_QUEUED = "zq"
OUTBOX = "o"
APPLIED_EVENTS = "qe"  # offset of the last `events` message applied to this user (its partition)
APPLIED_PROFILES = "qp"  # same for `profiles`
DEDUPE = "d"  # the newest event ids' tokens, TOKEN_LEN characters each, oldest first
AGG_PREFIX = "a:"
BLOCK_PREFIX = "ab:"  # ab:<sid>:<condition index>:<block id>, a heavy user's sealed entries
BACKFILL_PREFIX = "bf:"

# What a reader needs to tell whether a user is in a segment and reachable (recount, export).
DECIDING = (VERSION, PROFILE, SUBSCRIPTIONS, BLACKLISTED, MEMBERS)
# Transient fields the changelog leaves out: they only make sense next to Redis' other keys.
# The dedupe window leaves the changelog too: a rebuild gives it back from the events log, as
# that log holds the ids (~700 bytes a record otherwise).
TRANSIENT = frozenset((OUTBOX, TIMER_QUEUED, DEDUPE))

# The dedupe window: how many of a user's newest event ids the hash remembers. A redelivered
# message is recognised by its offset (`qe`), always; the window catches an app that sends one
# event twice (a retried request), which comes back within seconds, not 64 events later. 64
# tokens are 704 bytes, under the 1 KB listpack value limit (deploy/redis/redis.conf), so a
# light user's hash stays compact. A commit keeps all of its own tokens even past 64, so the ids
# of the last batch are always there (a replayed gap relies on that: DURABILITY.md).
DEDUPE_WINDOW = 64
TOKEN_LEN = 11


def dedupe_token(event_id: str) -> str:
    """A 64-bit hash of the event id, as 11 url-safe base64 characters.

    Fixed width, so the window is one string that `dedupe_has` searches at token
    boundaries. Two of one user's ids colliding within the window has odds
    near 64 / 2^64 per event.
    """
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return base64.urlsafe_b64encode(digest)[:TOKEN_LEN].decode()


def dedupe_has(window: str, token: str) -> bool:
    """Whether the stored window holds the token (at a token boundary, not straddling two)."""
    at = window.find(token)
    while at != -1:
        if at % TOKEN_LEN == 0:
            return True
        at = window.find(token, at + 1)
    return False


def dedupe_window(window: str, new: Iterable[str]) -> str:
    """The window after a commit: the newest DEDUPE_WINDOW tokens, or all of the commit's own."""
    added = "".join(new)
    keep = max(DEDUPE_WINDOW * TOKEN_LEN, len(added))
    joined = window + added
    return joined[-keep:] if len(joined) > keep else joined


def agg_field(sid: str) -> str:
    return AGG_PREFIX + sid


def backfill_field(sid: str) -> str:
    return BACKFILL_PREFIX + sid


def block_field(sid: str, condition: int, block: int) -> str:
    return f"{BLOCK_PREFIX}{sid}:{condition}:{block}"


def _is_block_of(name: str, sid: str) -> bool:
    head, _, rest = name.partition(BLOCK_PREFIX + sid + ":")
    ci, _, bid = rest.partition(":")
    return not head and ci.isdigit() and bid.isdigit()


def block_fields(sid: str, stored_agg: str) -> list[str]:
    """The block fields a stored `a:<sid>` names: a reader of that one field must read these too."""
    return [block_field(sid, ci, bid) for ci, bid in block_ids(stored_agg)]


@cache
def _quoted_id(sid: str) -> str | None:
    """How a plain id (ASCII, no quote, backslash or control character) appears in a stored
    JSON list: itself in quotes. None for any other id, whose JSON form may be escaped.
    Cached: a recount asks it of every user for the same segment."""
    plain = sid.isascii() and sid.isprintable() and '"' not in sid and "\\" not in sid
    return f'"{sid}"' if plain else None


class Deciding:
    """What deciding one segment reads of a user (a recount's HMGET row), decoded on demand: a
    recount needs the memberships and one segment's aggregates of every user, the profile only
    where the rule or the tally asks. Building a whole UserState for it was ~60% of a recount's
    Python per user (16 us against 7 us here)."""

    __slots__ = ("_members", "_profile", "fields")

    def __init__(self, fields: Mapping[str, str | None],
                 profile: dict[str, Scalar] | None = None) -> None:  # None or absent: missing
        """`profile`: the profile already decoded (a recount decodes a window's in one call)."""
        self.fields = fields
        self._members: set[str] | None = None
        self._profile = profile

    def members(self) -> set[str]:
        """Decoded once: the recount asks for them to decide and again to tally."""
        if self._members is None:
            raw = self.fields.get(MEMBERS)
            self._members = set(loads(raw)) if raw else set()
        return self._members

    def member_of(self, sid: str) -> bool:
        """`sid in members()`, without decoding a list that cannot hold it: the list is stored
        as JSON, where a plain id (ASCII, no quote, backslash or control character) is written
        as itself in quotes, so a text without that is a no. A recount asks this of every
        user, most of whom are not members (~0.4 us saved each)."""
        if self._members is None and (quoted := _quoted_id(sid)) is not None:
            raw = self.fields.get(MEMBERS)
            if not raw or quoted not in raw:
                return False
        return sid in self.members()

    def profile(self) -> dict[str, Scalar]:
        """Decoded once: a recount decides with it and tallies a member's with it again."""
        if self._profile is None:
            raw = self.fields.get(PROFILE)
            self._profile = loads(raw) if raw else {}
        return self._profile

    def subscriptions(self) -> dict[str, bool]:
        raw = self.fields.get(SUBSCRIPTIONS)
        return loads(raw) if raw else {}

    def blacklisted(self) -> bool:
        return self.fields.get(BLACKLISTED) == "1"

    def aggregates(self, sid: str) -> str | None:
        return self.fields.get(agg_field(sid))

    def block(self, sid: str, condition: int, block: int) -> str | None:
        return self.fields.get(block_field(sid, condition, block))


def load_user(user_id: str, fields: Mapping[str, str]) -> UserState:
    """Decodes a hash written through `changed_fields`; an empty hash is a user never seen."""
    user = UserState(user_id=user_id, exists=bool(fields))
    if not fields:
        return user
    view = Deciding(fields)  # one decoding of the deciding fields, the recount's too
    user.version = int(fields.get(VERSION, "0"))
    user.profile = view.profile()
    user.profile_ts = int(fields.get(PROFILE_TS, "-1"))
    user.subscriptions = view.subscriptions()
    user.blacklisted = view.blacklisted()
    user.members = view.members()
    user.applied_events = int(fields.get(APPLIED_EVENTS, "-1"))
    user.applied_profiles = int(fields.get(APPLIED_PROFILES, "-1"))
    user.dedupe = fields.get(DEDUPE, "")
    for name, value in fields.items():
        if name.startswith(BLOCK_PREFIX):  # first: a heavy user's ~195 blocks are most of its fields
            user.stored_blocks[name] = value
        elif name.startswith(AGG_PREFIX):
            user.stored_aggs[name[len(AGG_PREFIX):]] = value
        elif name.startswith(BACKFILL_PREFIX):
            user.backfilled.add(name[len(BACKFILL_PREFIX):])
    if user.stored_blocks:
        blocks = user.stored_blocks
        user.block_text = lambda sid, ci, bid: blocks.get(block_field(sid, ci, bid))
    user.timer_queued = TIMER_QUEUED in fields
    if DUE in fields:
        user.due_known = True
        user.due_ms = None if fields[DUE] == "-" else int(fields[DUE])
    if OUTBOX in fields:
        user.stale_outbox = [Transition.from_list(row) for row in loads(fields[OUTBOX])]
    return user


def changed_fields(user: UserState) -> tuple[dict[str, str], list[str]]:
    """What to HSET and HDEL: only what changed, so a hot user costs bytes, not kilobytes."""
    to_set: dict[str, str] = {}
    to_del: list[str] = []
    if user.dirty_profile:
        to_set[PROFILE] = dumps(user.profile)
        to_set[PROFILE_TS] = str(user.profile_ts)
        to_set[SUBSCRIPTIONS] = dumps(user.subscriptions)
        to_set[BLACKLISTED] = "1" if user.blacklisted else "0"
    for sid in sorted(user.dirty_aggs):
        aggs = user.aggs.get(sid)
        if aggs is None or all(a.empty for a in aggs):
            to_del.append(agg_field(sid))
            to_del += [name for name in user.stored_blocks if _is_block_of(name, sid)]
        else:
            to_set[agg_field(sid)] = aggregates_to_json(aggs)
            put, gone = changed_blocks(aggs)
            to_set.update((block_field(sid, ci, bid), text) for ci, bid, text in put)
            to_del += [block_field(sid, ci, bid) for ci, bid in gone]
            if sid in user.reset_aggs:  # the blocks of a replaced rule's aggregates go with them
                named = {block_field(sid, ci, b.id) for ci, agg in enumerate(aggs) for b in agg.blocks.items}
                to_del += sorted(n for n in user.stored_blocks if _is_block_of(n, sid) and n not in named)
    for sid in sorted(user.dirty_backfills):
        if sid in user.backfilled:
            to_set[backfill_field(sid)] = "1"
        else:
            to_del.append(backfill_field(sid))
    if user.dirty_members:
        to_set[MEMBERS] = dumps(sorted(user.members))
    if user.dirty_applied:
        to_set[APPLIED_EVENTS] = str(user.applied_events)
        to_set[APPLIED_PROFILES] = str(user.applied_profiles)
    if user.new_tokens:
        to_set[DEDUPE] = dedupe_window(user.dedupe, user.new_tokens)
    if user.dirty_due:
        to_set[DUE] = "-" if user.due_ms is None else str(user.due_ms)
        to_set[TIMER_QUEUED] = "1"
    elif user.timer_queued:
        to_del.append(TIMER_QUEUED)
    if user.outbox:
        to_set[OUTBOX] = dumps([t.to_list() for t in user.outbox])
    elif user.stale_outbox:
        to_del.append(OUTBOX)
    return to_set, to_del


def commit_args(user: UserState, written: tuple[dict[str, str], list[str]]) -> list[str | int]:
    """ARGV of lua/user_commit.lua: the version read, the HSET pairs, the HDEL names."""
    to_set, to_del = written
    args: list[str | int] = [user.version, len(to_set)]
    for name, value in to_set.items():
        args += [name, value]
    args += to_del
    return args


def apply_commit(stored: dict[str, str], written: Mapping[str, str], deleted: Iterable[str]) -> None:
    """What lua/user_commit.lua does to the hash, done to a copy a worker keeps."""
    stored.update(written)
    for name in deleted:
        stored.pop(name, None)
    stored[VERSION] = str(int(stored.get(VERSION, "0")) + 1)


def changelog_value(stored: Mapping[str, str]) -> bytes:
    """The user's durable state as the changelog records it: transient fields and blocks left
    out (each block is a record of its own, `changelog_records`)."""
    return dumps({k: v for k, v in stored.items() if k not in TRANSIENT and not k.startswith(BLOCK_PREFIX)}).encode()


# 0xFF never occurs in UTF-8, so a block's key can never be a user id's.
_BLOCK_KEY = b"\xff"


def block_key(user_id: str, name: str) -> bytes:
    return _BLOCK_KEY + user_id.encode() + _BLOCK_KEY + name.encode()


def parse_block_key(key: bytes) -> tuple[str, str] | None:
    """(user id, block field) of a block's changelog key; None for a user's key."""
    if not key.startswith(_BLOCK_KEY):
        return None
    uid, _, name = key[1:].rpartition(_BLOCK_KEY)
    return uid.decode(), name.decode()


def changelog_records(user_id: str, merged: Mapping[str, str], written: tuple[Mapping[str, str], Iterable[str]],
                      ) -> list[tuple[bytes, bytes | None]]:
    """A commit's changelog records: the user's hash without its blocks, and one record (or
    tombstone) per block the commit wrote (or deleted). A heavy user's window is ~195 blocks
    (810 KB): as part of one record it made every touch produce it all, and past 1 MiB the
    producer would refuse it. Compaction keeps each block's last record."""
    records: list[tuple[bytes, bytes | None]] = [(user_id.encode(), changelog_value(merged))]
    to_set, to_del = written
    records += [(block_key(user_id, n), v.encode()) for n, v in to_set.items() if n.startswith(BLOCK_PREFIX)]
    records += [(block_key(user_id, n), None) for n in to_del if n.startswith(BLOCK_PREFIX)]
    return records


def forget_records(user_id: str, blocks: Iterable[str]) -> list[tuple[bytes, None]]:
    """A forgotten user's tombstones: its hash's record and each of its blocks' (`stored_blocks`)."""
    return [(user_id.encode(), None), *((block_key(user_id, n), None) for n in blocks)]


def from_changelog(value: bytes) -> dict[str, str]:
    raw = loads(value)
    if not isinstance(raw, dict):
        raise ValueError("changelog value: expected a JSON object")
    return {str(k): str(v) for k, v in raw.items()}


def present(names: Iterable[str], values: Iterable[bytes | str | None]) -> dict[str, str]:
    """An HMGET's answer as the hash `load_user` decodes: the fields that exist, as text."""
    return {name: value.decode() if isinstance(value, bytes) else value
            for name, value in zip(names, values, strict=True) if value is not None}


def decode_hash(raw: Mapping[bytes | str, bytes | str] | Mapping[str, str]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }
