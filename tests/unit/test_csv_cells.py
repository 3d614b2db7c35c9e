"""CSV cells a spreadsheet would evaluate get a leading quote; plain numbers stay numbers (DESIGN "CSV cells")."""

from __future__ import annotations

import csv
import io

import pytest

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
