"""Write options against the embedded Postgres: strict handling, max-affected, singular writes that
must roll back, upsert statuses, Location, missing=default, keys that must match.

Each refused write is checked in the database afterwards: nothing may have been written.
"""

from __future__ import annotations

import pytest

from madbase.protocol.rest import RestLimits
from madbase.runtime.schema_cache import SchemaCache
from tests.runtime.test_rest_writes import ANON, REPR, body, call, execute, rows, setup

pytestmark = pytest.mark.pg

OBJECT = ("accept", "application/vnd.pgrst.object+json")


async def test_strict_handling_refuses_unknown_preferences(database: str) -> None:
    pool, snap = await setup(database)
    try:
        r = await call(
            pool,
            snap,
            "POST",
            "/countries",
            {"id": 7, "name": "X"},
            ("prefer", "handling=strict, nope"),
        )
        assert (r.status, body(r)) == (
            400,
            {
                "code": "PGRST122",
                "message": "Invalid preferences given with handling=strict",
                "details": "Invalid preferences: nope",
                "hint": None,
            },
        )
        assert rows(database, "select count(*) from countries where id = 7") == [(0,)]
        # lenient (or no handling): unknown preferences are ignored
        r = await call(
            pool,
            snap,
            "POST",
            "/countries",
            {"id": 7, "name": "X"},
            ("prefer", "handling=lenient, nope, return=representation"),
        )
        assert r.status == 201
        assert r.header("preference-applied") == "return=representation, handling=lenient"
        assert rows(database, "select name from countries where id = 7") == [("X",)]
    finally:
        pool.close()


async def test_max_affected_rolls_back_when_exceeded(database: str) -> None:
    pool, snap = await setup(database)
    try:
        strict2 = ("prefer", "handling=strict, max-affected=1")
        r = await call(pool, snap, "PATCH", "/countries?id=lte.2", {"code": "??"}, strict2)
        assert (r.status, body(r)) == (
            400,
            {
                "code": "PGRST124",
                "message": "Query result exceeds max-affected preference constraint",
                "details": "The query affects 2 rows",
                "hint": None,
            },
        )
        assert r.header("proxy-status") == "PostgREST; error=PGRST124"
        assert rows(database, "select code from countries order by id") == [("FR",), ("JP",)]
        r = await call(pool, snap, "DELETE", "/countries", None, strict2)
        assert (r.status, body(r)["code"]) == (400, "PGRST124")
        assert rows(database, "select count(*) from countries") == [(2,)]
        # the check runs as the request's role (anon here)
        r = await call(pool, snap, "DELETE", "/countries", None, strict2, auth=ANON)
        assert (r.status, body(r)["code"]) == (400, "PGRST124")
        assert rows(database, "select count(*) from countries") == [(2,)]
        # within the limit: applied and echoed
        r = await call(pool, snap, "PATCH", "/countries?id=eq.1", {"code": "F"}, strict2)
        assert (r.status, r.header("preference-applied")) == (
            204,
            "handling=strict, max-affected=1",
        )
        assert rows(database, "select code from countries where id = 1") == [("F",)]
        # without handling=strict the limit is ignored (and not echoed), as PostgREST does
        r = await call(
            pool, snap, "PATCH", "/countries", {"code": "Z"}, ("prefer", "max-affected=1")
        )
        assert (r.status, r.header("preference-applied")) == (204, None)
        assert rows(database, "select distinct code from countries") == [("Z",)]
        # POST does not check it
        r = await call(
            pool,
            snap,
            "POST",
            '/countries?columns="id","name"',
            [{"id": 5, "name": "a"}, {"id": 6, "name": "b"}],
            strict2,
        )
        assert r.status == 201
        # the connection is clean afterwards: a later request on the pool is not limited
        r = await call(pool, snap, "DELETE", "/countries?id=gte.5")
        assert r.status == 204
        assert rows(database, "select count(*) from countries") == [(2,)]
    finally:
        pool.close()


async def test_singular_writes_roll_back_unless_one_row(database: str) -> None:
    pool, snap = await setup(database)
    try:
        for prefer in ("return=minimal", "return=representation"):
            r = await call(
                pool, snap, "PATCH", "/countries", {"code": "XX"}, OBJECT, ("prefer", prefer)
            )
            assert (r.status, body(r)) == (
                406,
                {
                    "code": "PGRST116",
                    "message": "Cannot coerce the result to a single JSON object",
                    "details": "The result contains 2 rows",
                    "hint": None,
                },
            )
            assert rows(database, "select code from countries order by id") == [("FR",), ("JP",)]
        r = await call(pool, snap, "DELETE", "/countries?id=gt.0", None, OBJECT)
        assert (r.status, body(r)["code"]) == (406, "PGRST116")
        r = await call(pool, snap, "PATCH", "/countries?id=eq.9", {"code": "XX"}, OBJECT)
        assert (r.status, body(r)["details"]) == (406, "The result contains 0 rows")
        r = await call(
            pool,
            snap,
            "POST",
            "/countries",
            [{"id": 5, "name": "a"}, {"id": 6, "name": "b"}],
            OBJECT,
        )
        assert (r.status, body(r)["code"]) == (406, "PGRST116")
        assert rows(database, "select count(*) from countries") == [(2,)]
        # exactly one row: the object itself
        r = await call(
            pool, snap, "PATCH", "/countries?id=eq.2&select=name", {"name": "Nippon"}, OBJECT, REPR
        )
        assert (r.status, body(r)) == (200, {"name": "Nippon"})
        r = await call(pool, snap, "POST", "/countries", {"id": 5, "name": "a"}, OBJECT, REPR)
        assert (r.status, body(r)) == (201, {"id": 5, "name": "a", "code": None})
        assert rows(database, "select name from countries order by id") == [
            ("France",),
            ("Nippon",),
            ("a",),
        ]
    finally:
        pool.close()


async def test_upsert_statuses(database: str) -> None:
    pool, snap = await setup(database)
    try:
        merge = ("prefer", "resolution=merge-duplicates")
        r = await call(pool, snap, "POST", "/countries", [{"id": 1, "name": "F"}], merge)
        assert r.status == 200  # only updated
        r = await call(
            pool,
            snap,
            "POST",
            "/countries",
            [{"id": 2, "name": "J"}, {"id": 3, "name": "C"}],
            merge,
        )
        assert r.status == 201  # one inserted
        r = await call(
            pool,
            snap,
            "POST",
            "/countries",
            {"id": 1, "name": "F"},
            ("prefer", "resolution=ignore-duplicates"),
        )
        assert r.status == 201  # ignore-duplicates is always 201
        r = await call(pool, snap, "POST", "/countries", [], merge)
        assert r.status == 200  # nothing inserted
        assert rows(database, "select id, name from countries order by id") == [
            (1, "F"),
            (2, "J"),
            (3, "C"),
        ]
        # PUT: 201 when it inserted, 200 when it replaced, 204 without a body
        r = await call(pool, snap, "PUT", "/countries?id=eq.4", {"id": 4, "name": "D"}, REPR)
        assert r.status == 201
        r = await call(pool, snap, "PUT", "/countries?id=eq.4", {"id": 4, "name": "E"}, REPR)
        assert r.status == 200
        r = await call(pool, snap, "PUT", "/countries?id=eq.4", {"id": 4, "name": "G"})
        assert r.status == 204
    finally:
        pool.close()


async def test_location_for_headers_only(database: str) -> None:
    pool, snap = await setup(database)
    try:
        execute(
            database,
            "create table public.pairs (b text, a int, v int, primary key (a, b));"
            "create table public.nokey (v int);",
        )
        snap = await SchemaCache().load(pool, ("public",))
        only = ("prefer", "return=headers-only")
        r = await call(pool, snap, "POST", "/pairs", {"a": 1, "b": "x y&z", "v": 0}, only)
        # key columns in table order, values URL-encoded
        assert (r.status, r.body, r.header("location")) == (
            201,
            b"",
            "/pairs?b=eq.x%20y%26z&a=eq.1",
        )
        assert r.header("preference-applied") == "return=headers-only"
        r = await call(pool, snap, "POST", "/pairs", [{"a": 2, "b": "p"}, {"a": 3, "b": "q"}], only)
        assert (r.status, r.header("location")) == (201, None)  # not exactly one row
        r = await call(pool, snap, "POST", "/nokey", {"v": 1}, only)
        assert (r.status, r.header("location")) == (201, None)
        r = await call(pool, snap, "POST", "/countries", {"id": 5, "name": "n"}, only)
        assert r.header("location") == "/countries?id=eq.5"
    finally:
        pool.close()


async def test_bodies_and_missing_default(database: str) -> None:
    pool, snap = await setup(database)
    try:
        r = await call(pool, snap, "POST", "/items", [{"name": "a"}, 1])
        assert (r.status, body(r)["message"]) == (400, "All object keys must match")
        # a JSON scalar is truncated to no rows, as PostgREST does
        r = await call(pool, snap, "POST", "/items", raw=b"5")
        assert (r.status, r.header("content-range")) == (201, "*/*")
        # duplicate keys: the last one wins (as Postgres's json functions read it)
        r = await call(
            pool,
            snap,
            "POST",
            "/items?select=name",
            None,
            REPR,
            raw=b'{"name":"first","name":"last"}',
        )
        assert (r.status, body(r)) == (201, [{"name": "last"}])
        # PATCH with columns= and missing=default: a listed column absent from the body
        # takes its default; with missing=null (the default) it becomes NULL
        r = await call(
            pool,
            snap,
            "PATCH",
            '/items?columns="qty","name"&select=name,qty',
            {"name": "z"},
            ("prefer", "missing=default, return=representation"),
        )
        assert (r.status, body(r)) == (200, [{"name": "z", "qty": 7}])
        assert r.header("preference-applied") == "missing=default, return=representation"
        r = await call(pool, snap, "PATCH", '/items?columns="qty"', {"name": "y"})
        assert (r.status, body(r)["code"]) == (400, "23502")
        assert rows(database, "select name, qty from items") == [("z", 7)]
        # other content types are refused with PostgREST's message
        r = await call(pool, snap, "POST", "/items", None, ("content-type", "text/plain"), raw=b"x")
        assert (r.status, body(r)) == (
            400,
            {
                "code": "PGRST102",
                "message": "Content-Type not acceptable: text/plain",
                "details": None,
                "hint": None,
            },
        )
    finally:
        pool.close()


async def test_strict_prefs_with_tx_rollback(database: str) -> None:
    pool, snap = await setup(database)
    try:
        allow = RestLimits(tx_allow_override=True)
        r = await call(
            pool,
            snap,
            "DELETE",
            "/countries?id=eq.2",
            None,
            ("prefer", "tx=rollback, handling=strict, max-affected=5"),
            limits=allow,
        )
        assert (r.status, r.header("preference-applied")) == (
            204,
            "tx=rollback, handling=strict, max-affected=5",
        )
        assert rows(database, "select count(*) from countries") == [(2,)]
    finally:
        pool.close()


async def test_csv_and_form_bodies(database: str) -> None:
    pool, snap = await setup(database)
    try:
        csv_type = ("content-type", "text/csv")
        r = await call(
            pool,
            snap,
            "POST",
            "/countries?select=id,name,code",
            None,
            csv_type,
            REPR,
            raw=b'id,name,code\r\n3,"Chad, ""TD""",NULL\r\n4,Peru,\r\n',
        )
        assert (r.status, body(r)) == (
            201,
            [{"id": 3, "name": 'Chad, "TD"', "code": None}, {"id": 4, "name": "Peru", "code": ""}],
        )
        # upsert from CSV, answered as CSV
        r = await call(
            pool,
            snap,
            "POST",
            "/countries?select=id,name",
            None,
            csv_type,
            ("accept", "text/csv"),
            ("prefer", "resolution=merge-duplicates, return=representation"),
            raw=b"id,name\n4,Peru!\n5,Mali\n",
        )
        assert (r.status, r.header("content-type"), r.body) == (
            201,
            "text/csv; charset=utf-8",
            b"id,name\n4,Peru!\n5,Mali",
        )
        r = await call(pool, snap, "POST", "/countries", None, csv_type, raw=b"id,name\n6\n")
        assert (r.status, body(r)["message"]) == (400, "All lines must have same number of fields")
        r = await call(pool, snap, "POST", "/countries", None, csv_type, raw=b"id,name\nx,y\n")
        assert (r.status, body(r)["code"]) == (400, "22P02")  # "x" is no int
        form = ("content-type", "application/x-www-form-urlencoded")
        r = await call(
            pool, snap, "POST", "/countries", None, form, REPR, raw=b"id=6&name=Nepal&code=NP"
        )
        assert (r.status, body(r)) == (201, [{"id": 6, "name": "Nepal", "code": "NP"}])
        r = await call(pool, snap, "PATCH", "/countries?id=eq.6", None, form, raw=b"code=NPL")
        assert r.status == 204
        assert rows(database, "select id, code from countries where id >= 3 order by id") == [
            (3, None),
            (4, ""),
            (5, None),
            (6, "NPL"),
        ]
    finally:
        pool.close()
