"""`/rest/v1/rpc` through supabase-py against `madbase serve`: calls, results, errors, reloads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import postgrest
import psycopg
import pytest
import supabase

from tests.e2e.test_rest_clients import ANN, close, create_rest_schema, user_token
from tests.e2e.test_serve import Served, start

pytestmark = [pytest.mark.pg, pytest.mark.clients]

# Functions over the tables of tests/e2e/test_rest_clients.py's SCHEMA. Writes go to rpc_events
# only, so that the read tests sharing a server (tests/js) see the same cities.
RPC_SCHEMA = """
create table public.rpc_events (id serial primary key, note text not null);
grant select, insert on public.rpc_events to anon, authenticated;
grant usage on sequence public.rpc_events_id_seq to anon, authenticated;
create function public.add_them(a int, b int) returns int
  language sql immutable as $$ select a + b $$;
create function public.greet(name text default 'guest') returns text
  language sql stable as $$ select 'Hello ' || name || '!' $$;
create function public.cities_in(code text) returns setof public.cities
  language sql stable as $$
    select c.* from public.cities c join public.countries k on k.id = c.country_id
     where k.code = cities_in.code $$;
create function public.biggest_city() returns public.cities
  language sql stable as $$ select * from public.cities order by population desc limit 1 $$;
create function public.squares(n int) returns table (x int, sq int)
  language sql immutable as $$ select g, g * g from generate_series(1, n) g $$;
create function public.touch() returns void language sql as $$ $$;
create function public.fail(code text, msg text) returns void
  language plpgsql as $$ begin raise exception using errcode = code, message = msg,
    hint = 'try again'; end $$;
create function public.my_todos() returns setof public.todos
  language sql stable as $$ select * from public.todos order by id $$;
create function public.sum_all(variadic v int[]) returns int
  language sql immutable as $$ select sum(x)::int from unnest(v) x $$;
create function public.echo(json) returns json language sql immutable as $$ select $1 $$;
create function public.log_event(note text) returns public.rpc_events
  language sql as $$ insert into public.rpc_events (note) values (note) returning * $$;
create function public.log_events(notes text[]) returns setof public.rpc_events
  language sql as $$
    insert into public.rpc_events (note) select unnest(notes) returning * $$;
create function public.set_leak(v text) returns text
  language sql as $$ select set_config('app.leak', v, false) $$;
create function public.get_leak() returns text
  language sql stable as $$ select coalesce(current_setting('app.leak', true), '') $$;
create function public.over(a int) returns text language sql immutable as $$ select 'one' $$;
create function public.over(a int, b int) returns text
  language sql immutable as $$ select 'two' $$;
create function public.amb(a int) returns text language sql immutable as $$ select 'int' $$;
create function public.amb(a text) returns text language sql immutable as $$ select 'text' $$;
create schema private;
create function private.hidden() returns int language sql as $$ select 1 $$;
"""


def wait_callable(
    served: Served, function: str, *, profile: str = "public", deadline_s: float = 15
) -> httpx.Response:
    """POST /rpc/<function> until it stops answering 404 (the schema cache reloaded)."""
    deadline = time.monotonic() + deadline_s
    while True:
        probe = httpx.post(
            f"{served.url}/rest/v1/rpc/{function}",
            headers={"apikey": served.anon_key, "content-profile": profile},
            json={},
        )
        if probe.status_code != 404 or time.monotonic() > deadline:
            return probe
        time.sleep(0.1)


def create_rpc_schema(served: Served) -> None:
    """Create RPC_SCHEMA and wait until the reloaded schema cache can call its functions."""
    with psycopg.connect(served.db_url, autocommit=True) as conn:
        conn.execute(RPC_SCHEMA)
    probe = wait_callable(served, "get_leak")
    assert probe.status_code == 200, probe.text


@pytest.fixture(scope="module")
def rpc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    data_dir = tmp_path_factory.mktemp("rpc") / "data"
    served = start(data_dir)
    try:
        create_rest_schema(served)
        create_rpc_schema(served)
        yield served, data_dir
    finally:
        served.stop()


@pytest.fixture
def anon(rpc_server: tuple[Served, Path]) -> Iterator[supabase.Client]:
    served, _ = rpc_server
    client = supabase.create_client(served.url, served.anon_key)
    try:
        yield client
    finally:
        close(client)


def test_rpc_scalar_calls_by_post_and_get(anon: supabase.Client) -> None:
    assert anon.rpc("add_them", {"a": 1, "b": 2}).execute().data == 3
    assert anon.rpc("add_them", {"a": 40, "b": 2}, get=True).execute().data == 42
    assert anon.rpc("greet", {}).execute().data == "Hello guest!"
    assert anon.rpc("greet", {"name": "Ann"}, get=True).execute().data == "Hello Ann!"
    assert anon.rpc("sum_all", {"v": [1, 2, 3]}).execute().data == 6
    assert anon.rpc("echo", {"x": [1, None]}).execute().data == {"x": [1, None]}
    assert anon.rpc("over", {"a": 1}).execute().data == "one"
    assert anon.rpc("over", {"a": 1, "b": 2}).execute().data == "two"


def test_rpc_table_results_filter_order_count(anon: supabase.Client) -> None:
    result = (
        anon.rpc("cities_in", {"code": "JP"}, count=postgrest.CountMethod.exact)
        .select("name")
        .gt("population", 1000000)
        .order("name", desc=True)
        .execute()
    )
    assert (result.data, result.count) == ([{"name": "Tokyo"}, {"name": "Osaka"}], 2)
    page = anon.rpc("cities_in", {"code": "FR"}, get=True).select("id").order("id").limit(1)
    assert page.execute().data == [{"id": 10}]
    embedded = anon.rpc("cities_in", {"code": "FR"}).select("name,countries(name)").eq("id", 11)
    assert embedded.execute().data == [{"name": "Lyon", "countries": {"name": "France"}}]
    head = anon.rpc("cities_in", {"code": "FR"}, count=postgrest.CountMethod.exact, head=True)
    assert head.execute().count == 2
    assert anon.rpc("biggest_city", {}).select("name").execute().data == {"name": "Tokyo"}
    single = anon.rpc("cities_in", {"code": "FR"}).select("name").eq("id", 10).single()
    assert single.execute().data == {"name": "Paris"}
    assert anon.rpc("squares", {"n": 3}).gte("sq", 4).execute().data == [
        {"x": 2, "sq": 4},
        {"x": 3, "sq": 9},
    ]


def test_rpc_void_and_writes(anon: supabase.Client, rpc_server: tuple[Served, Path]) -> None:
    served, _ = rpc_server
    raw = httpx.post(
        f"{served.url}/rest/v1/rpc/touch", headers={"apikey": served.anon_key}, json={}
    )
    assert (raw.status_code, raw.content, raw.headers.get("content-type")) == (204, b"", None)
    assert anon.rpc("touch", {}).execute().data == []
    event = anon.rpc("log_event", {"note": "hello"}).select("note").execute().data
    assert event == {"note": "hello"}
    # GET runs read only: a volatile function that writes answers 405 (SQLSTATE 25006)
    with pytest.raises(postgrest.APIError) as caught:
        anon.rpc("log_event", {"note": "nope"}, get=True).execute()
    assert caught.value.code == "25006"


def test_rpc_max_affected_and_single_undo_the_call(anon: supabase.Client) -> None:
    notes = ["py-a", "py-b", "py-c"]
    with pytest.raises(postgrest.APIError) as caught:
        anon.rpc("log_events", {"notes": notes}).max_affected(2).execute()
    assert (caught.value.code, caught.value.details) == ("PGRST124", "The query affects 3 rows")
    with pytest.raises(postgrest.APIError) as caught:
        anon.rpc("log_events", {"notes": notes}).select("note").single().execute()
    assert caught.value.code == "PGRST116"
    written = anon.table("rpc_events").select("note").in_("note", notes).execute()
    assert written.data == []
    done = anon.rpc("log_events", {"notes": notes[:2]}).max_affected(2).execute()
    assert [row["note"] for row in done.data] == notes[:2]


def test_rpc_errors_reach_the_client(anon: supabase.Client) -> None:
    with pytest.raises(postgrest.APIError) as caught:
        anon.rpc("fail", {"code": "P0001", "msg": "no way"}).execute()
    assert (caught.value.code, caught.value.message, caught.value.hint) == (
        "P0001",
        "no way",
        "try again",
    )
    with pytest.raises(postgrest.APIError) as caught:
        anon.rpc("add_them", {"a": 1}).execute()
    assert caught.value.code == "PGRST202"
    assert caught.value.message == (
        "Could not find the function public.add_them(a) in the schema cache"
    )
    assert caught.value.hint == "Perhaps you meant to call the function public.add_them(a, b)"
    with pytest.raises(postgrest.APIError) as caught:
        anon.rpc("amb", {"a": 1}).execute()
    assert caught.value.code == "PGRST203"
    with pytest.raises(postgrest.APIError) as caught:
        anon.rpc("hidden", {}).execute()
    assert caught.value.code == "PGRST202"


def test_rpc_status_from_custom_sqlstate(rpc_server: tuple[Served, Path]) -> None:
    served, _ = rpc_server
    r = httpx.post(
        f"{served.url}/rest/v1/rpc/fail",
        headers={"apikey": served.anon_key},
        json={"code": "PT418", "msg": "teapot"},
    )
    assert (r.status_code, r.json()["code"], r.json()["message"]) == (418, "PT418", "teapot")
    r = httpx.put(f"{served.url}/rest/v1/rpc/touch", headers={"apikey": served.anon_key})
    assert (r.status_code, r.json()["code"]) == (405, "PGRST101")


def test_rpc_runs_as_the_caller(rpc_server: tuple[Served, Path], anon: supabase.Client) -> None:
    served, data_dir = rpc_server
    assert anon.rpc("my_todos", {}).execute().data == []
    ann = supabase.create_client(served.url, served.anon_key)
    try:
        ann.postgrest.auth(user_token(data_dir, ANN))
        tasks = ann.rpc("my_todos", {}).select("task").execute().data
        assert tasks == [{"task": "write tests"}, {"task": "ship"}]
    finally:
        close(ann)


def test_rpc_session_settings_do_not_leak(anon: supabase.Client) -> None:
    assert anon.rpc("set_leak", {"v": "secret"}).execute().data == "secret"
    # more calls than the pool has connections: each one lands on a reused connection
    for _ in range(8):
        assert anon.rpc("get_leak", {}, get=True).execute().data == ""


def test_rpc_new_function_is_callable_after_reload(rpc_server: tuple[Served, Path]) -> None:
    served, _ = rpc_server
    r = httpx.post(f"{served.url}/rest/v1/rpc/fresh", headers={"apikey": served.anon_key})
    assert (r.status_code, r.json()["code"]) == (404, "PGRST202")
    with psycopg.connect(served.db_url, autocommit=True) as conn:
        conn.execute(
            "create function public.fresh() returns text language sql as $$ select 'new' $$"
        )
    probe = wait_callable(served, "fresh")
    assert (probe.status_code, probe.json()) == (200, "new")
    with psycopg.connect(served.db_url, autocommit=True) as conn:
        conn.execute("drop function public.fresh()")
    deadline = time.monotonic() + 15
    while True:
        gone = httpx.post(f"{served.url}/rest/v1/rpc/fresh", headers={"apikey": served.anon_key})
        # until the reload, Postgres itself answers (42883, also 404)
        if gone.json().get("code") == "PGRST202" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert gone.json()["code"] == "PGRST202"


def test_rpc_profiles_pick_the_schema(tmp_path: Path) -> None:
    served = start(tmp_path / "data", "--db-schemas", "public,api")
    try:
        with psycopg.connect(served.db_url, autocommit=True) as conn:
            conn.execute(
                "create schema api; grant usage on schema api to anon;"
                "create function api.where_am_i() returns text language sql stable"
                " as $$ select 'api' $$"
            )
        client = supabase.create_client(
            served.url,
            served.anon_key,
            options=supabase.ClientOptions(schema="api"),
        )
        try:
            assert wait_callable(served, "where_am_i", profile="api").status_code == 200
            assert client.rpc("where_am_i", {}).execute().data == "api"
            assert client.rpc("where_am_i", {}, get=True).execute().data == "api"
        finally:
            close(client)
        r = httpx.post(f"{served.url}/rest/v1/rpc/where_am_i", headers={"apikey": served.anon_key})
        assert (r.status_code, r.json()["code"]) == (404, "PGRST202")
    finally:
        served.stop()
