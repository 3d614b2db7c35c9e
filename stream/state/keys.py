"""Every Redis key the product uses, in one place (layout and reasons: docs/STATE.md).

Per-user keys carry the `{user_id}` hash tag and per-segment keys the
`{segment_id}` tag, so every script touches one Redis Cluster slot.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

IDENTITY_BUCKETS = 4096


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    def user(self, uid: str) -> str:
        return f"{self.prefix}u:{{{uid}}}"

    def dedupe(self, uid: str) -> str:
        return f"{self.prefix}d:{{{uid}}}"

    def known(self, partition: int) -> str:
        return f"{self.prefix}known:{{p{partition}}}"

    def due(self, partition: int) -> str:
        return f"{self.prefix}due:{{p{partition}}}"

    def identity(self, kind: str, value: str) -> str:
        """The bucket of the email/phone -> user ids index holding `value`, so list uploads
        resolve identities without a scan. Values share 4,096 buckets per kind: a key per
        value would cost ~200 bytes of key overhead per user."""
        bucket = zlib.crc32(value.encode()) % IDENTITY_BUCKETS
        return f"{self.prefix}id:{kind}:{{b{bucket}}}"

    @property
    def segments(self) -> str:
        return f"{self.prefix}segments"

    @property
    def segments_version(self) -> str:
        return f"{self.prefix}segments:version"

    @property
    def segments_channel(self) -> str:
        return f"{self.prefix}segments:changed"

    def members(self, sid: str) -> str:
        return f"{self.prefix}seg:{{{sid}}}:members"

    def trend(self, sid: str) -> str:
        return f"{self.prefix}seg:{{{sid}}}:trend"

    def exact(self, sid: str) -> str:
        return f"{self.prefix}seg:{{{sid}}}:exact"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{{{job_id}}}"

    def job_parts(self, job_id: str) -> str:
        return f"{self.prefix}job:{{{job_id}}}:parts"

    def job_lock(self, job_id: str, partition: int) -> str:
        return f"{self.prefix}job:{{{job_id}}}:lock:{partition}"

    @property
    def jobs_active(self) -> str:
        return f"{self.prefix}jobs:active"

    def segment_job(self, sid: str, kind: str) -> str:
        return f"{self.prefix}seg:{{{sid}}}:job:{kind}"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self.prefix}heartbeat:{worker_id}"

    @property
    def heartbeats(self) -> str:
        return f"{self.prefix}heartbeats"
