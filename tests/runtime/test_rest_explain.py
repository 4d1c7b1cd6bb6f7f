"""Planner counts (`Prefer: count=planned|estimated`), `db-max-rows`, and the EXPLAIN media type
(`application/vnd.pgrst.plan`) against the embedded Postgres."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from madbase.protocol.rest import RestLimits
from madbase.runtime.schema_cache import SchemaCache
from tests.runtime.test_rest_writes import body, call, rows, setup

pytestmark = pytest.mark.pg

NUMS = """
create table public.nums (n int primary key, label text);
insert into public.nums select g, 'n' || g from generate_series(1, 1000) g;
analyze public.nums;
"""

PLANNED = ("prefer", "count=planned")
ESTIMATED = ("prefer", "count=estimated")
EXACT = ("prefer", "count=exact")


def planner_rows(database: str, where: str) -> int:
    with psycopg.connect(database, autocommit=True) as conn:
        row = conn.execute(
            f"explain (format json) select * from public.nums where {where}"
        ).fetchone()
    assert row is not None
    plan: Any = row[0]
    return int(plan[0]["Plan"]["Plan Rows"])


def total(r: Any) -> int:
    return int(r.header("content-range").rsplit("/", 1)[1])


async def test_planned_and_estimated_counts(database: str) -> None:
    pool, _ = await setup(database)
    try:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(NUMS)
        snap = await SchemaCache().load(pool, ("public",))
        # numbers with a 5 in them: the planner guesses their count from a default selectivity
        exact = rows(database, "select count(*) from nums where label like '%5%'")[0][0]
        estimate = planner_rows(database, "label like '%5%'")
        assert estimate != exact  # so the two figures can be told apart
        fives = "/nums?label=like.*5*&limit=10"
        r = await call(pool, snap, "GET", fives, None, EXACT)
        assert (r.status, r.header("content-range")) == (206, f"0-9/{exact}")
        r = await call(pool, snap, "GET", fives, None, PLANNED)
        assert (total(r), len(body(r))) == (estimate, 10)
        assert r.header("preference-applied") == "count=planned"
        r = await call(pool, snap, "HEAD", fives, None, PLANNED)
        assert (r.body, total(r)) == (b"", estimate)
        # estimated without db-max-rows: the larger of the exact and the planned counts
        r = await call(pool, snap, "GET", fives, None, ESTIMATED)
        assert total(r) == max(exact, estimate)
        estimate = planner_rows(database, "n > 500")
        # with db-max-rows: exact up to it, then the planner's figure
        capped = RestLimits(max_rows=100)
        r = await call(pool, snap, "GET", "/nums?n=lte.5", None, ESTIMATED, limits=capped)
        assert (r.status, r.header("content-range")) == (200, "0-4/5")
        r = await call(pool, snap, "GET", "/nums?n=gt.500", None, ESTIMATED, limits=capped)
        assert (r.status, len(body(r))) == (206, 100)
        assert total(r) == max(101, estimate)
        # db-max-rows caps every read
        r = await call(pool, snap, "GET", "/nums?order=n", None, EXACT, limits=capped)
        assert (r.status, r.header("content-range"), len(body(r))) == (206, "0-99/1000", 100)
        r = await call(pool, snap, "GET", "/nums?order=n&limit=3&offset=990", None, limits=capped)
        assert [x["n"] for x in body(r)] == [991, 992, 993]
    finally:
        pool.close()


async def test_plan_media_type(database: str) -> None:
    pool, _ = await setup(database)
    try:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(NUMS)
        snap = await SchemaCache().load(pool, ("public",))
        plan_json = ("accept", "application/vnd.pgrst.plan+json")
        # off by default, as PostgREST's db-plan-enabled
        r = await call(pool, snap, "GET", "/nums", None, plan_json)
        assert (r.status, body(r)["code"], body(r)["message"]) == (
            406,
            "PGRST107",
            'None of these media types are available: application/vnd.pgrst.plan+json; for="application/json"',
        )
        on = RestLimits(plan_enabled=True)
        r = await call(pool, snap, "GET", "/nums?n=eq.3&select=label", None, plan_json, limits=on)
        assert r.status == 200
        assert r.header("content-type") == (
            'application/vnd.pgrst.plan+json; for="application/json"; charset=utf-8'
        )
        plan = json.loads(r.body)
        assert plan[0]["Plan"]["Node Type"] == "Aggregate"
        assert "Actual Rows" not in plan[0]["Plan"]
        r = await call(
            pool,
            snap,
            "GET",
            "/nums?n=eq.3",
            None,
            ("accept", 'application/vnd.pgrst.plan+text; for="text/csv"; options=analyze|verbose'),
            limits=on,
        )
        assert r.header("content-type") == (
            'application/vnd.pgrst.plan+text; for="text/csv"; options=analyze|verbose; charset=utf-8'
        )
        text = r.body.decode()
        assert "actual time=" in text
        assert "Output:" in text
        assert text.endswith("\n")
        # a write is explained, not run (without analyze)
        r = await call(pool, snap, "PATCH", "/nums?n=eq.1", {"label": "x"}, plan_json, limits=on)
        assert r.status == 200
        assert "ModifyTable" in r.body.decode()
        assert rows(database, "select label from nums where n = 1") == [("n1",)]
        # a singular write explained: no 406 (PostgREST only checks rows it ran)
        r = await call(
            pool,
            snap,
            "DELETE",
            "/nums",
            None,
            ("accept", 'application/vnd.pgrst.plan+json; for="application/vnd.pgrst.object+json"'),
            limits=on,
        )
        assert r.status == 200
        assert rows(database, "select count(*) from nums") == [(1000,)]
    finally:
        pool.close()
