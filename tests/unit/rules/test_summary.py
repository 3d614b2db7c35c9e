"""Plain-language summaries shown on the segment page."""

from __future__ import annotations

import pytest

from stream.rules import describe, parse_rule

pytestmark = pytest.mark.unit


def ev(name: str = "Charged", **kw: object) -> dict[str, object]:
    return {"event": {"name": name, **kw}}


def prof(prop: str, op: str, value: object = None) -> dict[str, object]:
    body: dict[str, object] = {"prop": prop, "op": op}
    if value is not None:
        body["value"] = value
    return {"profile": body}


CASES: list[tuple[object, str]] = [
    (
        {
            "all": [
                prof("city", "eq", "Pune"),
                ev(
                    where=[{"prop": "category", "op": "eq", "value": "shoes"}],
                    count={"op": "gte", "value": 2},
                    within_days=30,
                ),
                {"not": ev("Uninstalled", within_days=7)},
            ]
        },
        "city is Pune, and did Charged (category is shoes) at least 2 times in the last 30 days, "
        "and did not do Uninstalled in the last 7 days",
    ),
    (prof("city", "neq", "Pune"), "city is not Pune"),
    (prof("age", "gt", 30), "age is greater than 30"),
    (prof("age", "gte", 30.0), "age is at least 30"),
    (prof("age", "lt", 2.5), "age is less than 2.5"),
    (prof("name", "lte", "m"), "name is at most m"),
    (prof("city", "in", ["Pune", "Mumbai"]), "city is one of Pune, Mumbai"),
    (prof("city", "not_in", ["Pune"]), "city is none of Pune"),
    (prof("email", "contains", "@gmail"), "email contains @gmail"),
    (prof("vip", "eq", True), "vip is true"),
    (prof("vip", "eq", False), "vip is false"),
    (prof("nick", "eq", ""), 'nick is ""'),
    (prof("phone", "exists"), "phone is set"),
    (prof("phone", "not_exists"), "phone is not set"),
    ({"reachable": "email"}, "reachable on email"),
    ({"not": {"reachable": "sms"}}, "not reachable on sms"),
    ({"not": prof("city", "eq", "Pune")}, "not (city is Pune)"),
    (ev(), "did Charged"),
    (ev(count={"op": "eq", "value": 1}), "did Charged exactly 1 time"),
    (ev(count={"op": "gt", "value": 3}), "did Charged more than 3 times"),
    (ev(count={"op": "lt", "value": 3}), "did Charged fewer than 3 times"),
    (ev(count={"op": "lte", "value": 3}), "did Charged at most 3 times"),
    (ev(count={"op": "neq", "value": 2}), "did Charged other than 2 times"),
    (ev(count={"op": "eq", "value": 0}), "did not do Charged"),
    (ev(count={"op": "lt", "value": 1}, within_days=1), "did not do Charged in the last day"),
    (ev(count={"op": "lte", "value": 0}, within_days=0.5), "did not do Charged in the last 0.5 days"),
    (
        ev(sum={"prop": "amount", "op": "gte", "value": 500}, within_days=30),
        "did Charged with total amount at least 500 in the last 30 days",
    ),
    (ev(sum={"prop": "amount", "op": "lt", "value": 9.5}), "did Charged with total amount less than 9.5"),
    (
        ev(where=[{"prop": "a", "op": "gt", "value": 1}, {"prop": "b", "op": "exists"}]),
        "did Charged (a is greater than 1 and b is set)",
    ),
    (
        {"not": ev(sum={"prop": "amount", "op": "gte", "value": 5})},
        "not (did Charged with total amount at least 5)",
    ),
    ({"not": ev(count={"op": "gte", "value": 2})}, "not (did Charged at least 2 times)"),
    (
        {"any": [prof("city", "eq", "Pune"), {"all": [prof("a", "exists"), {"reachable": "push"}]}]},
        "city is Pune, or (a is set, and reachable on push)",
    ),
    ({"all": [{"any": [ev("A")]}, ev("B")]}, "did A, and did B"),
    ({"not": {"any": [ev("A"), ev("B")]}}, "not (did A, or did B)"),
]


@pytest.mark.parametrize(("rule", "text"), CASES)
def test_describe(rule: object, text: str) -> None:
    assert describe(parse_rule(rule)) == text
