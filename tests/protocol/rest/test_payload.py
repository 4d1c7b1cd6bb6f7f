"""Write bodies: JSON, CSV and form bodies to the one JSON text the planner binds."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.rest import RestError
from madbase.protocol.rest.guard import GUARD, guard_settings
from madbase.protocol.rest.headers import MediaKind, MediaType, parse_media_type
from madbase.protocol.rest.payload import Payload, parse_csv
from madbase.protocol.rest.schema import Relation
from tests.protocol.rest.test_plan import SNAP

CSV = MediaType(kind=MediaKind.CSV)
FORM = MediaType(kind=MediaKind.URLENCODED)


def cities() -> Relation:
    rel = SNAP.find_relation("public", "cities")
    assert rel is not None
    return rel


def parse(
    body: bytes,
    content_type: MediaType | None = None,
    columns: tuple[str, ...] | None = None,
    *,
    array_ok: bool = True,
) -> Payload:
    return Payload.parse(body, cities(), columns, array_ok=array_ok, content_type=content_type)


def refusal(body: bytes, content_type: MediaType | None = None, **kw: object) -> RestError:
    with pytest.raises(RestError) as info:
        parse(body, content_type, **kw)  # type: ignore[arg-type]
    return info.value


def test_json_bodies() -> None:
    p = parse(b'[{"id":1,"name":"a"},{"name":"b","id":2}]')
    assert (p.columns, p.is_array) == (("id", "name"), True)
    assert json.loads(p.text) == [{"id": 1, "name": "a"}, {"name": "b", "id": 2}]
    assert parse(b'{"id":1}').columns == ("id",)
    assert parse(b"[]").columns == ()
    # columns= lifts the same-keys rule
    assert parse(b'[{"id":1},{"name":"b"}]', columns=("id", "name")).columns == ("id", "name")
    # a scalar is no rows
    for scalar in (b"5", b'"x"', b"null", b"true"):
        p = parse(scalar)
        assert (p.text, p.columns, p.is_array) == ("[]", (), True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "Empty or invalid json"),
        (b"{nope", "Empty or invalid json"),
        (b'{"id": NaN}', "Empty or invalid json"),
        (b'{"id": Infinity}', "Empty or invalid json"),
        (b'{"name": "\\ud800"}', "Empty or invalid json"),
        (b'{"\\udfff": 1}', "Empty or invalid json"),
        (b'{"name": "\xff"}', "Empty or invalid json"),
        (b'{"name": "a\x00b"}', "Empty or invalid json"),
        (b"[" * 10_000 + b"]" * 10_000, "Empty or invalid json"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "Empty or invalid json"),
        (b'[{"id":1},{"name":"b"}]', "All object keys must match"),
        (b'[{"id":1},{"id":2,"name":"b"}]', "All object keys must match"),
        (b'[{"id":1}, 2]', "All object keys must match"),
        (b"[1, 2]", "All object keys must match"),
    ],
)
def test_json_refusals(body: bytes, message: str) -> None:
    err = refusal(body)
    assert (err.code, err.status, err.message) == ("PGRST102", 400, message)


def test_columns_must_exist() -> None:
    err = refusal(b'{"nope": 1}')
    assert (err.code, err.message) == (
        "PGRST204",
        "Could not find the 'nope' column of 'cities' in the schema cache",
    )
    assert refusal(b'{"id": 1}', columns=("id", "zz")).code == "PGRST204"


def test_single_object_only_for_patch_and_put() -> None:
    assert refusal(b'[{"id":1}]', array_ok=False).code == "PGRST102"
    assert refusal(b"id\n1\n", CSV, array_ok=False).code == "PGRST102"


def test_csv_bodies() -> None:
    p = parse(b'id,name\n1,Paris\r\n2,"Lyon, ""la"" belle"\n3,NULL\n4,\n', CSV)
    assert (p.columns, p.is_array) == (("id", "name"), True)
    assert json.loads(p.text) == [
        {"id": "1", "name": "Paris"},
        {"id": "2", "name": 'Lyon, "la" belle'},
        {"id": "3", "name": None},
        {"id": "4", "name": ""},
    ]
    assert parse(b"id,name\n", CSV).text == "[]"
    assert json.loads(parse(b"id,name\n1,a,extra\n", CSV).text) == [{"id": "1", "name": "a"}]
    assert parse(b"id\n1", CSV, columns=("id", "name")).columns == ("id", "name")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"id,name\n1\n", "All lines must have same number of fields"),
        (b"", "parse error (no header line)"),
        (b'id\n"1\n', "parse error (unterminated quoted field)"),
        (b'id\n"1"x\n', "parse error (unexpected character after a quoted field)"),
        (b'id\n1"\n', "parse error (a quote inside an unquoted field)"),
        (b"id\n\xff\n", "parse error (the CSV is not UTF-8)"),
    ],
)
def test_csv_refusals(body: bytes, message: str) -> None:
    err = refusal(body, CSV)
    assert (err.code, err.message) == ("PGRST102", message)


_field = st.text(st.characters(codec="utf-8", exclude_characters="\x00\r"), max_size=8)


@given(st.lists(st.lists(_field, min_size=2, max_size=2), min_size=1, max_size=6))
def test_csv_reads_what_the_csv_module_writes(records: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([["a", "b"], *records])
    header, parsed = parse_csv(out.getvalue())
    assert header == ("a", "b")
    # a record of two empty fields is written `,` (not a blank line): it is kept
    assert parsed == records


def test_form_bodies() -> None:
    p = parse(b"id=1&name=S%C3%A3o+Paulo&name=Rio;data=", FORM)
    assert (p.columns, p.is_array) == (("id", "name", "data"), False)
    assert json.loads(p.text) == {"id": "1", "name": "Rio", "data": ""}
    assert refusal(b"name=%FF", FORM).code == "PGRST102"
    assert refusal(b"name=a%00", FORM).code == "PGRST102"
    assert refusal(b"nope=1", FORM).code == "PGRST204"


def test_other_content_types_are_refused() -> None:
    err = refusal(b"x", parse_media_type("text/plain"))
    assert (err.code, err.message) == ("PGRST102", "Content-Type not acceptable: text/plain")
    err = refusal(b"{}", parse_media_type("application/vnd.pgrst.object+json"))
    assert err.message == "Content-Type not acceptable: application/vnd.pgrst.object+json"


def test_guard_is_constant_text_reading_settings() -> None:
    assert GUARD.params == ()
    assert "PGRST116" in GUARD.sql
    assert "PGRST124" in GUARD.sql
    assert guard_settings(singular=True, max_affected=-3) == (
        ("madbase.singular", "on"),
        ("madbase.max_affected", "-3"),
    )
