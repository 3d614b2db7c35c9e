"""Explain: each node's value and evidence, and the instant time alone flips the verdict."""

from __future__ import annotations

import pytest

from stream.explain import explain_user
from stream.ingest import Event
from stream.membership import UserState, apply_event, reevaluate
from stream.rules import iso_ms as iso
from stream.rules import parse_rule
from stream.segments import SegmentIndex, make_segment

pytestmark = pytest.mark.unit
NOW = 1_800_000_000_000
HOUR, DAY = 3_600_000, 86_400_000

CART = {"all": [
    {"event": {"name": "AddToCart", "within_days": 1, "before": {"hours": 1}}},
    {"not": {"sequence": {"steps": [{"name": "AddToCart"}, {"name": "Charged"}], "max_span": {"hours": 1}}}},
]}


def build(**rules: dict[str, object] | None) -> SegmentIndex:
    return SegmentIndex.build(
        make_segment(sid, sid.upper(), "custom_list" if rule is None else "past_behavior",
                     None if rule is None else parse_rule(rule), NOW - 10 * DAY, NOW - 10 * DAY)
        for sid, rule in rules.items())


def feed(user: UserState, idx: SegmentIndex, *events: tuple[str, int], props: dict[str, object] | None = None,
         now: int = NOW) -> None:
    for i, (name, ts) in enumerate(events):
        apply_event(user, Event(f"e{len(user.new_tokens)}-{i}", user.user_id, name, ts, props or {}), idx,
                    appended_ms=NOW)
    reevaluate(user, idx, idx.ruled, now)


def test_an_abandoned_cart_enters_an_hour_after_the_add_and_leaves_a_day_after_it() -> None:
    idx = build(cart=CART)
    user = UserState("u")
    feed(user, idx, ("AddToCart", NOW - 10 * 60_000))
    out = explain_user(user, idx.segments["cart"], idx, NOW)
    assert (out["member"], out["matches"]) == (False, False)
    assert out["next_change_at"] == iso(NOW - 10 * 60_000 + HOUR)
    add, no_seq = out["rule"]["children"]
    assert (add["type"], add["value"], add["count"]) == ("event", False, 0)
    assert add["window"] == {"from": iso(NOW - DAY), "to": iso(NOW - HOUR)}
    assert no_seq["value"] is True and no_seq["children"][0]["found"] is None
    later = NOW + HOUR
    reevaluate(user, idx, idx.ruled, later)
    out = explain_user(user, idx.segments["cart"], idx, later)
    assert (out["member"], out["matches"]) == (True, True)
    assert out["next_change_at"] == iso(NOW - 10 * 60_000 + DAY)
    assert "did AddToCart between 1 day and 1 hour ago" in out["rule"]["summary"]


def test_a_purchase_within_the_hour_is_the_sequence_found() -> None:
    idx = build(cart=CART)
    user = UserState("u")
    feed(user, idx, ("AddToCart", NOW - 3 * HOUR), ("Charged", NOW - 3 * HOUR + 20 * 60_000))
    out = explain_user(user, idx.segments["cart"], idx, NOW)
    seq = out["rule"]["children"][1]["children"][0]
    assert seq["found"] == [iso(NOW - 3 * HOUR), iso(NOW - 3 * HOUR + 20 * 60_000)]
    assert out["matches"] is False and out["next_change_at"] is None  # the sequence has no time bound


def test_aggregates_are_the_evidence() -> None:
    idx = build(big={"event": {"name": "Charged", "avg": {"prop": "amount", "op": "gt", "value": 100},
                               "distinct": {"prop": "cat", "op": "gte", "value": 2}, "within": {"minutes": 30}}})
    user = UserState("u")
    feed(user, idx, ("Charged", NOW - 60_000), props={"amount": 150, "cat": "shoes"})
    feed(user, idx, ("Charged", NOW - 30_000), props={"amount": 90, "cat": "bags"})
    node = explain_user(user, idx.segments["big"], idx, NOW)["rule"]
    assert (node["count"], node["avg"], node["distinct"], node["value"]) == (2, 120.0, 2, True)


def test_in_segment_follows_the_inner_segment_through_time() -> None:
    idx = build(recent={"event": {"name": "Opened", "within": {"hours": 1}}},
                vip=None,
                outer={"all": [{"in_segment": "vip"}, {"not": {"in_segment": "recent"}}]})
    user = UserState("u")
    user.members.add("vip")
    feed(user, idx, ("Opened", NOW - 30 * 60_000))
    assert user.members == {"vip", "recent"}
    out = explain_user(user, idx.segments["outer"], idx, NOW)
    assert out["matches"] is False
    assert out["next_change_at"] == iso(NOW + 30 * 60_000)  # "recent" ends, so "outer" starts
    assert out["rule"]["summary"] == "in segment VIP, and not in segment RECENT"
    reevaluate(user, idx, {"recent"}, NOW + 30 * 60_000)  # the timer: the cascade moves outer too
    assert user.members == {"vip", "outer"}


def test_a_list_segment_is_explained_by_its_stored_membership() -> None:
    idx = build(vip=None)
    user = UserState("u", members={"vip"})
    assert explain_user(user, idx.segments["vip"], idx, NOW) == {
        "member": True, "matches": True, "next_change_at": None, "rule": None}
