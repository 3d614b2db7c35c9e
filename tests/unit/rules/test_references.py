"""in_segment references: inner segments rank before outer ones; paths name the node."""

from __future__ import annotations

import pytest

from stream.rules import dependency_order, parse_rule, reference_path

pytestmark = pytest.mark.unit


def test_inner_segments_rank_before_the_segments_that_use_them() -> None:
    uses = {"top": {"mid", "list"}, "mid": {"base"}, "base": set(), "list": set(), "alone": set()}
    rank = dependency_order(uses)
    assert rank["base"] < rank["mid"] < rank["top"] and rank["list"] < rank["top"]
    assert sorted(rank.values()) == list(range(5))


def test_a_stored_cycle_still_gets_ranks_instead_of_hanging() -> None:
    rank = dependency_order({"a": {"b"}, "b": {"a"}, "c": set()})
    assert rank["c"] == 0 and {rank["a"], rank["b"]} == {1, 2}


def test_the_path_of_a_reference_is_spelled_as_parse_errors_are() -> None:
    rule = parse_rule({"all": [{"reachable": "email"},
                               {"any": [{"in_segment": "s-1"}, {"not": {"in_segment": "s-2"}}]}]})
    assert reference_path(rule, "s-1") == "rule.all[1].any[0].in_segment"
    assert reference_path(rule, "s-2") == "rule.all[1].any[1].not.in_segment"
    assert reference_path(rule, "s-3") == ""
