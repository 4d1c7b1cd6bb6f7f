"""The write planner against a hand-built snapshot: SQL shape, parameters, errors, responses."""

from __future__ import annotations

import json
import re

import pytest

from madbase.protocol.http.messages import Request
from madbase.protocol.rest import RestError, RestLimits, parse_request
from madbase.protocol.rest.plan import Plan, plan_request
from madbase.protocol.rest.respond import respond
from madbase.protocol.sql import DbError, DbResult
from tests.protocol.rest.test_plan import AUTH, SNAP

EVIL = "x'); drop table cities; --"
OBJECT = "application/vnd.pgrst.object+json"


def plan(method: str, target: str, payload: object = None, *headers: tuple[str, str]) -> Plan:
    limits = RestLimits()
    path = target.split("?", 1)[0]
    data = b"" if payload is None else json.dumps(payload).encode()
    api = parse_request(
        Request(method=method, target="/rest/v1" + target, headers=headers, body=data),
        path,
        limits,
        ("public",),
    )
    return plan_request(api, SNAP, AUTH, limits=limits, path=path, headers_json="{}")


def error(method: str, target: str, payload: object = None, *headers: tuple[str, str]) -> str:
    with pytest.raises(RestError) as info:
        plan(method, target, payload, *headers)
    return info.value.code


def test_insert_binds_the_body_as_one_parameter() -> None:
    p = plan(
        "POST",
        '/cities?columns="id","name","data"',
        [{"id": 1, "name": EVIL}, {"id": 2, "data": 3}],
    )
    assert not p.transaction.read_only
    st = p.transaction.statements[0]
    assert EVIL not in st.sql
    assert json.loads(st.params[0] or "") == [{"id": 1, "name": EVIL}, {"id": 2, "data": 3}]
    assert 'insert into "public"."cities" as "cities" ("id", "name", "data")' in st.sql
    assert 'json_populate_record(null::"public"."cities", pgrst_j.j)' in st.sql
    assert "on conflict" not in st.sql


def test_insert_columns_missing_default_and_upsert() -> None:
    st = plan(
        "POST", '/cities?columns="name"', [{"name": "a", "id": 1}], ("prefer", "missing=default")
    ).transaction.statements[0]
    assert '("name")' in st.sql
    assert "case when pgrst_j.j::jsonb ? $2::text" in st.sql
    assert st.params[1] == "name"
    p = plan("POST", "/cities", {"id": 1}, ("prefer", "resolution=merge-duplicates"))
    sql = p.transaction.statements[0].sql
    assert 'on conflict ("id") do update set "id" = excluded."id"' in sql
    assert p.preference_applied == "resolution=merge-duplicates"
    sql = (
        plan(
            "POST",
            "/cities?on_conflict=name",
            {"id": 1},
            ("prefer", "resolution=ignore-duplicates"),
        )
        .transaction.statements[0]
        .sql
    )
    assert 'on conflict ("name") do nothing' in sql


def test_update_and_delete_use_the_read_filters() -> None:
    st = plan("PATCH", f"/cities?name=eq.{EVIL}", {"name": "b"}).transaction.statements[0]
    assert EVIL not in st.sql
    assert EVIL in st.params
    assert 'update "public"."cities" as "cities" set "name" = pgrst_body."name"' in st.sql
    st = plan("DELETE", "/cities?id=in.(1,2)&select=id").transaction.statements[0]
    assert 'delete from "public"."cities" as "cities" where "cities"."id" = any($1)' in st.sql
    assert st.params == ('{"1","2"}',)
    assert "where" not in plan("DELETE", "/cities").transaction.statements[0].sql


def returning(method: str, target: str, payload: object, *headers: tuple[str, str]) -> str:
    """The RETURNING list of the planned write (or of the no-row select of an empty update)."""
    sql = plan(method, target, payload, *headers).transaction.statements[0].sql
    found = re.match(
        r"with pgrst_source as \((?:.* returning (.*?)|select (.*?)(?: from \S+ \S+)? where false)"
        r"\) select (?:null::bigint|\(select count)",
        sql,
    )
    assert found is not None, sql
    return found.group(1) or found.group(2)


MINIMAL = ("prefer", "return=minimal")
HEADERS_ONLY = ("prefer", "return=headers-only")
REPR = ("prefer", "return=representation")


@pytest.mark.parametrize(
    ("method", "target", "payload", "headers", "expected"),
    [
        # only the row count: nothing read, so column grants and RLS SELECT policies stay out
        ("POST", "/cities", {"id": 1}, (MINIMAL,), "1"),
        ("POST", "/cities", {"id": 1}, (), "1"),
        ("POST", "/cities", {"id": 1}, (("prefer", "return=minimal,count=exact"),), "1"),
        ("POST", "/cities", {"id": 1}, (MINIMAL, ("prefer", "resolution=merge-duplicates")), "1"),
        ("PATCH", "/cities?id=eq.1", {"name": "x"}, (MINIMAL,), "1"),
        ("PATCH", "/cities?id=eq.1", {"name": "x"}, (HEADERS_ONLY,), "1"),
        ("PATCH", "/cities?id=eq.1", {}, (MINIMAL,), "1"),
        ("DELETE", "/cities?id=eq.1", None, (HEADERS_ONLY,), "1"),
        ("PUT", "/cities?id=eq.1", {"id": 1}, (HEADERS_ONLY,), "1"),
        (
            "PATCH",
            "/cities",
            {"name": "x"},
            (("prefer", "handling=strict,max-affected=1"), ("accept", OBJECT)),
            "1",
        ),
        # Location: the key
        ("POST", "/cities", {"id": 1}, (HEADERS_ONLY,), '"cities"."id"'),
        # the selected columns in table order, the join keys of embeds, order terms
        (
            "POST",
            "/cities?select=name,id,data->>a",
            {"id": 1},
            (REPR,),
            '"cities"."id", "cities"."name", "cities"."data"',
        ),
        (
            "PATCH",
            "/cities?select=name&order=id",
            {"id": 1},
            (REPR,),
            '"cities"."id", "cities"."name"',
        ),
        (
            "PATCH",
            "/cities?id=eq.1&select=name",
            {"id": 1},
            (REPR,),
            '"cities"."name"',
        ),
        ("PATCH", "/cities?select=name", {}, (REPR,), '"cities"."name"'),
        (
            "DELETE",
            "/cities?select=countries(name)",
            None,
            (REPR,),
            '"cities"."country_id"',
        ),
        ("DELETE", "/films?select=actors(id)", None, (REPR,), '"films"."id"'),
        # the whole row
        ("POST", "/cities", {"id": 1}, (REPR,), '"cities".*'),
        ("PUT", "/cities?id=eq.1&select=id,*", {"id": 1}, (REPR,), '"cities".*'),
        ("PATCH", "/cities", {}, (REPR,), '"cities".*'),
    ],
)
def test_writes_return_only_what_the_answer_reads(
    method: str,
    target: str,
    payload: object,
    headers: tuple[tuple[str, str], ...],
    expected: str,
) -> None:
    assert returning(method, target, payload, *headers) == expected


def test_an_empty_update_reads_no_table_when_only_counted() -> None:
    sql = plan("PATCH", "/cities", {}, MINIMAL).transaction.statements[0].sql
    assert sql.startswith("with pgrst_source as (select 1 where false) ")
    sql = plan("PATCH", "/cities?select=id", {}, REPR).transaction.statements[0].sql
    assert 'select "cities"."id" from "public"."cities" "cities" where false' in sql


@pytest.mark.parametrize(
    ("method", "target", "payload", "code"),
    [
        ("POST", "/cities", None, "PGRST102"),
        ("POST", "/cities", [1], "PGRST102"),
        ("POST", "/cities", {"zz": 1}, "PGRST204"),
        ("POST", "/cities?columns=zz", [{"id": 1}], "PGRST204"),
        ("POST", "/nope", {"id": 1}, "PGRST205"),
        ("PATCH", "/cities", [{"id": 1}], "PGRST102"),
        ("PATCH", "/cities?zz=eq.1", {"id": 1}, "42703"),
        ("PUT", "/cities?id=gt.1", {"id": 1}, "PGRST105"),
        ("PUT", "/cities?name=eq.1", {"id": 1}, "PGRST105"),
        ("PUT", "/cities", {"id": 1}, "PGRST105"),
        ("PUT", "/cities?id=eq.1&limit=1", {"id": 1}, "PGRST114"),
    ],
)
def test_write_errors(method: str, target: str, payload: object, code: str) -> None:
    assert error(method, target, payload) == code


def row(
    total: int | None,
    affected: int,
    body: bytes | None,
    keys: bytes | None,
    inserted: int | None = None,
) -> list[DbResult]:
    enc = None if total is None else str(total).encode()
    ins = None if inserted is None else str(inserted).encode()
    return [DbResult(rows=((enc, str(affected).encode(), body, keys, ins),), command="SELECT 1")]


def test_write_responses() -> None:
    p = plan("POST", "/cities", {"id": 1}, ("prefer", "return=headers-only"))
    r = respond(p, row(None, 1, None, b'["1"]'))
    assert (r.status, r.body, r.header("location")) == (201, b"", "/cities?id=eq.1")
    assert r.header("content-range") == "*/*"
    p = plan("POST", "/cities", {"id": 1}, ("prefer", "return=representation,count=exact"))
    r = respond(p, row(1, 1, b"[{}]", None))
    assert (r.status, r.body, r.header("content-range")) == (201, b"[{}]", "*/1")
    p = plan("PATCH", "/cities", {"id": 1})
    r = respond(p, row(None, 3, None, None))
    assert (r.status, r.body, r.header("content-range")) == (204, b"", "0-2/*")
    p = plan("DELETE", "/cities", None, ("prefer", "return=representation"))
    assert respond(p, row(None, 0, b"[]", None)).status == 200
    p = plan("PUT", "/cities?id=eq.1", {"id": 2})
    assert respond(p, row(None, 0, None, None)).status == 400
    r = respond(p, DbError(sqlstate="23505", message="duplicate key"))
    assert r.status == 409
