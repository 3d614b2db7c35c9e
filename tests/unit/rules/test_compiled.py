"""A compiled rule decides exactly what the walking evaluator decides."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.rules import (
    CHANNELS,
    Aggregate,
    compile_rule,
    cond_matches,
    evaluate,
    fold,
    new_aggregate,
    stateful_conditions,
)
from stream.rules.model import Node
from tests.unit.rules.test_properties import rules

pytestmark = pytest.mark.unit

NOW = 1_800_000_000_000
DAY = 86_400_000

values = st.one_of(st.none(), st.integers(-5, 50), st.sampled_from(["Pune", "Goa", "", "a@b.c"]), st.booleans())
# Events over the last few days (and a little ahead), with the names and props the rule strategies use.
events = st.lists(st.tuples(
    st.sampled_from(["Charged", "Viewed", "Launched", "A", "B", "C", "E"]),
    st.integers(NOW - 4 * DAY, NOW + 1000),
    st.dictionaries(st.sampled_from(["amount", "category", "v", "p"]), values.filter(lambda v: v is not None)),
), max_size=8)


def folded(rule: Node, data: st.DataObject) -> list[Aggregate]:
    """The rule's aggregates after a drawn list of `events`."""
    conds = stateful_conditions(rule)
    aggs = [new_aggregate(c) for c in conds]
    for name, ts, props in data.draw(events):
        for cond, agg in zip(conds, aggs, strict=True):
            if cond_matches(cond, name, props):
                fold(cond, agg, ts, props, name)
    return aggs


@settings(max_examples=1500, deadline=None)
@given(rule=rules, data=st.data())
def test_compiled_equals_the_walking_evaluator(rule: Node, data: st.DataObject) -> None:
    profile = data.draw(st.dictionaries(st.sampled_from(["city", "age", "vip", "email", "missing"]), values))
    reach = data.draw(st.fixed_dictionaries({c: st.booleans() for c in CHANNELS}))
    members = data.draw(st.frozensets(st.sampled_from(["s-a", "s-b", "s-c"])))
    aggs = folded(rule, data)
    assert compile_rule(rule)(profile, reach, aggs, NOW, members) == evaluate(rule, profile, reach, aggs, NOW, members)


class Untouchable(list[Aggregate]):
    def __getitem__(self, i: object) -> Aggregate:  # type: ignore[override]
        raise AssertionError("an aggregate was read")


def test_conditions_without_events_are_tried_first_and_decide_alone() -> None:
    """"did X twice and city is Pune": outside Pune the verdict needs no aggregate (a recount
    then decodes none), and the aggregates keep their rule-order indexes for those inside."""
    from stream.rules import parse_rule

    rule = parse_rule({"all": [{"event": {"name": "X", "count": {"op": "gte", "value": 2}}},
                               {"any": [{"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
                                        {"in_segment": "s-vip"}]}]})
    decide = compile_rule(rule)
    assert decide({"city": "Goa"}, {}, Untouchable(), NOW, frozenset()) is False
    aggs = [new_aggregate(c) for c in stateful_conditions(rule)]
    for ts in (NOW - 2, NOW - 1):
        fold(stateful_conditions(rule)[0], aggs[0], ts, {}, "X")
    assert decide({"city": "Pune"}, {}, aggs, NOW, frozenset()) is True
    assert decide({"city": "Goa"}, {}, aggs, NOW, frozenset({"s-vip"})) is True
