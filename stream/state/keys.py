"""Every Redis key the product uses, in one place (layout and reasons: docs/STATE.md).

Nothing else builds key strings. Per-user keys carry the `{user_id}` hash tag,
per-segment keys the `{segment_id}` tag, per-partition keys `{p<n>}`; the
control plane (definitions, campaigns, keys, forgotten users, the control log's
applied offsets) shares one tag, and so do the jobs, so the few scripts and
transactions that touch several of those keys stay on one Redis Cluster slot.
No command or script touches two tags.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

IDENTITY_BUCKETS = 4096
# A segment's members are spread over this many small hashes (docs/STATE.md, "Member buckets"):
# at 1M members ~244 ids a bucket, inside the 512-entry listpack limit of deploy/redis/redis.conf.
MEMBER_BUCKETS = 4096


def member_bucket_number(uid: str) -> int:
    """CRC32 of the id, so a user sits in the same bucket number in every segment (an overlap
    compares bucket with bucket)."""
    return zlib.crc32(uid.encode()) % MEMBER_BUCKETS


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    # -- per user ----------------------------------------------------------------------------------

    def user(self, uid: str) -> str:
        return f"{self.prefix}u:{{{uid}}}"

    def identity(self, kind: str, value: str) -> str:
        """The bucket of the email/phone -> user ids index holding `value`, so list uploads
        resolve identities without a scan. Values share 4,096 buckets per kind: a key per
        value would cost ~200 bytes of key overhead per user."""
        bucket = zlib.crc32(value.encode()) % IDENTITY_BUCKETS
        return f"{self.prefix}id:{kind}:{{b{bucket}}}"

    # -- per partition -----------------------------------------------------------------------------

    def known(self, partition: int) -> str:
        return f"{self.prefix}known:{{p{partition}}}"

    def due(self, partition: int) -> str:
        return f"{self.prefix}due:{{p{partition}}}"

    def resume(self, partition: int) -> str:
        """Next input offset per topic whose effects are all in Redis (docs/DURABILITY.md)."""
        return f"{self.prefix}ofs:{{p{partition}}}"

    # -- per segment -------------------------------------------------------------------------------

    def member_bucket(self, sid: str, bucket: int) -> str:
        """One of the segment's MEMBER_BUCKETS hashes: member id -> "" (see `member_bucket_of`)."""
        return f"{self.prefix}seg:{{{sid}}}:m:{bucket}"

    def member_bucket_of(self, sid: str, uid: str) -> str:
        return self.member_bucket(sid, member_bucket_number(uid))

    def member_count(self, sid: str) -> str:
        """The exact number of members, moved by the script that moves them (lua/members_apply.lua)."""
        return f"{self.prefix}seg:{{{sid}}}:n"

    def trend(self, sid: str) -> str:
        return f"{self.prefix}seg:{{{sid}}}:trend"

    def exact(self, sid: str) -> str:
        return f"{self.prefix}seg:{{{sid}}}:exact"

    def sample(self, sid: str) -> tuple[str, str, str]:
        """The estimate sample: (entries ZSET, channel masks HASH, counters HASH)."""
        base = f"{self.prefix}sk:{{{sid}}}:"
        return base + "z", base + "m", base + "s"

    def sample_rebuild(self, sid: str, token: str) -> tuple[str, str, str]:
        base = f"{self.prefix}sk:{{{sid}}}:rebuild:{token}:"
        return base + "z", base + "m", base + "s"

    def segment_keys(self, sid: str) -> tuple[str, ...]:
        """Every key of a segment (its member buckets too), for deleting it."""
        return (self.member_count(sid), self.trend(sid), self.exact(sid), *self.sample(sid),
                *(self.member_bucket(sid, b) for b in range(MEMBER_BUCKETS)))

    # -- control plane: one slot -------------------------------------------------------------------

    @property
    def _ctl(self) -> str:
        return f"{self.prefix}{{ctl}}"

    @property
    def segments(self) -> str:
        """Hash segment id -> definition JSON."""
        return f"{self._ctl}:segments"

    @property
    def segments_version(self) -> str:
        return f"{self._ctl}:segments:version"

    @property
    def campaigns(self) -> str:
        return f"{self._ctl}:campaigns"

    @property
    def journeys(self) -> str:
        return f"{self._ctl}:journeys"

    @property
    def usage(self) -> str:
        """Hash `c:<sid>` / `j:<sid>` / `s:<sid>` -> campaigns, journeys, segments using sid."""
        return f"{self._ctl}:usage"

    @property
    def deleting(self) -> str:
        return f"{self._ctl}:deleting"

    @property
    def api_keys(self) -> str:
        """Hash key id -> key record JSON (name, scopes, sha256 of the secret)."""
        return f"{self._ctl}:apikeys"

    @property
    def forgotten(self) -> str:
        """Hash user id -> the log-append instant (ms) of the forget; older input is ignored."""
        return f"{self._ctl}:forgotten"

    @property
    def list_chunks(self) -> str:
        """Hash `<sid>:<chunk>` -> control-log offset, so a deleted list's chunks can be tombstoned."""
        return f"{self._ctl}:lists"

    @property
    def backfilled(self) -> str:
        """Hash segment id -> 1 once its creation backfill finished (logged, so a rebuild knows)."""
        return f"{self._ctl}:backfilled"

    @property
    def control_lock(self) -> str:
        """Serialises control writes that must check and write atomically (delete vs attach)."""
        return f"{self._ctl}:lock"

    @property
    def control_applied(self) -> str:
        """Hash control-log key -> offset of the record last applied to it (idempotent replay)."""
        return f"{self._ctl}:applied"

    @property
    def control_position(self) -> str:
        """The next control-log offset every record below which has been applied."""
        return f"{self._ctl}:position"

    @property
    def epoch(self) -> str:
        """Set once state exists; its absence with a non-empty log means Redis was lost."""
        return f"{self._ctl}:epoch"

    # -- jobs: one slot --------------------------------------------------------------------------

    @property
    def _jobs(self) -> str:
        return f"{self.prefix}{{jobs}}"

    def job(self, job_id: str) -> str:
        return f"{self._jobs}:job:{job_id}"

    def job_parts(self, job_id: str) -> str:
        return f"{self._jobs}:parts:{job_id}"

    def job_lock(self, job_id: str, partition: int) -> str:
        return f"{self._jobs}:lock:{job_id}:{partition}"

    @property
    def jobs_active(self) -> str:
        return f"{self._jobs}:active"

    @property
    def backfill_open(self) -> str:
        """The creation backfill still gathering segments created together (one shared scan)."""
        return f"{self._jobs}:backfill:open"

    def segment_job(self, sid: str, kind: str) -> str:
        return f"{self._jobs}:seg:{sid}:{kind}"

    # -- workers -----------------------------------------------------------------------------------

    @property
    def heartbeats(self) -> str:
        """Hash worker id -> JSON {partitions, at_ms}; entries older than 10 s are dead workers."""
        return f"{self.prefix}heartbeats"

    def watermark(self, tag: str) -> str:
        """A key on a chosen slot, written before WAIT so the wait covers every earlier write."""
        return f"{self.prefix}wm:{{{tag}}}"

    def pattern(self) -> str:
        """Matches every key of this prefix (tests and `stream rebuild --wipe`)."""
        return f"{self.prefix}*"
