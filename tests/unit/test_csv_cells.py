"""CSV cells a spreadsheet would evaluate get a leading quote; plain numbers stay numbers (DESIGN "CSV cells")."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.csvio import Column, render, row, safe

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("value", "written"), [
    ("=1+1", "'=1+1"),
    ("+1+1", "'+1+1"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tlead", "'\tlead"),
    ("\rlead", "'\rlead"),
    ("\nlead", "'\nlead"),
    ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
    ("+919800000001", "+919800000001"),
    ("-5", "-5"),
    ("3.2e4", "3.2e4"),
    ("-.5", "-.5"),
    ("+1e-3", "+1e-3"),
    ("-", "'-"),
    ("Pune", "Pune"),
    ("", ""),
])
def test_safe(value: str, written: str) -> None:
    assert safe(value) == written


def test_a_quoted_multiline_value_round_trips_and_raw_keeps_everything() -> None:
    columns = [Column("user_id", "user_id", "user_id"), Column("note", "prop", "note"), Column("n", "prop", "n")]
    profile = {"note": "line one\nline \"two\"", "n": -5}
    text = render([row("=u1", profile, {}, columns)])
    assert list(csv.reader(io.StringIO(text))) == [["'=u1", 'line one\nline "two"', "-5"]]
    raw = render([row("=u1", {"note": "=2+2"}, {}, columns, raw=True)])
    assert list(csv.reader(io.StringIO(raw))) == [["=u1", "=2+2", ""]]


def test_a_window_formatted_by_column_is_the_rows_formatted_one_by_one() -> None:
    from stream.csvio import RowFormatter, parse_fields, render_columns
    from stream.rules import reachable

    columns = parse_fields("user_id,note,n,reachable_email,reachable_sms,missing,vip")
    profiles = [{"note": "=2+2", "n": -5, "email": "a@x", "phone": "+91", "vip": True},
                {"note": "", "n": 2.0, "email": " ", "vip": False}, {},
                {"note": "-", "n": 1e20, "phone": "9", "missing": None, "vip": "=1"}]
    subscriptions = [{"email": False}, {}, {"sms": True}, {"sms": False}]
    ids = ["=u1", "u2", "-3", "u4"]
    for raw in (False, True):
        formatter = RowFormatter(columns, raw)
        one_by_one = [formatter(uid, p, {c.key: reachable(c.key, p, s) for c in columns if c.kind == "reach"})
                      for uid, p, s in zip(ids, profiles, subscriptions, strict=True)]
        assert render_columns(formatter.columns(ids, profiles, subscriptions)) == render(one_by_one)
    assert render_columns(RowFormatter(columns).columns([], [], [])) == ""


@pytest.mark.parametrize("rows", [
    [["a", "b"], ["c", "d"]], [["a,b", "c"]], [['say "hi"', "x"]], [["line\none", "x"]], [["cr\r", "x"]],
    [[""]], [["", "x"]], [["x"], [""]], [[","]], [["a"]], [["é ✓", "'=1"]],
])
def test_rows_rendered_from_columns_read_as_rendered_rows(rows: list[list[str]]) -> None:
    from stream.csvio import render_columns

    columns = [list(c) for c in zip(*rows, strict=True)]
    assert render_columns(columns) == render(rows)
    assert list(csv.reader(io.StringIO(render_columns(columns), newline=""))) == rows


CELLS = ["plain", "a,b", 'say "hi"', "line\nbreak", "", "=1", "-5", "+x", "@", "\t1", "'", "+919800000001"]


@given(st.lists(st.tuples(st.sampled_from(CELLS) | st.text(),
                          st.sampled_from(CELLS) | st.text() | st.integers() | st.floats() | st.booleans() | st.none(),
                          st.sampled_from(CELLS) | st.text()), min_size=1, max_size=6), st.booleans())
def test_any_window_by_column_renders_as_row_by_row(rows: list[tuple[str, object, str]], raw: bool) -> None:
    from stream.csvio import RowFormatter, parse_fields, render_columns

    formatter = RowFormatter(parse_fields("user_id,a,b"), raw)
    ids = [r[0] for r in rows]
    profiles = [{"a": r[1], "b": r[2]} for r in rows]
    assert (render_columns(formatter.columns(ids, profiles, []))  # type: ignore[arg-type]
            == render([formatter(i, p, {}) for i, p in zip(ids, profiles, strict=True)]))  # type: ignore[arg-type]
