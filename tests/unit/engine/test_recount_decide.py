"""The recount's quick decision (one HMGET row, no UserState) finds drift exactly where
`reevaluate` over the whole loaded user does, for any rule, stored state and instant."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.engine.recount import drift, rule_reads
from stream.membership import UserState, reevaluate
from stream.rules.model import Node
from stream.segments import SegmentIndex, make_segment
from stream.state.userhash import DECIDING, Deciding, agg_field, changed_fields, load_user, present
from tests.unit.rules.test_compiled import NOW, folded, values
from tests.unit.rules.test_properties import rules

pytestmark = pytest.mark.unit


@settings(max_examples=800, deadline=None)
@given(rule=rules, data=st.data())
def test_the_quick_decision_finds_the_drift_reevaluate_finds(rule: Node, data: st.DataObject) -> None:
    seg = make_segment("s-a", "a", "past_behavior", rule, NOW - 10**9, NOW - 10**9)
    index = SegmentIndex.build([seg])
    user = UserState("u1", exists=True, version=1)
    user.profile = data.draw(st.dictionaries(st.sampled_from(["city", "age", "vip", "email", "missing"]), values))
    user.subscriptions = data.draw(st.dictionaries(st.sampled_from(["email", "sms", "push"]), st.booleans()))
    user.blacklisted = data.draw(st.booleans())
    user.members = set(data.draw(st.frozensets(st.sampled_from(["s-a", "s-b", "s-c"]))))
    user.aggs[seg.id] = folded(rule, data)
    user.dirty_profile = user.dirty_members = True
    user.dirty_aggs.add(seg.id)
    to_set, _ = changed_fields(user)
    stored = {"v": "1", **to_set}
    names = [*DECIDING, agg_field(seg.id)]
    row = [stored.get(n) for n in names]
    now = NOW + data.draw(st.integers(-3 * 86_400_000, 3 * 86_400_000))
    quick = drift(seg, Deciding(dict(zip(names, row, strict=True))), now, rule_reads(seg))  # as the recount reads
    full = bool(reevaluate(load_user("u1", present(names, row)), index, {seg.id}, now))
    assert quick == full


@pytest.mark.parametrize(("stored", "sid", "member"), [
    ('["s-ab","s-b"]', "s-a", False), ('["s-a"]', "s-a", True), ('["s-ab", "s-a"]', "s-a", True), ("[]", "s-a", False),
    (None, "s-a", False), ('["x\\"y"]', 'x"y', True), ('["x\\"y"]', "y", False), (r'["\u00e9"]', "é", True),
    ('["é"]', "é", True),
])
def test_member_of_answers_as_the_decoded_list(stored: str | None, sid: str, member: bool) -> None:
    assert Deciding({"m": stored}).member_of(sid) is member
    view = Deciding({"m": stored})
    assert (sid in view.members()) is member and view.member_of(sid) is member
