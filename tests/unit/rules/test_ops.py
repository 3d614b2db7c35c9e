"""Operator semantics, table-driven, cross-checked against the oracle's own implementation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.rules import OPERATORS, compare
from stream.rules.ops import comparator
from tests.oracle import oracle_compare

pytestmark = pytest.mark.unit

CASES: list[tuple[str, object, object, bool]] = [
    # eq / neq: same family only, numbers across int/float
    ("eq", "Pune", "Pune", True),
    ("eq", "pune", "Pune", False),
    ("eq", 3, 3.0, True),
    ("eq", 3.5, 3, False),
    ("eq", True, True, True),
    ("eq", False, False, True),
    ("eq", True, 1, False),
    ("eq", 1, True, False),
    ("eq", 0, False, False),
    ("eq", "1", 1, False),
    ("eq", 1, "1", False),
    ("eq", None, "x", False),
    ("neq", "Pune", "Mumbai", True),
    ("neq", "Pune", "Pune", False),
    ("neq", 2, 2.0, False),
    ("neq", True, 1, True),
    ("neq", "1", 1, True),
    ("neq", None, "x", False),
    ("neq", None, 1, False),
    # ordering: numbers with numbers, strings with strings
    ("gt", 5, 3, True),
    ("gt", 3, 3, False),
    ("gt", 3.5, 3, True),
    ("gte", 3, 3.0, True),
    ("gte", 2.9, 3, False),
    ("lt", 2, 3, True),
    ("lt", 3, 3, False),
    ("lte", 3, 3, True),
    ("lte", 4, 3, False),
    ("gt", "b", "a", True),
    ("lt", "B", "a", True),
    ("gte", "abc", "abc", True),
    ("lte", "abd", "abc", False),
    ("gt", "10", 9, False),
    ("gt", 10, "9", False),
    ("lt", True, 2, False),
    ("gt", 2, False, False),
    ("gt", True, False, False),
    ("lte", False, True, False),
    ("gt", None, 1, False),
    ("lt", None, "a", False),
    ("gt", float("nan"), 1, False),
    # in / not_in
    ("in", "Pune", ("Pune", "Mumbai"), True),
    ("in", "Delhi", ("Pune", "Mumbai"), False),
    ("in", 2, (1, 2.0), True),
    ("in", True, (1, 2), False),
    ("in", 1, (True,), False),
    ("in", "1", (1,), False),
    ("in", None, ("x",), False),
    ("in", "a", ["a"], True),
    ("not_in", "Delhi", ("Pune", "Mumbai"), True),
    ("not_in", "Pune", ("Pune", "Mumbai"), False),
    ("not_in", True, (1,), True),
    ("not_in", 1.0, (1,), False),
    ("not_in", None, ("x",), False),
    # contains: substring of strings only
    ("contains", "ana@example.com", "@example", True),
    ("contains", "ana@example.com", "@EXAMPLE", False),
    ("contains", "abc", "", True),
    ("contains", 12345, "23", False),
    ("contains", True, "ru", False),
    ("contains", None, "a", False),
    # exists / not_exists
    ("exists", "x", None, True),
    ("exists", "", None, True),
    ("exists", False, None, True),
    ("exists", 0, None, True),
    ("exists", None, None, False),
    ("not_exists", None, None, True),
    ("not_exists", "", None, False),
    ("not_exists", 0, None, False),
]


@pytest.mark.parametrize(("op", "actual", "expected", "result"), CASES)
def test_compare_table(op: str, actual: object, expected: object, result: bool) -> None:
    assert compare(op, actual, expected) is result  # type: ignore[arg-type]
    assert oracle_compare(op, actual, expected) is result


def test_every_operator_is_in_the_table() -> None:
    assert {c[0] for c in CASES} == set(OPERATORS)


def test_unknown_operator_raises() -> None:
    with pytest.raises(ValueError, match="unknown operator"):
        compare("like", "a", "a")


def test_in_needs_a_list() -> None:
    with pytest.raises(ValueError, match="list"):
        compare("in", "a", "abc")


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, 2.5, -1.5]),
    st.sampled_from(["", "a", "b", "ab", "1", "true"]),
)


@settings(max_examples=400, deadline=None)
@given(op=st.sampled_from(OPERATORS), actual=scalars, expected=scalars, items=st.lists(scalars, max_size=3))
def test_compare_agrees_with_oracle(op: str, actual: object, expected: object, items: list[object]) -> None:
    operand: object = tuple(items) if op in ("in", "not_in") else expected
    assert compare(op, actual, operand) == oracle_compare(op, actual, operand)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(actual=scalars.filter(lambda v: v is not None), expected=scalars.filter(lambda v: v is not None))
def test_neq_is_eq_negated_when_present(actual: object, expected: object) -> None:
    assert compare("neq", actual, expected) != compare("eq", actual, expected)  # type: ignore[arg-type]


@settings(max_examples=600, deadline=None)
@given(op=st.sampled_from(OPERATORS), actual=scalars, expected=scalars,
       items=st.lists(scalars, min_size=1, max_size=3) | st.lists(st.sampled_from(["a", "b", "1"]), max_size=3),
       as_list=st.booleans())
def test_a_bound_comparator_answers_as_compare(op: str, actual: object, expected: object, items: list[object],
                                               as_list: bool) -> None:
    """Compiled rules bind operator and value once (`comparator`); the answers may not change."""
    operand: object = (list(items) if as_list else tuple(items)) if op in ("in", "not_in") else expected
    assert comparator(op, operand)(actual) == compare(op, actual, operand)  # type: ignore[arg-type]
