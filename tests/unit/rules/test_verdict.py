"""`verdict_without_events`: when it answers, every user without counted events gets that answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.rules import CHANNELS, evaluate, new_aggregate, parse_rule, stateful_conditions, verdict_without_events
from stream.rules.model import Node
from tests.unit.rules.test_compiled import values
from tests.unit.rules.test_properties import rules

pytestmark = pytest.mark.unit


@settings(max_examples=1500, deadline=None)
@given(rule=rules, data=st.data())
def test_a_verdict_holds_for_every_profile_reach_membership_and_instant(rule: Node, data: st.DataObject) -> None:
    verdict = verdict_without_events(rule)
    aggs = [new_aggregate(c) for c in stateful_conditions(rule)]
    seen = set()
    for _ in range(8):
        profile = data.draw(st.dictionaries(st.sampled_from(["city", "age", "vip", "email", "missing"]), values))
        reach = data.draw(st.fixed_dictionaries({c: st.booleans() for c in CHANNELS}))
        members = data.draw(st.frozensets(st.sampled_from(["s-a", "s-b", "s-c"])))
        now = data.draw(st.integers(0, 4_000_000_000_000))
        decided = evaluate(rule, profile, reach, aggs, now, members)
        seen.add(decided)
        if verdict is not None:
            assert decided == verdict
    if len(seen) == 2:
        assert verdict is None  # the users decided differently: no verdict could have been given


@pytest.mark.parametrize(("rule", "verdict"), [
    ({"event": {"name": "Charged", "within_days": 30}}, False),
    ({"event": {"name": "Charged", "count": {"op": "lt", "value": 2}}}, True),
    ({"not": {"event": {"name": "Charged"}}}, True),
    ({"all": [{"profile": {"prop": "city", "op": "eq", "value": "Pune"}}, {"event": {"name": "Charged"}}]}, False),
    ({"any": [{"profile": {"prop": "city", "op": "eq", "value": "Pune"}}, {"event": {"name": "Charged"}}]}, None),
    ({"all": [{"reachable": "email"}, {"not": {"event": {"name": "Charged"}}}]}, None),
    ({"any": [{"in_segment": "s-x"}, {"not": {"event": {"name": "Charged"}}}]}, True),
    ({"sequence": {"steps": [{"name": "A"}, {"name": "B"}], "max_span": {"hours": 1}}}, False),
    ({"event": {"name": "Charged", "sum": {"prop": "amount", "op": "lte", "value": 0}}}, False),  # count >= 1
    ({"event": {"name": "Charged", "count": {"op": "gte", "value": 0}, "sum": {"prop": "amount", "op": "lte",
                                                                               "value": 0}}}, True),
    ({"event": {"name": "Charged", "count": {"op": "gte", "value": 0}, "min": {"prop": "amount", "op": "gt",
                                                                               "value": 0}}}, False),
])
def test_verdicts_of_rules_marketers_write(rule: dict[str, object], verdict: bool | None) -> None:
    assert verdict_without_events(parse_rule(rule)) is verdict
