"""The cluster rule, checked on the key names: keys that one script or transaction touches share a slot.

Redis Cluster refuses a script or MULTI whose keys hash to two slots
(CROSSSLOT). Every such group is named here with the keys the code passes
(scripts' KEYS, `atomic` transactions), and each must map to one slot for any
id, so a renamed key or a lost hash tag fails here instead of on a cluster.
"""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from stream.control.records import KINDS
from stream.state.jobs import JobKind
from stream.state.keys import Keys

pytestmark = pytest.mark.unit

K = Keys("ls:")
IDS = ["u-1", "s-9f3a", "j-0c1d2e3f4a5b", "weird{id", "x}y", "7", "ünï"]


def slots(*keys: str) -> set[int]:
    return {int(key_slot(k.encode())) for k in keys}


@pytest.mark.parametrize("i", IDS)
def test_a_segments_keys_share_a_slot(i: str) -> None:
    # members_apply.lua, sample_update.lua (live and rebuild keys), the sample
    # swap and read_trend transactions
    keys = [*K.segment_keys(i), K.member_bucket_of(i, "some-user"), *K.sample_rebuild(i, "t1")]
    assert len(slots(*keys)) == 1


def test_the_control_plane_shares_a_slot() -> None:  # control_apply.lua, load_index, catalog writes
    keys = [K.segments, K.segments_version, K.campaigns, K.journeys, K.usage, K.deleting, K.api_keys, K.forgotten,
            K.list_chunks, K.backfilled, K.control_lock, K.control_applied, K.control_position, K.epoch]
    keys += [spec.target(K) for spec in KINDS.values()]
    assert len(slots(*keys)) == 1


@pytest.mark.parametrize("i", IDS)
def test_jobs_share_a_slot(i: str) -> None:  # backfill_join.lua and the job transactions
    keys = [K.job(i), K.job_parts(i), K.job_lock(i, 3), K.jobs_active, K.backfill_open,
            *(K.segment_job(i, kind) for kind in JobKind)]
    assert len(slots(*keys)) == 1


def test_partition_and_identity_keys_are_tagged() -> None:
    """One slot per partition and per identity bucket: spread over the cluster, never split."""
    assert len(slots(*(K.known(p) for p in range(64)))) > 16
    for p in range(8):
        assert len(slots(K.known(p), K.due(p), K.resume(p))) == 1
    assert all("{b" in K.identity("email", f"a{n}@x") for n in range(10))


def test_users_spread_over_the_slots() -> None:
    assert len(slots(*(K.user(f"u-{n}") for n in range(2000)))) > 1500
