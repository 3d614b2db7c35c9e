"""A compiled rule decides exactly what the walking evaluator decides."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.rules import CHANNELS, Aggregate, compile_rule, evaluate, event_conditions
from stream.rules.model import Node
from tests.unit.rules.test_properties import rules

pytestmark = pytest.mark.unit

NOW = 1_800_000_000_000
DAY = 86_400_000

values = st.one_of(st.none(), st.integers(-5, 50), st.sampled_from(["Pune", "Goa", "", "a@b.c"]), st.booleans())
aggregates = st.builds(
    Aggregate,
    count=st.integers(0, 4),
    total=st.integers(-4, 12).map(lambda v: v / 2),
    entries=st.lists(st.tuples(st.integers(NOW - 4 * DAY, NOW + 1000), st.integers(-3, 6).map(float)),
                     max_size=6).map(sorted),
)


@settings(max_examples=1500, deadline=None)
@given(rule=rules, data=st.data())
def test_compiled_equals_the_walking_evaluator(rule: Node, data: st.DataObject) -> None:
    profile = data.draw(st.dictionaries(st.sampled_from(["city", "age", "vip", "email", "missing"]), values))
    reach = data.draw(st.fixed_dictionaries({c: st.booleans() for c in CHANNELS}))
    aggs = [data.draw(aggregates) for _ in event_conditions(rule)]
    assert compile_rule(rule)(profile, reach, aggs, NOW) == evaluate(rule, profile, reach, aggs, NOW)
