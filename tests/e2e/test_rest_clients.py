"""`/rest/v1` reads through supabase-py against `madbase serve`, RLS included."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import postgrest
import psycopg
import pytest
import supabase

from tests.e2e.test_serve import Served, start
from tests.runtime.test_rest_write_returning import write_only_tables

pytestmark = [pytest.mark.pg, pytest.mark.clients]

ANN = "6f1c7a8e-0000-4000-8000-0000000000a1"
BOB = "6f1c7a8e-0000-4000-8000-0000000000b2"

SCHEMA = f"""
create table public.countries (id int primary key, name text not null, code text unique);
create table public.cities (
  id int primary key, name text not null, population int,
  country_id int references public.countries (id)
);
insert into public.countries values (1, 'France', 'FR'), (2, 'Japan', 'JP'), (3, 'Chile', 'CL');
insert into public.cities values
  (10, 'Paris', 2100000, 1), (11, 'Lyon', 520000, 1), (20, 'Tokyo', 14000000, 2),
  (21, 'Osaka', 2700000, 2);
create table public.todos (id int primary key, owner uuid not null, task text not null);
alter table public.todos enable row level security;
create policy own_todos on public.todos for select to authenticated using (owner = auth.uid());
insert into public.todos values (1, '{ANN}', 'write tests'), (2, '{ANN}', 'ship'), (3, '{BOB}', 'review');
-- written by tests/js/rest_writes.test.mjs only (node runs test files concurrently)
create table public.js_items (
  id int primary key, name text not null, qty int not null default 5, note text
);
insert into public.js_items values (1, 'bolt', 10, null), (2, 'nut', 20, null), (3, 'gear', 30, null);
""" + write_only_tables("js_")  # also only for rest_writes.test.mjs


def close(client: supabase.Client) -> None:
    """Close the HTTP clients supabase-py opened (its postgrest session and its auth client)."""
    client.postgrest.aclose()
    client.auth._http_client.close()


def user_token(data_dir: Path, sub: str) -> str:
    secret = json.loads((data_dir / "secrets.json").read_text())["jwt_secret"]
    now = int(time.time())
    claims = {
        "sub": sub,
        "role": "authenticated",
        "aud": "authenticated",
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def create_rest_schema(served: Served) -> None:
    """Create SCHEMA through the database URL and wait for the schema cache to see it."""
    with psycopg.connect(served.db_url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    # DDL reloads the schema cache (event trigger -> NOTIFY pgrst); wait until it has.
    deadline = time.monotonic() + 15
    while True:
        probe = httpx.get(f"{served.url}/rest/v1/todos", headers={"apikey": served.anon_key})
        if probe.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert probe.status_code == 200, probe.text


@pytest.fixture(scope="module")
def rest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    data_dir = tmp_path_factory.mktemp("rest") / "data"
    served = start(data_dir)
    try:
        create_rest_schema(served)
        yield served, data_dir
    finally:
        served.stop()


@pytest.fixture
def anon(rest_server: tuple[Served, Path]) -> Iterator[supabase.Client]:
    served, _ = rest_server
    client = supabase.create_client(served.url, served.anon_key)
    try:
        yield client
    finally:
        close(client)


def test_rest_select_filter_order_limit(anon: supabase.Client) -> None:
    result = (
        anon.table("cities")
        .select("id,name")
        .gt("population", 1000000)
        .order("population", desc=True)
        .limit(2)
        .execute()
    )
    assert result.data == [{"id": 20, "name": "Tokyo"}, {"id": 21, "name": "Osaka"}]


def test_rest_embeds_many_to_one_and_one_to_many(anon: supabase.Client) -> None:
    city = anon.table("cities").select("name, country:countries(code)").eq("id", 11).execute()
    assert city.data == [{"name": "Lyon", "country": {"code": "FR"}}]
    countries = (
        anon.table("countries")
        .select("name, cities(name)")
        .order("id")
        .order("id", foreign_table="cities")
        .execute()
    )
    assert countries.data == [
        {"name": "France", "cities": [{"name": "Paris"}, {"name": "Lyon"}]},
        {"name": "Japan", "cities": [{"name": "Tokyo"}, {"name": "Osaka"}]},
        {"name": "Chile", "cities": []},
    ]


def test_rest_count_and_single(anon: supabase.Client) -> None:
    counted = anon.table("cities").select("id", count="exact").eq("country_id", 1).execute()
    assert counted.count == 2
    assert len(counted.data) == 2
    one = anon.table("countries").select("name").eq("code", "JP").single().execute()
    assert one.data == {"name": "Japan"}
    with pytest.raises(postgrest.APIError) as caught:
        anon.table("countries").select("name").single().execute()
    assert caught.value.code == "PGRST116"


def test_rest_or_and_in_filters(anon: supabase.Client) -> None:
    result = (
        anon.table("cities")
        .select("name")
        .or_("name.eq.Paris,population.lt.1000000")
        .order("id")
        .execute()
    )
    assert result.data == [{"name": "Paris"}, {"name": "Lyon"}]
    listed = anon.table("countries").select("code").in_("id", [1, 3]).order("id").execute()
    assert listed.data == [{"code": "FR"}, {"code": "CL"}]


def test_rest_rls_by_role(rest_server: tuple[Served, Path], anon: supabase.Client) -> None:
    served, data_dir = rest_server
    assert anon.table("todos").select("id").execute().data == []
    ann = supabase.create_client(served.url, served.anon_key)
    service = supabase.create_client(served.url, served.service_role_key)
    try:
        ann.postgrest.auth(user_token(data_dir, ANN))
        assert ann.table("todos").select("task").order("id").execute().data == [
            {"task": "write tests"},
            {"task": "ship"},
        ]
        assert [
            r["id"] for r in service.table("todos").select("id").order("id").execute().data
        ] == [1, 2, 3]
    finally:
        close(ann)
        close(service)


def test_rest_errors_reach_the_client(anon: supabase.Client) -> None:
    with pytest.raises(postgrest.APIError) as missing:
        anon.table("countrys").select("*").execute()
    assert missing.value.code == "PGRST205"
    assert "countries" in (missing.value.hint or "")
    with pytest.raises(postgrest.APIError) as column:
        anon.table("countries").select("nope").execute()
    assert column.value.code == "42703"


def test_rest_options_lists_allowed_methods_and_geojson_is_406(
    rest_server: tuple[Served, Path],
) -> None:
    served, _ = rest_server
    headers = {"apikey": served.anon_key}
    table = httpx.options(f"{served.url}/rest/v1/cities", headers=headers)
    assert table.status_code == 200
    assert table.headers["allow"] == "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE"
    assert table.content == b""
    root = httpx.options(f"{served.url}/rest/v1/", headers=headers)
    assert root.headers["allow"] == "OPTIONS,GET,HEAD"
    missing = httpx.options(f"{served.url}/rest/v1/citiez", headers=headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "PGRST205")
    # A browser's preflight is still answered by the gateway, not as OPTIONS on the table.
    preflight = httpx.options(
        f"{served.url}/rest/v1/cities",
        headers={"origin": "https://app.example", "access-control-request-method": "PATCH"},
    )
    assert preflight.status_code == 200
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    geo = httpx.get(
        f"{served.url}/rest/v1/cities", headers={**headers, "accept": "application/geo+json"}
    )
    assert (geo.status_code, geo.json()["code"]) == (406, "PGRST107")
