"""`/rpc/<function>` through the whole REST core against the embedded Postgres.

parse_request -> plan_request -> Pool.run -> respond, compared with what PostgREST answers for
the same request (bodies written by hand from PostgREST's documented semantics and its tests).
"""

from __future__ import annotations

import json
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

SCHEMAS = ("public", "api")

FIXTURE = """
create table public.directors (id int primary key, name text not null);
create table public.films (
  id int primary key, title text not null, year int,
  director_id int references public.directors(id)
);
insert into public.directors values (1, 'Scott'), (2, 'Mann');
insert into public.films values (1, 'Alien', 1979, 1), (2, 'Heat', 1995, 2),
  (3, 'Gladiator', 2000, 1), (4, 'Up', 2009, null);
grant select, insert on public.films to anon, authenticated;
grant select on public.directors to anon, authenticated;

create function public.add_them(a int, b int) returns int
  language sql immutable as $$ select a + b $$;
create function public.greet(name text default 'guest') returns text
  language sql stable as $$ select 'Hello ' || name || '!' $$;
create function public.films_after(y int) returns setof public.films
  language sql stable as $$ select * from public.films where year > y order by id $$;
create function public.shout_title(public.films) returns text
  language sql stable as $$ select upper($1.title) $$;
create function public.film(fid int) returns public.films
  language sql stable as $$ select * from public.films where id = fid $$;
create function public.squares() returns table (n int, sq int)
  language sql immutable as $$ select g, g * g from generate_series(1, 4) g $$;
create function public.answer(out answer int)
  language sql immutable as $$ select 42 $$;
create function public.ints(n int) returns setof int
  language sql immutable as $$ select generate_series(1, n) $$;
create function public.noop() returns void language sql as $$ $$;
create function public.echo_json(json) returns json language sql immutable as $$ select $1 $$;
create function public.shout(text) returns text language sql immutable as $$ select upper($1) $$;
create function public.byte_len(bytea) returns int
  language sql immutable as $$ select length($1) $$;
create function public.named_json(payload jsonb) returns jsonb
  language sql immutable as $$ select payload $$;
create function public.sum_all(variadic v int[]) returns int
  language sql immutable as $$ select sum(x)::int from unnest(v) x $$;
create function public.plus_one(arr int[]) returns int[]
  language sql immutable as $$ select array_agg(n + 1) from unnest(arr) n $$;
create function public.pad(c character(3)) returns text
  language sql immutable as $$ select c::text $$;
create function public.over(a int) returns text language sql immutable as $$ select 'one' $$;
create function public.over(a int, b int) returns text language sql immutable as $$ select 'two' $$;
create function public.amb(a int) returns text language sql immutable as $$ select 'int' $$;
create function public.amb(a text) returns text language sql immutable as $$ select 'text' $$;
create function public.add_film(id int, title text) returns public.films
  language sql as $$ insert into public.films (id, title) values (id, title) returning * $$;
create function public.raise_it(code text, msg text default 'boom') returns void
  language plpgsql as $$ begin raise exception '%', msg using errcode = code, hint = 'a hint'; end $$;
create function public.leak(v text) returns text
  language sql as $$ select set_config('app.leak', v, false) $$;
create function public.peek() returns text
  language sql stable as $$ select current_setting('app.leak', true) $$;
create function public.whoami() returns text
  language sql stable as $$ select current_user || ':' || coalesce(auth.uid()::text, '-') $$;
create function public.nullable_row() returns public.films
  language sql stable as $$ select * from public.films where false $$;
create type public.pt as (x int, y int);
create function public.point_of(x int, y int) returns public.pt
  language sql immutable as $$ select row(x, y)::public.pt $$;
create function public.points() returns setof public.pt
  language sql immutable as $$ values (row(1, 2)::public.pt), (row(3, 4)::public.pt) $$;
create function public.trig() returns trigger language plpgsql as $$ begin return null; end $$;
create table public.notes (id int primary key, owner uuid, body text);
alter table public.notes enable row level security;
create policy own on public.notes for select to authenticated using (owner = auth.uid());
grant select on public.notes to authenticated, anon;
insert into public.notes values
  (1, '00000000-0000-0000-0000-000000000001', 'mine'),
  (2, '00000000-0000-0000-0000-000000000002', 'theirs');
create function public.my_notes() returns setof public.notes
  language sql stable as $$ select * from public.notes order by id $$;
create function public.created(id int) returns json language plpgsql as $$
begin
  perform set_config('response.status', '201', true);
  perform set_config('response.headers',
    json_build_array(json_build_object('Location', '/films?id=eq.' || id))::text, true);
  return json_build_object('id', id);
end $$;
create function public.bad_headers() returns int language plpgsql as $$
begin perform set_config('response.headers', '{"not": "an array"}', true); return 1; end $$;
create function public.slow() returns void language sql
  set statement_timeout = '100ms' as $$ select pg_sleep(3) $$;
create function public.add_films(n int) returns setof public.films language sql as $$
  insert into public.films (id, title)
  select (select greatest(max(id), 100) from public.films) + g, 'new ' || g
    from generate_series(1, n) g
  returning * $$;
create function public.untyped() returns setof record
  language sql stable as $$ select id, title from public.films where id < 3 order by id $$;
create schema private;
create function private.hidden() returns int language sql as $$ select 1 $$;
create schema api;
grant usage on schema api to anon, authenticated, service_role;
create function api.ping() returns text language sql stable as $$ select 'pong from api' $$;
"""

ANON = Principal(role="anon", claims_json='{"role":"anon"}')
SERVICE = Principal(role="service_role", claims_json='{"role":"service_role"}')
UID = "00000000-0000-0000-0000-000000000001"
USER1 = Principal(
    role="authenticated",
    claims_json=f'{{"role":"authenticated","sub":"{UID}"}}',
    subject=UID,
)
JSON = ("content-type", "application/json")


async def setup(database: str) -> tuple[Pool, SchemaSnapshot]:
    pool = Pool(database, DbSettings())
    await migrate(pool)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(FIXTURE)
    snapshot = await SchemaCache().load(pool, SCHEMAS)
    return pool, snapshot


async def call(
    pool: Pool,
    snapshot: SchemaSnapshot,
    method: str,
    target: str,
    payload: Any = None,
    *headers: tuple[str, str],
    raw: bytes | None = None,
    auth: Principal = SERVICE,
    limits: RestLimits | None = None,
) -> Response:
    limits = limits or RestLimits()
    data = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
    if not any(name == "content-type" for name, _ in headers):
        headers = (JSON, *headers)
    request = Request(method=method, target="/rest/v1" + target, headers=headers, body=data)
    path = target.split("?", 1)[0]
    try:
        api = parse_request(request, path, limits, SCHEMAS)
        plan = plan_request(
            api, snapshot, auth, limits=limits, path=path, headers_json=json.dumps(dict(headers))
        )
    except RestError as err:
        return err.to_response()
    return respond(plan, await pool.run(plan.transaction))


def body(r: Response) -> Any:
    return json.loads(r.body)


async def test_rpc_post_get_and_head_scalars(database: str) -> None:
    pool, snap = await setup(database)
    try:
        r = await call(pool, snap, "POST", "/rpc/add_them", {"a": 1, "b": 2})
        assert (r.status, r.body, r.header("content-range")) == (200, b"3", "0-0/*")
        assert r.header("content-type") == "application/json; charset=utf-8"
        r = await call(pool, snap, "GET", "/rpc/add_them?a=40&b=2")
        assert (r.status, r.body) == (200, b"42")
        r = await call(pool, snap, "HEAD", "/rpc/add_them?a=40&b=2")
        assert (r.status, r.body, r.header("content-range")) == (200, b"", "0-0/*")
        # default arguments may be left out; text comes back as a JSON string
        r = await call(pool, snap, "POST", "/rpc/greet", None)
        assert (r.status, body(r)) == (200, "Hello guest!")
        r = await call(pool, snap, "GET", "/rpc/greet?name=Ann")
        assert body(r) == "Hello Ann!"
        # a JSON string for an integer argument is read as Postgres reads text
        r = await call(pool, snap, "POST", "/rpc/add_them", {"a": "1", "b": 2.0})
        assert (r.status, body(r)["code"]) == (400, "22P02"), r.body
        r = await call(pool, snap, "POST", "/rpc/add_them", {"a": "1", "b": "2"})
        assert body(r) == 3
        # one OUT argument is still an object, as in PostgREST
        r = await call(pool, snap, "GET", "/rpc/answer")
        assert body(r) == {"answer": 42}
        # character(n) arguments are not cut to their length
        r = await call(pool, snap, "GET", "/rpc/pad?c=abcdef")
        assert body(r) == "abcdef"
    finally:
        pool.close()


async def test_rpc_set_returning_reads_like_a_table(database: str) -> None:
    pool, snap = await setup(database)
    try:
        r = await call(pool, snap, "GET", "/rpc/films_after?y=1990&select=title")
        assert body(r) == [{"title": "Heat"}, {"title": "Gladiator"}, {"title": "Up"}]
        # filters (also on columns not selected), order, limit/offset, count
        r = await call(
            pool,
            snap,
            "GET",
            "/rpc/films_after?y=1900&select=title&director_id=eq.1&order=year.desc",
            None,
            ("prefer", "count=exact"),
        )
        assert body(r) == [{"title": "Gladiator"}, {"title": "Alien"}]
        assert (r.status, r.header("content-range")) == (200, "0-1/2")
        r = await call(
            pool,
            snap,
            "POST",
            "/rpc/films_after?select=id&order=id&limit=2&offset=1",
            {"y": 1900},
            ("prefer", "count=exact"),
        )
        assert (r.status, body(r), r.header("content-range")) == (
            206,
            [{"id": 2}, {"id": 3}],
            "1-2/4",
        )
        # the Range header on GET
        r = await call(
            pool, snap, "GET", "/rpc/films_after?y=1900&select=id&order=id", None, ("range", "2-")
        )
        assert body(r) == [{"id": 3}, {"id": 4}]
        # embedding from the returned table's relationships
        r = await call(
            pool,
            snap,
            "GET",
            "/rpc/films_after?y=1990&select=title,director:directors(name)&order=id",
        )
        assert body(r) == [
            {"title": "Heat", "director": {"name": "Mann"}},
            {"title": "Gladiator", "director": {"name": "Scott"}},
            {"title": "Up", "director": None},
        ]
        # computed fields of the returned table
        r = await call(pool, snap, "GET", "/rpc/films_after?y=1996&select=id,shout_title")
        assert body(r) == [{"id": 3, "shout_title": "GLADIATOR"}, {"id": 4, "shout_title": "UP"}]
        r = await call(pool, snap, "GET", "/rpc/films_after?y=1990&select=title,nope(*)")
        assert (r.status, body(r)["code"]) == (400, "PGRST200")
        r = await call(pool, snap, "GET", "/rpc/films_after?y=1990&nope=eq.1")
        assert (r.status, body(r)["code"]) == (400, "42703")
        assert body(r)["message"] == "column films.nope does not exist"
        # an offset past the end
        r = await call(
            pool, snap, "GET", "/rpc/films_after?y=1990&offset=9", None, ("prefer", "count=exact")
        )
        assert (r.status, body(r)["code"]) == (416, "PGRST103")
        # setof scalar: an array of values, with limit and count
        r = await call(pool, snap, "GET", "/rpc/ints?n=5&limit=3", None, ("prefer", "count=exact"))
        assert (r.status, body(r), r.header("content-range")) == (206, [1, 2, 3], "0-2/5")
        # returns table (...): objects of its columns, filterable
        r = await call(pool, snap, "GET", "/rpc/squares?sq=gt.4&order=n.desc")
        assert body(r) == [{"n": 4, "sq": 16}, {"n": 3, "sq": 9}]
        # composite types: one object, or an array for setof
        r = await call(pool, snap, "POST", "/rpc/point_of", {"x": 1, "y": 2})
        assert body(r) == {"x": 1, "y": 2}
        r = await call(pool, snap, "GET", "/rpc/points?x=gt.1&select=y")
        assert body(r) == [{"y": 4}]
        r = await call(pool, snap, "GET", "/rpc/points?z=gt.1")
        assert (r.status, body(r)["code"]) == (400, "42703")
        # setof record without OUT arguments: PostgREST returns the records as they come
        r = await call(pool, snap, "GET", "/rpc/untyped")
        assert body(r) == [{"id": 1, "title": "Alien"}, {"id": 2, "title": "Heat"}]
        # one row of a table: an object (all nulls when the function returns none)
        r = await call(pool, snap, "GET", "/rpc/film?fid=2&select=title,year")
        assert body(r) == {"title": "Heat", "year": 1995}
        r = await call(pool, snap, "GET", "/rpc/nullable_row?select=id")
        assert body(r) == {"id": None}
    finally:
        pool.close()


async def test_rpc_media_types(database: str) -> None:
    pool, snap = await setup(database)
    obj = ("accept", "application/vnd.pgrst.object+json")
    try:
        r = await call(pool, snap, "GET", "/rpc/films_after?y=1990&id=eq.2&select=title", None, obj)
        assert (r.status, body(r)) == (200, {"title": "Heat"})
        assert r.header("content-type") == "application/vnd.pgrst.object+json; charset=utf-8"
        r = await call(pool, snap, "GET", "/rpc/films_after?y=1990", None, obj)
        assert (r.status, body(r)["code"]) == (406, "PGRST116")
        r = await call(pool, snap, "GET", "/rpc/add_them?a=1&b=1", None, obj)
        assert (r.status, body(r)) == (200, 2)
        r = await call(pool, snap, "GET", "/rpc/film?fid=4", None, obj)
        assert body(r)["director_id"] is None
        r = await call(
            pool,
            snap,
            "GET",
            "/rpc/film?fid=4&select=id,director_id",
            None,
            ("accept", "application/vnd.pgrst.object+json;nulls=stripped"),
        )
        assert body(r) == {"id": 4}
        r = await call(
            pool,
            snap,
            "GET",
            "/rpc/films_after?y=2000&select=title,year&order=id",
            None,
            ("accept", "text/csv"),
        )
        assert (r.status, r.body) == (200, b"title,year\nUp,2009")
        r = await call(pool, snap, "GET", "/rpc/ints?n=2", None, ("accept", "text/html"))
        assert (r.status, body(r)["code"]) == (406, "PGRST107")
    finally:
        pool.close()


async def test_rpc_void_variadic_and_raw_bodies(database: str) -> None:
    pool, snap = await setup(database)
    try:
        r = await call(pool, snap, "POST", "/rpc/noop", {})
        assert (r.status, r.body, r.header("content-type")) == (204, b"", None)
        assert r.header("content-range") == "0-0/*"
        # variadic: a JSON array, or the name repeated in the query string
        r = await call(pool, snap, "POST", "/rpc/sum_all", {"v": [1, 2, 3]})
        assert body(r) == 6
        r = await call(pool, snap, "GET", "/rpc/sum_all?v=1&v=2&v=3&v=4")
        assert body(r) == 10
        r = await call(pool, snap, "GET", "/rpc/sum_all?v=5")
        assert body(r) == 5
        r = await call(
            pool,
            snap,
            "POST",
            "/rpc/sum_all",
            None,
            ("content-type", "application/x-www-form-urlencoded"),
            raw=b"v=1&v=2",
        )
        assert body(r) == 3
        # arrays: JSON array on POST, an array literal on GET
        r = await call(pool, snap, "POST", "/rpc/plus_one", {"arr": [1, 2]})
        assert body(r) == [2, 3]
        r = await call(pool, snap, "GET", "/rpc/plus_one?arr=%7B1,2,3%7D")
        assert body(r) == [2, 3, 4]
        # a single unnamed json argument takes the whole body
        r = await call(pool, snap, "POST", "/rpc/echo_json", {"x": [1, {"y": None}]})
        assert body(r) == {"x": [1, {"y": None}]}
        # ... and text, bytea by content type
        r = await call(
            pool, snap, "POST", "/rpc/shout", None, ("content-type", "text/plain"), raw=b"hi there"
        )
        assert body(r) == "HI THERE"
        r = await call(
            pool,
            snap,
            "POST",
            "/rpc/byte_len",
            None,
            ("content-type", "application/octet-stream"),
            raw=bytes(range(256)),
        )
        assert body(r) == 256
        r = await call(
            pool, snap, "POST", "/rpc/add_them", None, ("content-type", "text/plain"), raw=b"x"
        )
        assert (r.status, body(r)["code"]) == (404, "PGRST202")
        assert (
            body(r)["message"] == "Could not find the function public.add_them in the schema cache"
        )
        # Prefer: params=single-object (PostgREST 12) passes the body to a one-json-argument function
        r = await call(
            pool, snap, "POST", "/rpc/named_json", {"a": 1}, ("prefer", "params=single-object")
        )
        assert body(r) == {"a": 1}
        r = await call(pool, snap, "POST", "/rpc/named_json", {"payload": {"a": 2}})
        assert body(r) == {"a": 2}
        # an array body calls the function once per element
        r = await call(pool, snap, "POST", "/rpc/add_film?select=id", [{"id": 8, "title": "A"}])
        assert body(r) == {"id": 8}
        r = await call(pool, snap, "POST", "/rpc/add_them", [{"a": 1}, {"b": 2}])
        assert (r.status, body(r)["code"]) == (400, "PGRST102")
        # a CSV body is read as an array of objects (PostgREST): one call per row
        csv = ("content-type", "text/csv")
        r = await call(pool, snap, "POST", "/rpc/add_film?select=id,title", None, csv,
                       raw=b"id,title\n9,Ran\n10,NULL\n")  # fmt: skip
        # the second row's NULL title breaks `not null`: the whole call is refused, nothing kept
        assert (r.status, body(r)["code"]) == (400, "23502")
        r = await call(pool, snap, "POST", "/rpc/add_film?select=id,title", None, csv,
                       raw=b"id,title\n11,Ran\n")  # fmt: skip
        assert (r.status, body(r)) == (200, {"id": 11, "title": "Ran"})
        r = await call(pool, snap, "GET", "/films?select=id&id=in.(9,10,11)&order=id")
        assert body(r) == [{"id": 11}]
        r = await call(pool, snap, "POST", "/rpc/add_them", None, csv, raw=b"a,b\n1\n")
        assert (r.status, body(r)["code"]) == (400, "PGRST102")
        r = await call(pool, snap, "POST", "/rpc/add_them", None, raw=b"{oops")
        assert (r.status, body(r)["code"]) == (400, "PGRST102")
    finally:
        pool.close()


async def test_rpc_overloads_and_missing_functions(database: str) -> None:
    pool, snap = await setup(database)
    try:
        assert body(await call(pool, snap, "GET", "/rpc/over?a=1")) == "one"
        assert body(await call(pool, snap, "POST", "/rpc/over", {"a": 1, "b": 2})) == "two"
        r = await call(pool, snap, "GET", "/rpc/amb?a=1")
        assert r.status == 300
        assert body(r) == {
            "code": "PGRST203",
            "message": "Could not choose the best candidate function between: "
            "public.amb(a => integer), public.amb(a => text)",
            "details": None,
            "hint": "Try renaming the parameters or the function itself in the database so "
            "function overloading can be resolved",
        }
        r = await call(pool, snap, "POST", "/rpc/add_them", {"a": 1, "c": 2})
        assert r.status == 404
        assert body(r) == {
            "code": "PGRST202",
            "message": "Could not find the function public.add_them(a, c) in the schema cache",
            "details": "Searched for the function public.add_them with parameters a, c or with "
            "a single unnamed json/jsonb parameter, but no matches were found in the schema "
            "cache.",
            "hint": "Perhaps you meant to call the function public.add_them(a, b)",
        }
        r = await call(pool, snap, "GET", "/rpc/add_thme")
        assert body(r)["message"] == (
            "Could not find the function public.add_thme without parameters in the schema cache"
        )
        assert body(r)["hint"] == "Perhaps you meant to call the function public.add_them"
        # not exposed, not callable
        for target in ("/rpc/hidden", "/rpc/trig"):
            r = await call(pool, snap, "POST", target, {})
            assert (r.status, body(r)["code"]) == (404, "PGRST202"), target
        # profiles pick the schema
        r = await call(pool, snap, "GET", "/rpc/ping", None, ("accept-profile", "api"))
        assert (r.status, body(r), r.header("content-profile")) == (200, "pong from api", "api")
        r = await call(pool, snap, "POST", "/rpc/ping", {}, ("content-profile", "api"))
        assert body(r) == "pong from api"
        r = await call(pool, snap, "POST", "/rpc/ping", {}, ("accept-profile", "api"))
        assert (r.status, body(r)["code"]) == (404, "PGRST202")
        r = await call(pool, snap, "GET", "/rpc/ping", None, ("accept-profile", "private"))
        assert (r.status, body(r)["code"]) == (406, "PGRST106")
        r = await call(pool, snap, "PATCH", "/rpc/ping", {})
        assert (r.status, body(r)["code"]) == (405, "PGRST101")
    finally:
        pool.close()


async def test_rpc_transactions_errors_and_roles(database: str) -> None:
    pool, snap = await setup(database)
    try:
        # GET runs read only: a function that writes fails as PostgREST's does (25006 -> 405)
        r = await call(pool, snap, "GET", "/rpc/add_film?id=9&title=X")
        assert (r.status, body(r)["code"]) == (405, "25006")
        r = await call(pool, snap, "POST", "/rpc/add_film", {"id": 9, "title": "X"})
        assert (r.status, body(r)["title"]) == (200, "X")
        # tx=rollback (when allowed) answers as if committed, then undoes it
        allow = RestLimits(tx_allow_override=True)
        r = await call(
            pool,
            snap,
            "POST",
            "/rpc/add_film",
            {"id": 10, "title": "Y"},
            ("prefer", "tx=rollback"),
            limits=allow,
        )
        assert (r.status, body(r)["id"], r.header("preference-applied")) == (200, 10, "tx=rollback")
        assert body(await call(pool, snap, "GET", "/rpc/film?fid=9&select=id")) == {"id": 9}
        assert body(await call(pool, snap, "GET", "/rpc/film?fid=10&select=id")) == {"id": None}
        # return=minimal does not change a call's answer (PostgREST ignores it for functions)
        r = await call(
            pool, snap, "POST", "/rpc/ints", {"n": 3}, ("prefer", "return=minimal,count=exact")
        )
        assert (r.status, body(r), r.header("content-range")) == (200, [1, 2, 3], "0-2/3")
        assert r.header("preference-applied") == "count=exact"
        # errors raised in the function: SQLSTATE, message, hint; PT### sets the status
        r = await call(pool, snap, "POST", "/rpc/raise_it", {"code": "P0001"})
        assert r.status == 400
        assert body(r) == {"code": "P0001", "message": "boom", "details": None, "hint": "a hint"}
        r = await call(pool, snap, "POST", "/rpc/raise_it", {"code": "PT402", "msg": "pay"})
        assert (r.status, body(r)["code"], body(r)["message"]) == (402, "PT402", "pay")
        # a session setting made inside a function does not reach the next request
        r = await call(pool, snap, "POST", "/rpc/leak", {"v": "secret"})
        assert body(r) == "secret"
        for _ in range(pool.statistics().size):
            r = await call(pool, snap, "GET", "/rpc/peek")
            assert body(r) in (None, ""), r.body
        # the caller's role and claims, and RLS
        r = await call(pool, snap, "GET", "/rpc/whoami", auth=USER1)
        assert body(r) == f"authenticated:{UID}"
        r = await call(pool, snap, "GET", "/rpc/whoami", auth=ANON)
        assert body(r) == "anon:-"
        r = await call(pool, snap, "GET", "/rpc/my_notes?select=body", auth=USER1)
        assert body(r) == [{"body": "mine"}]
        r = await call(pool, snap, "GET", "/rpc/my_notes", auth=ANON)
        assert body(r) == []
        # max-affected with handling=strict on a function returning one row: PGRST128
        r = await call(
            pool,
            snap,
            "POST",
            "/rpc/add_them",
            {"a": 1, "b": 2},
            ("prefer", "handling=strict, max-affected=1"),
        )
        assert (r.status, body(r)["code"]) == (400, "PGRST128")
    finally:
        pool.close()


async def test_rpc_response_settings_and_hoisted_function_settings(database: str) -> None:
    pool, snap = await setup(database)
    try:
        r = await call(pool, snap, "POST", "/rpc/created", {"id": 7})
        assert (r.status, body(r), r.header("location")) == (201, {"id": 7}, "/films?id=eq.7")
        r = await call(pool, snap, "GET", "/rpc/bad_headers")
        assert (r.status, body(r)["code"]) == (500, "PGRST111")
        # SET statement_timeout on the function applies to the whole transaction
        r = await call(pool, snap, "POST", "/rpc/slow", {})
        assert (r.status, body(r)["code"]) == (500, "57014")
        # and does not outlive it
        assert body(await call(pool, snap, "GET", "/rpc/add_them?a=1&b=1")) == 2
    finally:
        pool.close()


async def test_rpc_refusals_roll_back_the_call(database: str) -> None:
    pool, snap = await setup(database)
    obj = ("accept", "application/vnd.pgrst.object+json")

    def new_films() -> list[int]:
        with psycopg.connect(database, autocommit=True) as conn:
            rows = conn.execute("select id from public.films where id > 99 order by id")
            return [row[0] for row in rows.fetchall()]

    try:
        # Accept: object and two rows: 406, and the two inserts are undone (as PostgREST)
        r = await call(pool, snap, "POST", "/rpc/add_films?select=id", {"n": 2}, obj)
        assert (r.status, body(r)["code"], body(r)["details"]) == (
            406,
            "PGRST116",
            "The result contains 2 rows",
        )
        assert new_films() == []
        r = await call(pool, snap, "POST", "/rpc/add_films?select=id", {"n": 1}, obj)
        assert (r.status, body(r)) == (200, {"id": 101})
        # max-affected with handling=strict: more rows than allowed is 400 and undone
        strict = ("prefer", "handling=strict, max-affected=2")
        r = await call(pool, snap, "POST", "/rpc/add_films?select=id", {"n": 3}, strict)
        assert (r.status, body(r)["code"], body(r)["details"]) == (
            400,
            "PGRST124",
            "The query affects 3 rows",
        )
        r = await call(pool, snap, "POST", "/rpc/add_films?select=id&order=id", {"n": 2}, strict)
        assert (r.status, body(r)) == (200, [{"id": 102}, {"id": 103}])
        assert r.header("preference-applied") == "handling=strict, max-affected=2"
        assert new_films() == [101, 102, 103]
        r = await call(pool, snap, "HEAD", "/rpc/ints?n=3", None, strict)
        assert (r.status, r.body) == (400, b"")
    finally:
        pool.close()
