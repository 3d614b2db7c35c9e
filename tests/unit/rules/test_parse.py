"""Rule and segment validation: every rejection names the path of the bad part."""

from __future__ import annotations

import json
import math

import pytest

from stream.rules import (
    MAX_DEPTH,
    AggTest,
    All,
    AnyOf,
    Bounds,
    Comparison,
    Duration,
    EventCond,
    Not,
    ProfileCond,
    PropFilter,
    Reachable,
    RuleError,
    SegmentSpec,
    parse_rule,
    parse_segment,
    rule_to_json,
)

pytestmark = pytest.mark.unit

DESIGN_EXAMPLE = {
    "all": [
        {"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
        {
            "event": {
                "name": "Charged",
                "where": [{"prop": "category", "op": "eq", "value": "shoes"}],
                "count": {"op": "gte", "value": 2},
                "within_days": 30,
            }
        },
        {"not": {"event": {"name": "Uninstalled", "within_days": 7}}},
    ]
}


def ev(name: str = "E", **kw: object) -> dict[str, object]:
    return {"event": {"name": name, **kw}}


def prof(op: str, value: object = None, *, with_value: bool = True) -> dict[str, object]:
    body: dict[str, object] = {"prop": "p", "op": op}
    if with_value:
        body["value"] = value
    return {"profile": body}


def test_design_example_parses_to_the_expected_tree() -> None:
    assert parse_rule(DESIGN_EXAMPLE) == All(
        (
            ProfileCond("city", "eq", "Pune"),
            EventCond("Charged", (PropFilter("category", "eq", "shoes"),), Comparison("gte", 2),
                          bounds=Bounds(within=Duration("days", 30))),
            Not(EventCond("Uninstalled", (), Comparison("gte", 1), bounds=Bounds(within=Duration("days", 7)))),
        )
    )


def test_count_defaults_to_at_least_once() -> None:
    node = parse_rule(ev())
    assert isinstance(node, EventCond)
    assert node.count == Comparison("gte", 1)
    assert node.where == ()
    assert node.sum is None
    assert node.within_days is None


def test_optional_event_fields_accept_null_as_absent() -> None:
    assert parse_rule(ev(where=None, count=None, sum=None, within_days=None)) == parse_rule(ev())


def test_full_event_condition() -> None:
    node = parse_rule(
        ev(
            "Charged",
            where=[{"prop": "amount", "op": "gt", "value": 10}, {"prop": "coupon", "op": "exists"}],
            count={"op": "lt", "value": 3.0},
            sum={"prop": "amount", "op": "gte", "value": 500.5},
            within_days=0.5,
        )
    )
    assert node == EventCond(
        "Charged",
        (PropFilter("amount", "gt", 10), PropFilter("coupon", "exists", None)),
        Comparison("lt", 3),
        (AggTest("sum", "amount", "gte", 500.5),),
        Bounds(within=Duration("days", 0.5)),
    )
    assert isinstance(node, EventCond)
    assert type(node.count.value) is int


VALID: list[tuple[object, object]] = [
    ({"any": [{"reachable": "sms"}]}, AnyOf((Reachable("sms"),))),
    ({"not": {"reachable": "web_push"}}, Not(Reachable("web_push"))),
    (prof("in", ["a", 1, 2.5, True]), ProfileCond("p", "in", ("a", 1, 2.5, True))),
    (prof("not_in", ["a"]), ProfileCond("p", "not_in", ("a",))),
    (prof("exists", with_value=False), ProfileCond("p", "exists", None)),
    (prof("not_exists", None), ProfileCond("p", "not_exists", None)),
    (prof("contains", ""), ProfileCond("p", "contains", "")),
    (prof("eq", False), ProfileCond("p", "eq", False)),
    (prof("neq", -1.5), ProfileCond("p", "neq", -1.5)),
    (prof("gte", "m"), ProfileCond("p", "gte", "m")),
    (prof("lt", 10**30), ProfileCond("p", "lt", 10**30)),
    (ev(count={"op": "eq", "value": 0}), EventCond("E", (), Comparison("eq", 0))),
    (
        ev(sum={"prop": "a", "op": "lt", "value": -5}),
        EventCond("E", (), Comparison("gte", 1), (AggTest("sum", "a", "lt", -5),)),
    ),
    (ev(within_days=3650), EventCond("E", (), Comparison("gte", 1), bounds=Bounds(within=Duration("days", 3650)))),
    (ev(where=[]), EventCond("E", (), Comparison("gte", 1))),
]


@pytest.mark.parametrize(("rule", "expected"), VALID)
def test_valid_rules(rule: object, expected: object) -> None:
    assert parse_rule(rule) == expected


NAN = math.nan
BAD: list[tuple[object, str, str]] = [
    # node shape
    ("x", "rule", "exactly one of"),
    (None, "rule", "got null"),
    ([], "rule", "got an empty list"),
    ([ev()], "rule", "got list"),
    ({}, "rule", "an empty object"),
    ({"all": [ev()], "any": [ev()]}, "rule", "keys all, any"),
    ({"and": [ev()]}, "rule.and", "unknown condition"),
    ({"all": []}, "rule.all", "non-empty list"),
    ({"any": []}, "rule.any", "non-empty list"),
    ({"all": ev()}, "rule.all", "non-empty list"),
    ({"any": "x"}, "rule.any", "got str"),
    ({"not": []}, "rule.not", "exactly one of"),
    ({"not": None}, "rule.not", "exactly one of"),
    ({"all": [ev(), {"any": [ev(), {"nope": 1}]}]}, "rule.all[1].any[1].nope", "unknown condition"),
    # profile
    ({"profile": "city"}, "rule.profile", "expected an object"),
    ({"profile": {"op": "eq", "value": 1}}, "rule.profile.prop", "non-empty string"),
    ({"profile": {"prop": "", "op": "eq", "value": 1}}, "rule.profile.prop", "non-empty string"),
    ({"profile": {"prop": 3, "op": "eq", "value": 1}}, "rule.profile.prop", "non-empty string"),
    ({"profile": {"prop": "p", "value": 1}}, "rule.profile.op", "unknown operator None"),
    (prof("like", "x"), "rule.profile.op", "unknown operator 'like'"),
    (prof("EQ", "x"), "rule.profile.op", "unknown operator 'EQ'"),
    ({"profile": {"prop": "p", "op": "eq", "value": 1, "extra": 2}}, "rule.profile.extra", "unknown field"),
    (prof("eq", with_value=False), "rule.profile.value", "needs a value"),
    (prof("eq", None), "rule.profile.value", "needs a value"),
    (prof("eq", [1]), "rule.profile.value", "string, number or boolean"),
    (prof("neq", {"a": 1}), "rule.profile.value", "string, number or boolean"),
    (prof("eq", NAN), "rule.profile.value", "string, number or boolean"),
    (prof("gt", True), "rule.profile.value", "number or a string"),
    (prof("gte", [1]), "rule.profile.value", "number or a string"),
    (prof("lt", None), "rule.profile.value", "needs a value"),
    (prof("lte", math.inf), "rule.profile.value", "number or a string"),
    (prof("in", "abc"), "rule.profile.value", "non-empty list"),
    (prof("in", []), "rule.profile.value", "non-empty list"),
    (prof("not_in", ["a", None]), "rule.profile.value[1]", "got null"),
    (prof("in", ["a", ["b"]]), "rule.profile.value[1]", "got list"),
    (prof("contains", 1), "rule.profile.value", "needs a string"),
    (prof("contains", True), "rule.profile.value", "needs a string"),
    (prof("exists", "x"), "rule.profile.value", "takes no value"),
    (prof("not_exists", False), "rule.profile.value", "takes no value"),
    # event
    ({"event": []}, "rule.event", "expected an object"),
    ({"event": {}}, "rule.event.name", "non-empty string"),
    (ev(""), "rule.event.name", "non-empty string"),
    (ev("   "), "rule.event.name", "non-empty string"),
    ({"event": {"name": 5}}, "rule.event.name", "non-empty string"),
    (ev(within=3), "rule.event.within", "exactly one of minutes, hours, days"),
    (ev(withn_days=3), "rule.event.withn_days", "unknown field"),
    # rules v2: durations, ranges, aggregates, sequences, in_segment
    (ev(within={"weeks": 2}), "rule.event.within.weeks", "unknown unit"),
    (ev(within={"hours": 1, "days": 1}), "rule.event.within", "exactly one of"),
    (ev(within={"hours": 1.5}), "rule.event.within.hours", "positive integer"),
    (ev(within={"minutes": 0}), "rule.event.within.minutes", "positive integer"),
    (ev(within={"days": 4000}), "rule.event.within.days", "at most 3650 days"),
    (ev(within={"hours": 1}, within_days=1), "rule.event.within_days", "not both"),
    (ev(within={"days": 7}, before={"days": 7}), "rule.event.before", "shorter than within"),
    (ev(within={"hours": 1}, before={"days": 1}), "rule.event.before", "shorter than within"),
    (ev(**{"from": "2026-01-01"}), "rule.event.from", "needs a zone"),
    (ev(**{"from": "yesterday"}), "rule.event.from", "not an ISO-8601 instant"),
    (ev(**{"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}), "rule.event.to", "after from"),
    (ev(avg={"prop": "a", "op": "gt", "value": "100"}), "rule.event.avg.value", "avg needs a number"),
    (ev(min={"prop": "a", "op": "in", "value": 1}), "rule.event.min.op", "unknown operator"),
    (ev(distinct={"prop": "c", "op": "gte", "value": 2.5}), "rule.event.distinct.value", "non-negative integer"),
    (ev(max={"op": "gt", "value": 1}), "rule.event.max.prop", "non-empty string"),
    ({"sequence": {"steps": [{"name": "A"}]}}, "rule.sequence.steps", "2 to 5 steps, got 1 steps"),
    ({"sequence": {"steps": [{"name": c} for c in "ABCDEF"]}}, "rule.sequence.steps", "got 6 steps"),
    ({"sequence": {"steps": "A,B"}}, "rule.sequence.steps", "2 to 5 steps"),
    ({"sequence": {"steps": [{"name": "A"}, {"nam": "B"}]}}, "rule.sequence.steps[1].nam", "unknown field"),
    ({"sequence": {"steps": [{"name": "A"}, {"name": "B"}], "max_span": {"hour": 1}}},
     "rule.sequence.max_span.hour", "unknown unit"),
    ({"sequence": {"steps": [{"name": "A"}, {"name": "B"}], "count": 1}}, "rule.sequence.count", "unknown field"),
    ({"in_segment": ""}, "rule.in_segment", "segment id"),
    ({"all": [{"in_segment": 5}]}, "rule.all[0].in_segment", "segment id"),
    (ev(where={"prop": "a"}), "rule.event.where", "list of filters"),
    (ev(where=[{"prop": "a", "op": "eq", "value": 1}, "x"]), "rule.event.where[1]", "expected an object"),
    (ev(where=[{"prop": "a", "op": "in", "value": []}]), "rule.event.where[0].value", "non-empty list"),
    (ev(where=[{"op": "eq", "value": 1}]), "rule.event.where[0].prop", "non-empty string"),
    (ev(where=[{"prop": "a", "op": "has"}]), "rule.event.where[0].op", "unknown operator"),
    (ev(count=2), "rule.event.count", "expected an object"),
    (ev(count={"op": "in", "value": 2}), "rule.event.count.op", "unknown operator 'in'"),
    (ev(count={"op": "contains", "value": 2}), "rule.event.count.op", "unknown operator"),
    (ev(count={"value": 2}), "rule.event.count.op", "unknown operator None"),
    (ev(count={"op": "gte"}), "rule.event.count.value", "non-negative integer"),
    (ev(count={"op": "gte", "value": -1}), "rule.event.count.value", "non-negative integer"),
    (ev(count={"op": "gte", "value": 1.5}), "rule.event.count.value", "non-negative integer"),
    (ev(count={"op": "gte", "value": "2"}), "rule.event.count.value", "non-negative integer"),
    (ev(count={"op": "gte", "value": True}), "rule.event.count.value", "non-negative integer"),
    (ev(count={"op": "gte", "value": NAN}), "rule.event.count.value", "non-negative integer"),
    (ev(count={"op": "gte", "value": 1, "x": 1}), "rule.event.count.x", "unknown field"),
    (ev(sum={"op": "gte", "value": 1}), "rule.event.sum.prop", "non-empty string"),
    (ev(sum={"prop": "a", "op": "in", "value": 1}), "rule.event.sum.op", "unknown operator"),
    (ev(sum={"prop": "a", "op": "gte"}), "rule.event.sum.value", "needs a number"),
    (ev(sum={"prop": "a", "op": "gte", "value": "5"}), "rule.event.sum.value", "needs a number"),
    (ev(sum={"prop": "a", "op": "gte", "value": False}), "rule.event.sum.value", "needs a number"),
    (ev(sum={"prop": "a", "op": "gte", "value": math.inf}), "rule.event.sum.value", "needs a number"),
    (ev(sum=[1]), "rule.event.sum", "expected an object"),
    (ev(within_days=0), "rule.event.within_days", "number of days"),
    (ev(within_days=-1), "rule.event.within_days", "number of days"),
    (ev(within_days=3650.5), "rule.event.within_days", "number of days"),
    (ev(within_days="30"), "rule.event.within_days", "number of days"),
    (ev(within_days=True), "rule.event.within_days", "number of days"),
    (ev(within_days=NAN), "rule.event.within_days", "number of days"),
    # reachable
    ({"reachable": "fax"}, "rule.reachable", "unknown channel 'fax'"),
    ({"reachable": "Email"}, "rule.reachable", "unknown channel"),
    ({"reachable": ["email"]}, "rule.reachable", "unknown channel"),
    ({"reachable": None}, "rule.reachable", "unknown channel"),
    # nested paths
    (
        {"all": [ev(), {"event": {"name": "X", "count": {"op": "ge", "value": 1}}}]},
        "rule.all[1].event.count.op",
        "unknown operator 'ge'",
    ),
    ({"not": {"any": [prof("eq", 1), prof("in", [])]}}, "rule.not.any[1].profile.value", "non-empty list"),
]


@pytest.mark.parametrize(("rule", "path", "message"), BAD)
def test_invalid_rules_name_the_bad_part(rule: object, path: str, message: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rule(rule)
    assert info.value.path == path
    assert message in info.value.message
    assert str(info.value) == f"{path}: {info.value.message}"
    assert isinstance(info.value, ValueError)


def test_custom_root_path() -> None:
    with pytest.raises(RuleError) as info:
        parse_rule({"all": []}, "segment.rule")
    assert info.value.path == "segment.rule.all"


def nested_not(depth: int) -> object:
    rule: object = ev()
    for _ in range(depth):
        rule = {"not": rule}
    return rule


def test_nesting_depth_is_bounded() -> None:
    parse_rule(nested_not(MAX_DEPTH))
    with pytest.raises(RuleError, match="nested deeper"):
        parse_rule(nested_not(MAX_DEPTH + 1))
    with pytest.raises(RuleError, match="nested deeper"):
        parse_rule(nested_not(100_000))


# --- segments ---------------------------------------------------------------


def test_segment_defaults_to_live() -> None:
    spec = parse_segment({"name": "Pune shoppers", "rule": DESIGN_EXAMPLE})
    assert spec == SegmentSpec("Pune shoppers", "live", parse_rule(DESIGN_EXAMPLE))


@pytest.mark.parametrize("kind", ["live", "past_behavior"])
def test_rule_kinds(kind: str) -> None:
    assert parse_segment({"name": "n", "kind": kind, "rule": ev()}).kind == kind


@pytest.mark.parametrize(
    "body", [{"name": "n", "kind": "custom_list"}, {"name": "n", "kind": "custom_list", "rule": None}]
)
def test_custom_list_has_no_rule(body: object) -> None:
    assert parse_segment(body) == SegmentSpec("n", "custom_list", None)


def test_name_at_limit() -> None:
    assert parse_segment({"name": "x" * 200, "rule": ev()}).name == "x" * 200


BAD_SEGMENTS: list[tuple[object, str, str]] = [
    ([], "body", "expected an object"),
    (None, "body", "expected an object"),
    ({"rule": ev()}, "name", "non-empty string"),
    ({"name": "", "rule": ev()}, "name", "non-empty string"),
    ({"name": "  ", "rule": ev()}, "name", "non-empty string"),
    ({"name": 7, "rule": ev()}, "name", "non-empty string"),
    ({"name": "x" * 201, "rule": ev()}, "name", "at most 200"),
    ({"name": "n", "kind": "static", "rule": ev()}, "kind", "unknown kind 'static'"),
    ({"name": "n", "kind": None, "rule": ev()}, "kind", "unknown kind"),
    ({"name": "n"}, "rule", "needs a rule"),
    ({"name": "n", "kind": "past_behavior", "rule": None}, "rule", "needs a rule"),
    ({"name": "n", "kind": "custom_list", "rule": ev()}, "rule", "takes no rule"),
    ({"name": "n", "rule": ev(), "id": "s-1"}, "id", "unknown field"),
    ({"name": "n", "rule": {"all": []}}, "rule.all", "non-empty list"),
    ({"name": "n", "rule": {"all": [ev(within_days=0)]}}, "rule.all[0].event.within_days", "number of days"),
]


@pytest.mark.parametrize(("body", "path", "message"), BAD_SEGMENTS)
def test_invalid_segments(body: object, path: str, message: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_segment(body)
    assert info.value.path == path
    assert message in info.value.message


# --- canonical JSON -----------------------------------------------------------


def test_canonical_json_of_design_example() -> None:
    assert rule_to_json(parse_rule(DESIGN_EXAMPLE)) == {
        "all": [
            {"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
            {
                "event": {
                    "name": "Charged",
                    "where": [{"prop": "category", "op": "eq", "value": "shoes"}],
                    "count": {"op": "gte", "value": 2},
                    "within_days": 30,
                }
            },
            {"not": {"event": {"name": "Uninstalled", "count": {"op": "gte", "value": 1}, "within_days": 7}}},
        ]
    }


def test_canonical_json_normalizes_spellings() -> None:
    a = parse_rule(ev(count={"op": "gte", "value": 1.0}, where=[], sum=None))
    b = parse_rule(ev())
    assert rule_to_json(a) == rule_to_json(b) == {"event": {"name": "E", "count": {"op": "gte", "value": 1}}}


@pytest.mark.parametrize("rule", [DESIGN_EXAMPLE, *(r for r, _ in VALID)])
def test_round_trip_through_text(rule: object) -> None:
    node = parse_rule(rule)
    text = json.dumps(rule_to_json(node))
    assert parse_rule(json.loads(text)) == node
    assert rule_to_json(parse_rule(json.loads(text))) == rule_to_json(node)


def test_nodes_are_frozen_and_hashable() -> None:
    node = parse_rule(DESIGN_EXAMPLE)
    assert hash(node) == hash(parse_rule(DESIGN_EXAMPLE))
    assert isinstance(node, All)
    with pytest.raises(AttributeError):
        node.children = ()  # type: ignore[misc]


V2_CANONICAL = [
    {"event": {"name": "AddToCart", "count": {"op": "gte", "value": 1}, "within_days": 1, "before": {"hours": 1}}},
    {"event": {"name": "Opened", "count": {"op": "gte", "value": 1}, "within": {"minutes": 30}}},
    {"event": {"name": "Charged", "count": {"op": "gte", "value": 1}, "within_days": 90, "before": {"days": 45}}},
    {"event": {"name": "Charged", "count": {"op": "gte", "value": 2}, "sum": {"prop": "a", "op": "gt", "value": 5},
               "min": {"prop": "a", "op": "gte", "value": 1}, "max": {"prop": "a", "op": "lt", "value": 9.5},
               "avg": {"prop": "a", "op": "gt", "value": 100}, "distinct": {"prop": "c", "op": "gte", "value": 3},
               "from": "2026-11-01T00:00:00.000Z", "to": "2026-12-01T00:00:00.000Z"}},
    {"sequence": {"steps": [{"name": "A", "where": [{"prop": "p", "op": "eq", "value": 1}]}, {"name": "B"}],
                  "max_span": {"hours": 1}, "within_days": 7}},
    {"all": [{"in_segment": "s-vip"}, {"not": {"in_segment": "s-churn"}}]},
]


@pytest.mark.parametrize("rule", V2_CANONICAL)
def test_v2_rules_round_trip_through_their_canonical_form(rule: dict[str, object]) -> None:
    node = parse_rule(rule)
    assert rule_to_json(node) == rule
    assert parse_rule(rule_to_json(node)) == node
