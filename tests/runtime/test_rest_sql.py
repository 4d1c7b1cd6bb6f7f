"""GET/HEAD through the whole REST core against the embedded Postgres.

parse_request -> plan_request -> Pool.run -> respond, compared with the response PostgREST gives
for the same request (bodies written by hand from PostgREST's documented semantics).
"""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
import pytest

from madbase.config import DbSettings
from madbase.protocol.http.messages import Request, Response
from madbase.protocol.identity.bearer import Principal
from madbase.protocol.rest import RestError, RestLimits, SchemaSnapshot, parse_request
from madbase.protocol.rest.plan import plan_request
from madbase.protocol.rest.respond import respond
from madbase.runtime.db import Pool
from madbase.runtime.migrate import migrate
from madbase.runtime.schema_cache import SchemaCache

pytestmark = pytest.mark.pg

FIXTURE = """
create type public.mood as enum ('sad', 'ok', 'happy');
create table public.countries (id int primary key, name text not null, code text);
create table public.cities (
  id int primary key, name text not null,
  country_id int references public.countries(id),
  population int, tags text[] not null default '{}',
  info jsonb, mood public.mood, span int4range, doc tsvector
);
create table public.films (id int primary key, title text not null, year int);
create table public.actors (id int primary key, name text not null);
create table public.roles (
  film_id int references public.films(id), actor_id int references public.actors(id),
  character text, primary key (film_id, actor_id)
);
create table public.people (id int primary key, name text);
create table public.messages (
  id int primary key, body text,
  sender_id int constraint message_sender_fkey references public.people(id),
  receiver_id int constraint message_receiver_fkey references public.people(id)
);
create view public.big_cities as select id, name, country_id from public.cities where population > 1000000;
create table public.notes (id int primary key, owner uuid, body text);
alter table public.notes enable row level security;
create policy own_notes on public.notes for select to authenticated using (owner = auth.uid());
create policy anon_public on public.notes for select to anon using (owner is null);

insert into public.countries values (1, 'France', 'FR'), (2, 'Japan', 'JP'), (3, 'Chad', null);
insert into public.cities values
  (1, 'Paris', 1, 2100000, '{capital,big}', '{"a": {"b": 1}, "tags": ["x", "y"]}', 'happy', '[1,5)', to_tsvector('english', 'the lights of the city')),
  (2, 'Lyon', 1, 500000, '{big}', '{"a": {"b": 2}}', 'ok', '[5,10)', to_tsvector('english', 'silk and food')),
  (3, 'Tokyo', 2, 14000000, '{capital}', null, 'sad', '[10,20)', null),
  (4, 'O''Brien "town", x', null, null, '{}', '{"a": null}', null, null, null);
insert into public.films values (1, 'Alien', 1979), (2, 'Heat', 1995), (3, 'Up', 2009);
insert into public.actors values (1, 'Sigourney'), (2, 'Al'), (3, 'Robert'), (4, 'Nobody');
insert into public.roles values (1, 1, 'Ripley'), (2, 2, 'Hanna'), (2, 3, 'McCauley');
insert into public.people values (1, 'ann'), (2, 'bob');
insert into public.messages values (1, 'hi', 1, 2), (2, 'yo', 2, 1);
insert into public.notes values
  (1, '00000000-0000-0000-0000-000000000001', 'mine'),
  (2, '00000000-0000-0000-0000-000000000002', 'theirs'),
  (3, null, 'public');
"""

ANON = Principal(role="anon", claims_json='{"role":"anon"}')
SERVICE = Principal(role="service_role", claims_json='{"role":"service_role"}')
USER1 = Principal(
    role="authenticated",
    claims_json='{"role":"authenticated","sub":"00000000-0000-0000-0000-000000000001"}',
    subject="00000000-0000-0000-0000-000000000001",
)


async def setup(database: str) -> tuple[Pool, SchemaSnapshot]:
    pool = Pool(database, DbSettings())
    await migrate(pool)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(FIXTURE)
    snapshot = await SchemaCache().load(pool, ("public",))
    return pool, snapshot


async def call(
    pool: Pool,
    snapshot: SchemaSnapshot,
    target: str,
    headers: tuple[tuple[str, str], ...] = (),
    *,
    method: str = "GET",
    auth: Principal = SERVICE,
) -> Response:
    limits = RestLimits()
    request = Request(method=method, target="/rest/v1" + target, headers=headers)
    path = target.split("?", 1)[0]
    try:
        api = parse_request(request, path, limits, ("public",))
        plan = plan_request(
            api,
            snapshot,
            auth,
            limits=limits,
            path=path,
            headers_json=json.dumps(dict(headers)),
        )
    except RestError as err:
        return err.to_response()
    return respond(plan, await pool.run(plan.transaction))


def body(r: Response) -> Any:
    return json.loads(r.body)


def ids(r: Response) -> list[int]:
    assert r.status in (200, 206), r.body
    return [row["id"] for row in body(r)]


# (query, expected ids of cities)
FILTERS = [
    ("id=eq.1", [1]),
    ("id=neq.1", [2, 3, 4]),
    ("id=gt.2", [3, 4]),
    ("id=gte.2", [2, 3, 4]),
    ("id=lt.2", [1]),
    ("id=lte.2", [1, 2]),
    ("name=like.*o*", [2, 3, 4]),
    ("name=ilike.p*", [1]),
    ("name=match.^[PL]", [1, 2]),
    ("name=imatch.^t", [3]),
    ("country_id=is.null", [4]),
    ("country_id=is.not_null", [1, 2, 3]),
    ("country_id=not.is.null", [1, 2, 3]),
    ("country_id=isdistinct.1", [3, 4]),
    ("id=in.(1,3)", [1, 3]),
    ("id=not.in.(1,3)", [2, 4]),
    ('name=in.(Paris,"O\'Brien \\"town\\", x")', [1, 4]),
    ("tags=cs.{capital}", [1, 3]),
    ("tags=cd.{big,capital}", [1, 2, 3, 4]),
    ("tags=ov.{big,nothing}", [1, 2]),
    ('info=cs.{"a":{"b":1}}', [1]),
    ("span=cs.[3,4)", [1]),
    ("span=sl.[20,30)", [1, 2, 3]),
    ("span=sr.[1,3)", [2, 3]),
    ("span=nxr.[1,10)", [1, 2]),
    ("span=nxl.[5,6)", [2, 3]),
    ("span=adj.[20,30)", [3]),
    ("span=ov.[4,6)", [1, 2]),
    ("mood=eq.happy", [1]),
    ("mood=in.(sad,ok)", [2, 3]),
    ("doc=fts.lights", [1]),
    ("doc=fts(english).light", [1]),
    ("doc=plfts.silk food", [2]),
    ("doc=phfts(english).silk and food", [2]),
    ('doc=wfts(english)."the city" -silk', [1]),
    ("name=fts(english).paris", [1]),
    ("info->a->>b=eq.2", [2]),
    ("info->>a=is.null", [3, 4]),
    ("info->tags->>0=eq.x", [1]),
    ("id=eq(any).{1,2}", [1, 2]),
    ("name=like(any).{P*,T*}", [1, 3]),
    ("name=like(all).{*a*,*r*}", [1]),
    ("id=gt(all).{1,2}", [3, 4]),
    ("or=(id.eq.1,id.eq.3)", [1, 3]),
    ("and=(id.gt.1,id.lt.4)", [2, 3]),
    ("or=(id.eq.4,and(country_id.eq.1,population.not.lt.1000000))", [1, 4]),
    ("not.or=(id.eq.1,id.eq.2)", [3, 4]),
    ("id=gte.2&id=lte.3", [2, 3]),
    ("name=eq.x'; drop table cities; --", []),
]


async def test_rest_read_filters_every_operator(database: str) -> None:
    pool, snap = await setup(database)
    try:
        failures = []
        for query, expected in FILTERS:
            r = await call(pool, snap, f"/cities?select=id&order=id&{query}")
            got: object = ids(r) if r.status == 200 else (r.status, r.body)
            if got != expected:
                failures.append((query, got, expected))
        assert failures == []
    finally:
        pool.close()


async def test_rest_read_columns_order_range_count(database: str) -> None:
    pool, snap = await setup(database)
    try:
        r = await call(pool, snap, "/countries")
        assert r.status == 200
        assert r.header("content-type") == "application/json; charset=utf-8"
        assert r.header("content-range") == "0-2/*"
        assert body(r) == [
            {"id": 1, "name": "France", "code": "FR"},
            {"id": 2, "name": "Japan", "code": "JP"},
            {"id": 3, "name": "Chad", "code": None},
        ]
        r = await call(
            pool,
            snap,
            "/cities?select=n:name,id::text,info->a->b,info->tags->1,x:info->>a&id=lt.3&order=id",
        )
        assert body(r) == [
            {"n": "Paris", "id": "1", "b": 1, "tags": "y", "x": '{"b": 1}'},
            {"n": "Lyon", "id": "2", "b": 2, "tags": None, "x": '{"b": 2}'},
        ]
        r = await call(pool, snap, "/cities?select=id,tags,mood,span&id=eq.1")
        assert body(r) == [{"id": 1, "tags": ["capital", "big"], "mood": "happy", "span": "[1,5)"}]
        r = await call(pool, snap, "/cities?select=id&order=country_id.desc.nullsfirst,id.desc")
        assert ids(r) == [4, 3, 2, 1]
        r = await call(pool, snap, "/cities?select=id&order=country_id.asc.nullslast,id.desc")
        assert ids(r) == [2, 1, 3, 4]
        r = await call(pool, snap, "/cities?select=id&order=info->a->b.desc.nullslast,id")
        assert ids(r) == [2, 1, 3, 4]
        r = await call(pool, snap, "/cities?select=id&order=id&limit=2&offset=1")
        assert (ids(r), r.header("content-range"), r.status) == ([2, 3], "1-2/*", 200)
        r = await call(
            pool, snap, "/cities?select=id&order=id&limit=2&offset=1", (("prefer", "count=exact"),)
        )
        assert (ids(r), r.header("content-range"), r.status) == ([2, 3], "1-2/4", 206)
        assert r.header("preference-applied") == "count=exact"
        r = await call(pool, snap, "/cities?select=id&order=id", (("range", "1-2"),))
        assert (ids(r), r.header("content-range")) == ([2, 3], "1-2/*")
        r = await call(pool, snap, "/cities?select=id", (("prefer", "count=exact"),))
        assert (r.status, r.header("content-range")) == (200, "0-3/4")
        r = await call(pool, snap, "/cities?id=gt.100", (("prefer", "count=exact"),))
        assert (r.status, r.header("content-range"), body(r)) == (200, "*/0", [])
        r = await call(pool, snap, "/cities?id=gt.100")
        assert (r.status, r.header("content-range"), body(r)) == (200, "*/*", [])
        r = await call(pool, snap, "/cities?offset=10", (("prefer", "count=exact"),))
        assert r.status == 416
        assert body(r)["code"] == "PGRST103"
        assert body(r)["details"] == "An offset of 10 was requested, but there are only 4 rows."
        r = await call(
            pool, snap, "/cities?select=id&country_id=eq.1", (("prefer", "count=planned"),)
        )
        # the planner's estimate (tests/runtime/test_rest_explain.py checks the figure)
        assert re.fullmatch(r"0-1/[0-9]+", r.header("content-range") or "")
        r = await call(pool, snap, "/big_cities?select=name&order=id")
        assert body(r) == [{"name": "Paris"}, {"name": "Tokyo"}]
        r = await call(pool, snap, "/cities?select=id&limit=0", (("prefer", "count=exact"),))
        assert (r.status, r.header("content-range"), body(r)) == (206, "*/4", [])
    finally:
        pool.close()


async def test_rest_read_singular_csv_head_stripped(database: str) -> None:
    pool, snap = await setup(database)
    single = (("accept", "application/vnd.pgrst.object+json"),)
    try:
        r = await call(pool, snap, "/countries?id=eq.1", single)
        assert r.status == 200
        assert r.header("content-type") == "application/vnd.pgrst.object+json; charset=utf-8"
        assert body(r) == {"id": 1, "name": "France", "code": "FR"}
        r = await call(pool, snap, "/countries", single)
        assert r.status == 406
        assert body(r)["code"] == "PGRST116"
        assert body(r)["details"] == "The result contains 3 rows"
        r = await call(pool, snap, "/countries?id=eq.9", single)
        assert (r.status, body(r)["details"]) == (406, "The result contains 0 rows")
        r = await call(
            pool, snap, "/cities?select=id,name,country_id&order=id", (("accept", "text/csv"),)
        )
        assert r.status == 200
        assert r.header("content-type") == "text/csv; charset=utf-8"
        assert r.body.decode() == (
            'id,name,country_id\n1,Paris,1\n2,Lyon,1\n3,Tokyo,2\n4,"O\'Brien ""town"", x",'
        )
        r = await call(pool, snap, "/countries", (("prefer", "count=exact"),), method="HEAD")
        assert (r.status, r.body, r.header("content-range")) == (200, b"", "0-2/3")
        r = await call(
            pool,
            snap,
            "/countries?order=id",
            (("accept", "application/vnd.pgrst.array+json;nulls=stripped"),),
        )
        assert body(r)[2] == {"id": 3, "name": "Chad"}
    finally:
        pool.close()


async def test_rest_read_embeds(database: str) -> None:
    pool, snap = await setup(database)
    try:
        r = await call(pool, snap, "/cities?select=name,countries(name)&id=in.(1,4)&order=id")
        assert body(r) == [
            {"name": "Paris", "countries": {"name": "France"}},
            {"name": 'O\'Brien "town", x', "countries": None},
        ]
        r = await call(
            pool, snap, "/countries?select=name,cities(name)&order=id&cities.order=name.desc"
        )
        assert body(r) == [
            {"name": "France", "cities": [{"name": "Paris"}, {"name": "Lyon"}]},
            {"name": "Japan", "cities": [{"name": "Tokyo"}]},
            {"name": "Chad", "cities": []},
        ]
        r = await call(
            pool, snap, "/countries?select=name,cities!inner(name)&order=id&cities.name=eq.Lyon"
        )
        assert body(r) == [{"name": "France", "cities": [{"name": "Lyon"}]}]
        r = await call(
            pool, snap, "/countries?select=name,cities(name)&order=id&cities.name=eq.Lyon"
        )
        assert [c["cities"] for c in body(r)] == [[{"name": "Lyon"}], [], []]
        r = await call(
            pool,
            snap,
            "/countries?select=id,towns:cities(id)&order=id&towns.order=id.desc&towns.limit=1&towns.offset=1",
        )
        assert body(r) == [
            {"id": 1, "towns": [{"id": 1}]},
            {"id": 2, "towns": []},
            {"id": 3, "towns": []},
        ]
        r = await call(pool, snap, "/films?select=title,actors(name)&order=id&actors.order=name")
        assert body(r) == [
            {"title": "Alien", "actors": [{"name": "Sigourney"}]},
            {"title": "Heat", "actors": [{"name": "Al"}, {"name": "Robert"}]},
            {"title": "Up", "actors": []},
        ]
        r = await call(pool, snap, "/films?select=title,roles(character,actors(name))&id=eq.1")
        assert body(r) == [
            {"title": "Alien", "roles": [{"character": "Ripley", "actors": {"name": "Sigourney"}}]}
        ]
        r = await call(pool, snap, "/cities?select=name,...countries(country:name)&id=eq.3")
        assert body(r) == [{"name": "Tokyo", "country": "Japan"}]
        r = await call(pool, snap, "/countries?select=name,cities()&cities=not.is.null&order=id")
        assert body(r) == [{"name": "France"}, {"name": "Japan"}]
        r = await call(pool, snap, "/countries?select=name,cities()&cities=is.null")
        assert body(r) == [{"name": "Chad"}]
        r = await call(
            pool,
            snap,
            "/countries?select=name,cities(id)&or=(cities.not.is.null,id.eq.3)&order=id&cities.id=eq.3",
        )
        assert [c["name"] for c in body(r)] == ["Japan", "Chad"]
        r = await call(pool, snap, "/messages?select=body,people(name)")
        assert r.status == 300
        assert body(r)["code"] == "PGRST201"
        assert len(body(r)["details"]) == 2
        r = await call(
            pool,
            snap,
            "/messages?select=body,sender:people!message_sender_fkey(name),receiver:people!receiver_id(name)&order=id",
        )
        assert body(r) == [
            {"body": "hi", "sender": {"name": "ann"}, "receiver": {"name": "bob"}},
            {"body": "yo", "sender": {"name": "bob"}, "receiver": {"name": "ann"}},
        ]
        r = await call(pool, snap, "/films?select=title,nope(*)")
        assert (r.status, body(r)["code"]) == (400, "PGRST200")
        r = await call(
            pool, snap, "/cities?select=name,countries(name)&order=countries(name).desc,id&limit=2"
        )
        assert [c["name"] for c in body(r)] == ['O\'Brien "town", x', "Tokyo"]  # desc: nulls first
        r = await call(pool, snap, "/countries?select=name&cities.id=eq.1")
        assert (r.status, body(r)["code"]) == (400, "PGRST108")
        r = await call(pool, snap, "/countries?select=name,towns:cities(id)&cities.id=eq.1")
        assert (r.status, body(r)["code"]) == (400, "PGRST108")
    finally:
        pool.close()


async def test_rest_read_errors_and_rls(database: str) -> None:
    pool, snap = await setup(database)
    try:
        r = await call(pool, snap, "/citys")
        assert (r.status, body(r)["code"]) == (404, "PGRST205")
        assert body(r)["hint"] == "Perhaps you meant the table 'public.cities'"
        r = await call(pool, snap, "/cities?select=nope")
        assert (r.status, body(r)["code"], body(r)["message"]) == (
            400,
            "42703",
            "column cities.nope does not exist",
        )
        r = await call(pool, snap, "/cities?nope=eq.1")
        assert (r.status, body(r)["code"]) == (400, "42703")
        r = await call(pool, snap, "/cities?id=eq.abc")
        assert (r.status, body(r)["code"]) == (400, "22P02")
        r = await call(pool, snap, "/notes?select=id&order=id", auth=ANON)
        assert ids(r) == [3]
        r = await call(pool, snap, "/notes?select=id&order=id", auth=USER1)
        assert ids(r) == [1]
        r = await call(pool, snap, "/notes?select=id&order=id", auth=SERVICE)
        assert ids(r) == [1, 2, 3]
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("revoke select on public.films from anon")
        r = await call(pool, snap, "/films", auth=ANON)
        assert (r.status, body(r)["code"]) == (401, "42501")
        r = await call(pool, snap, "/films?select=title&id=eq.1", auth=USER1)
        assert body(r) == [{"title": "Alien"}]
    finally:
        pool.close()
