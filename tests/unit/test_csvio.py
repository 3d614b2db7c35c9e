"""CSV out (quoting, fields) and in (incremental records, header detection)."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.csvio import (
    MAX_RECORD_CHARS,
    Column,
    CsvError,
    RecordSplitter,
    cell,
    identity_column,
    parse_fields,
    render,
    render_columns,
    row,
)

pytestmark = pytest.mark.unit

TRICKY = ["plain", "a,b", 'say "hi"', "line\nbreak", "cr\r\nlf", "Pune, 🇮🇳 ünïcødé", "", " padded ", '"', ",\n\""]


def read_back(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_render_quotes_only_what_needs_it_and_round_trips() -> None:
    text = render([TRICKY])
    assert text.endswith("\r\n")
    assert text.startswith('plain,"a,b","say ""hi""","line\nbreak"')
    assert read_back(text) == [TRICKY]


@given(st.lists(st.lists(st.text(), min_size=1, max_size=6), min_size=1, max_size=8))
def test_any_text_round_trips(rows: list[list[str]]) -> None:
    assert read_back(render(rows)) == rows


@given(st.integers(1, 6).flatmap(lambda width: st.lists(
    st.lists(st.sampled_from(TRICKY) | st.text(), min_size=width, max_size=width), min_size=1, max_size=8)))
def test_rows_given_as_columns_render_as_the_rows_do(rows: list[list[str]]) -> None:
    assert render_columns([list(c) for c in zip(*rows, strict=True)]) == render(rows)


def test_cells_print_scalars_the_way_the_json_api_does() -> None:
    assert [cell(None), cell(True), cell(False), cell(2.0), cell(2.5), cell(7), cell("x")] == [
        "", "true", "false", "2", "2.5", "7", "x"]


def test_row_picks_user_id_reachability_and_properties() -> None:
    columns = parse_fields("user_id,reachable_email,city,age,reachable_sms,missing")
    values = row("u-1", {"city": "Pune", "age": 31}, {"email": True, "sms": False}, columns)
    assert values == ["u-1", "true", "Pune", "31", "false", ""]


def test_fields_accept_any_well_formed_property() -> None:
    columns = parse_fields(" user_id , first.name,x-y_z ")
    assert columns == [Column("user_id", "user_id", "user_id"), Column("first.name", "prop", "first.name"),
                       Column("x-y_z", "prop", "x-y_z")]


@pytest.mark.parametrize(("fields", "detail"), [
    ("", "empty field name"),
    ("user_id,,city", "empty field name"),
    ("user_id,city,city", "duplicate field 'city'"),
    ("user id", "unknown field 'user id'"),
    ("user_id,em@il", "unknown field 'em@il'"),
    ("reachable_fax", "unknown field 'reachable_fax'"),
    ("a" * 65, "unknown field"),
    (",".join(f"f{i}" for i in range(101)), "at most 100 fields"),
])
def test_bad_fields_are_named(fields: str, detail: str) -> None:
    with pytest.raises(CsvError, match=detail.replace("(", r"\(")):
        parse_fields(fields)


@pytest.mark.parametrize(("header", "expected"), [
    (["user_id"], (0, "user_id")),
    (["name", "Email", "phone"], (1, "email")),
    (["phone", "email", " USER_ID "], (2, "user_id")),
    (["\ufeffphone"], (0, "phone")),
])
def test_identity_column_prefers_user_id_then_email_then_phone(header: list[str], expected: tuple[int, str]) -> None:
    assert identity_column(header) == expected


def test_header_without_identity_is_refused_with_what_it_found() -> None:
    with pytest.raises(CsvError, match="user_id, email or phone column; found 'name', 'city'"):
        identity_column(["name", "city"])


def split(pieces: list[str]) -> list[list[str]]:
    splitter = RecordSplitter()
    out: list[list[str]] = []
    for piece in pieces:
        out += splitter.feed(piece)
    return out + splitter.finish()


def test_records_may_span_lines_and_pieces() -> None:
    text = 'email,note\r\na@x.io,"multi\nline, with ""quotes"""\r\n\r\nb@x.io,plain\nc@x.io'
    expected = [["email", "note"], ["a@x.io", 'multi\nline, with "quotes"'], ["b@x.io", "plain"], ["c@x.io"]]
    assert split([text]) == expected
    for cut in range(len(text)):
        assert split([text[:cut], text[cut:]]) == expected
    assert split(list(text)) == expected


@given(st.lists(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20),
                         min_size=2, max_size=4), min_size=1, max_size=10), st.data())
def test_split_reads_back_what_render_wrote(rows: list[list[str]], data: st.DataObject) -> None:
    text = render(rows)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=5)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert split(pieces) == read_back(text)


def test_a_runaway_record_is_one_bad_row_in_bounded_memory() -> None:
    splitter = RecordSplitter()
    out = splitter.feed("user_id\r\n")
    out += splitter.feed('"never closed ' + "x" * (MAX_RECORD_CHARS + 10))
    assert len(splitter._partial) + splitter._record_len <= MAX_RECORD_CHARS
    out += splitter.feed('" ,\r\nu-2\r\n')
    assert out + splitter.finish() == [["user_id"], [], ["u-2"]]


def test_unparseable_records_are_bad_rows_not_errors() -> None:
    assert split(["user_id\n", "a\rb\n", "\x00\x01\n", "u-2\n"]) == [["user_id"], [], ["\x00\x01"], ["u-2"]]
