"""Member buckets: which key a member lives in, and the arguments of one members_apply call."""

from __future__ import annotations

import pytest

from stream.state.keys import MEMBER_BUCKETS, Keys, member_bucket_number
from stream.state.members import members_apply_call

pytestmark = pytest.mark.unit

K = Keys("ls:")


def test_a_user_has_the_same_bucket_number_in_every_segment() -> None:
    for uid in ("u1", "ünï", "x" * 200):
        b = member_bucket_number(uid)
        assert 0 <= b < MEMBER_BUCKETS
        assert K.member_bucket_of("s-a", uid) == K.member_bucket("s-a", b)
        assert K.member_bucket_of("s-b", uid) == K.member_bucket("s-b", b)


def test_buckets_spread_evenly() -> None:
    counts = [0] * MEMBER_BUCKETS
    for i in range(200_000):
        counts[member_bucket_number(f"u{i}")] += 1
    mean = 200_000 / MEMBER_BUCKETS
    assert max(counts) < 2 * mean and min(counts) > mean / 3


def test_one_call_names_each_bucket_once_and_points_each_change_at_its_key() -> None:
    changes = [("1", "ana", "2027-01-01"), ("0", "bo", "2027-01-01"), ("1", "ana", "2027-01-02")]
    script, keys, args = members_apply_call(K, "s-1", changes)
    script.check(keys, args)
    assert keys[:2] == [K.trend("s-1"), K.member_count("s-1")]
    assert len(keys) == 2 + len({member_bucket_number("ana"), member_bucket_number("bo")})
    quads = [args[i:i + 4] for i in range(0, len(args), 4)]
    for (op, uid, day), (a_op, at, a_uid, a_day) in zip(changes, quads, strict=True):
        assert (a_op, a_uid, a_day) == (op, uid, day)
        assert keys[int(at) - 1] == K.member_bucket_of("s-1", uid)  # 1-based, as KEYS in Lua


def test_a_script_with_a_variadic_key_list_still_checks_the_fixed_ones() -> None:
    script, _, _ = members_apply_call(K, "s-1", [])
    with pytest.raises(ValueError, match=r"members_apply\.lua takes keys"):
        script.check([K.trend("s-1")], [])
