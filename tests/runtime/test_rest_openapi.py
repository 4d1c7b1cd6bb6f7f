"""`GET /rest/v1/`: the OpenAPI document against the embedded Postgres, as each role sees it."""

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

FIXTURE = """
comment on schema public is 'Shop API
that sells things

on the internet';
create type public.mood as enum ('happy', 'sad');
create domain public.short_text as varchar(10);
create table public.countries (id int primary key, name text not null);
comment on table public.countries is 'Countries
Where the shops are';
comment on column public.countries.id is 'The ISO number';
create table public.shops (
  id bigint generated always as identity primary key,
  name character varying(40) not null default 'unnamed',
  code public.short_text,
  country_id int references public.countries (id),
  mood public.mood default 'happy',
  open boolean not null default true,
  rating numeric(3, 1) default 4.5,
  tags text[] not null default '{}',
  meta jsonb,
  opened_at timestamptz default now()
);
create view public.shop_names as select id, name, country_id from public.shops;
create table public.secrets (id int primary key, value text);
revoke all on public.secrets from anon, authenticated;
create function public.add(a int, b int default 1) returns int language sql immutable
  as 'select a + b';
comment on function public.add(int, int) is 'Adds
two numbers';
create function public.bump() returns void language sql as 'select';
create function public.total(variadic v int[]) returns int language sql stable
  as 'select sum(x)::int from unnest(v) x';
create function public.hidden() returns int language sql stable as 'select 1';
revoke execute on function public.hidden() from public, anon, authenticated;
"""

ANON = Principal(role="anon", claims_json='{"role":"anon"}')
SERVICE = Principal(role="service_role", claims_json='{"role":"service_role"}')


async def setup(database: str) -> tuple[Pool, SchemaSnapshot]:
    pool = Pool(database, DbSettings())
    await migrate(pool)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(FIXTURE)
    return pool, await SchemaCache().load(pool, ("public",))


async def get_root(
    pool: Pool,
    snap: SchemaSnapshot,
    *headers: tuple[str, str],
    method: str = "GET",
    auth: Principal = ANON,
    limits: RestLimits | None = None,
) -> Response:
    limits = limits or RestLimits()
    request = Request(method=method, target="/rest/v1/", headers=headers, body=b"")
    try:
        api = parse_request(request, "/", limits, ("public",))
        plan = plan_request(api, snap, auth, limits=limits, path="/", headers_json="{}")
    except RestError as err:
        return err.to_response()
    return respond(plan, await pool.run(plan.transaction))


def refs(value: Any) -> list[str]:
    out: list[str] = []
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "$ref":
                out.append(child)
            else:
                out += refs(child)
    elif isinstance(value, list):
        for child in value:
            out += refs(child)
    return out


async def test_openapi_document(database: str) -> None:
    pool, snap = await setup(database)
    try:
        r = await get_root(pool, snap, ("host", "api.example.com:8443"))
        assert r.status == 200
        assert r.header("content-type") == "application/openapi+json; charset=utf-8"
        doc = json.loads(r.body)
        # every reference resolves
        for ref in refs(doc):
            kind, name = ref.removeprefix("#/").split("/", 1)
            assert name in doc[kind], ref
        assert doc["swagger"] == "2.0"
        assert doc["info"]["title"] == "Shop API"
        assert doc["info"]["description"] == "that sells things\n\non the internet"
        assert (doc["host"], doc["basePath"], doc["schemes"]) == (
            "api.example.com:8443",
            "/rest/v1/",
            ["http"],
        )
        assert doc["produces"] == [
            "application/json",
            "application/vnd.pgrst.object+json;nulls=stripped",
            "application/vnd.pgrst.object+json",
            "text/csv",
        ]
        assert "security" not in doc
        # anon sees what it has privileges on
        assert sorted(doc["paths"]) == [
            "/",
            "/countries",
            "/rpc/add",
            "/rpc/bump",
            "/rpc/total",
            "/shop_names",
            "/shops",
        ]
        assert sorted(doc["definitions"]) == ["countries", "shop_names", "shops"]
        countries = doc["definitions"]["countries"]
        assert countries == {
            "description": "Countries\nWhere the shops are",
            "properties": {
                "id": {
                    "description": "The ISO number\n\nNote:\nThis is a Primary Key.<pk/>",
                    "format": "int32",
                    "type": "integer",
                },
                "name": {"format": "text", "type": "string"},
            },
            "required": ["id", "name"],
            "type": "object",
        }
        shops = doc["definitions"]["shops"]["properties"]
        assert shops["id"] == {
            "description": "Note:\nThis is a Primary Key.<pk/>",
            "format": "int64",
            "type": "integer",
        }
        assert shops["name"] == {
            "default": "unnamed",
            "format": "character varying",
            "maxLength": 40,
            "type": "string",
        }
        assert shops["code"] == {"format": "character varying", "maxLength": 10, "type": "string"}
        assert shops["country_id"] == {
            "description": "Note:\nThis is a Foreign Key to `countries.id`."
            "<fk table='countries' column='id'/>",
            "format": "int32",
            "type": "integer",
        }
        assert shops["mood"] == {
            "default": "happy",
            "enum": ["happy", "sad"],
            "format": "public.mood",
            "type": "string",
        }
        assert shops["open"] == {"default": True, "format": "boolean", "type": "boolean"}
        assert shops["rating"] == {"default": 4.5, "format": "numeric", "type": "number"}
        assert shops["tags"] == {"format": "text[]", "items": {"type": "string"}, "type": "array"}
        assert shops["meta"] == {"format": "jsonb"}
        assert shops["opened_at"] == {
            "default": "now()",
            "format": "timestamp with time zone",
            "type": "string",
        }
        assert doc["definitions"]["shops"]["required"] == ["id", "name", "open", "tags"]
        # views: the key and the foreign key carry over
        assert doc["definitions"]["shop_names"]["properties"]["country_id"]["description"] == (
            "Note:\nThis is a Foreign Key to `countries.id`.<fk table='countries' column='id'/>"
        )
        # paths
        get = doc["paths"]["/countries"]["get"]
        assert (get["tags"], get["summary"], get["description"]) == (
            ["countries"],
            "Countries",
            "Where the shops are",
        )
        assert get["parameters"] == [
            {"$ref": "#/parameters/rowFilter.countries.id"},
            {"$ref": "#/parameters/rowFilter.countries.name"},
            {"$ref": "#/parameters/select"},
            {"$ref": "#/parameters/order"},
            {"$ref": "#/parameters/range"},
            {"$ref": "#/parameters/rangeUnit"},
            {"$ref": "#/parameters/offset"},
            {"$ref": "#/parameters/limit"},
            {"$ref": "#/parameters/preferCount"},
        ]
        assert get["responses"]["200"]["schema"] == {
            "items": {"$ref": "#/definitions/countries"},
            "type": "array",
        }
        assert sorted(doc["paths"]["/countries"]) == ["delete", "get", "patch", "post"]
        assert doc["paths"]["/countries"]["post"]["parameters"] == [
            {"$ref": "#/parameters/body.countries"},
            {"$ref": "#/parameters/select"},
            {"$ref": "#/parameters/preferPost"},
        ]
        assert doc["parameters"]["rowFilter.countries.id"] == {
            "name": "id",
            "description": "The ISO number",
            "required": False,
            "in": "query",
            "type": "string",
        }
        assert doc["parameters"]["preferReturn"]["enum"] == [
            "return=representation",
            "return=minimal",
            "return=none",
        ]
        assert "enum" not in doc["parameters"]["preferParams"]
        # functions: VOLATILE ones are POST only; argument schemas
        assert sorted(doc["paths"]["/rpc/bump"]) == ["post"]
        add = doc["paths"]["/rpc/add"]
        assert (add["get"]["summary"], add["get"]["description"]) == ("Adds", "two numbers")
        assert add["get"]["parameters"] == [
            {"name": "a", "required": True, "in": "query", "format": "int32", "type": "integer"},
            {"name": "b", "required": False, "in": "query", "format": "int32", "type": "integer"},
        ]
        assert add["post"]["parameters"][0] == {
            "name": "args",
            "required": True,
            "in": "body",
            "schema": {
                "description": "Adds\ntwo numbers",
                "properties": {
                    "a": {"format": "int32", "type": "integer"},
                    "b": {"format": "int32", "type": "integer"},
                },
                "required": ["a"],
                "type": "object",
            },
        }
        assert doc["paths"]["/rpc/total"]["get"]["parameters"] == [
            {
                "name": "v",
                "required": False,
                "in": "query",
                "type": "array",
                "collectionFormat": "multi",
                "items": {"format": "int32", "type": "integer"},
            }
        ]
        # the service role sees the private table and function too
        r = await get_root(pool, snap, auth=SERVICE)
        doc = json.loads(r.body)
        assert "/secrets" in doc["paths"]
        assert "/rpc/hidden" in doc["paths"]
        assert doc["host"] == "localhost:80"
    finally:
        pool.close()


async def test_openapi_negotiation(database: str) -> None:
    pool, snap = await setup(database)
    try:
        for accept in ("application/openapi+json", "application/json", "*/*"):
            r = await get_root(pool, snap, ("accept", accept))
            assert r.status == 200, accept
        r = await get_root(pool, snap, ("accept", "text/csv"))
        assert (r.status, json.loads(r.body)["code"]) == (406, "PGRST107")
        r = await get_root(pool, snap, method="HEAD")
        assert (r.status, r.body) == (200, b"")
        r = await get_root(pool, snap, ("accept-profile", "public"))
        assert r.header("content-profile") == "public"
        r = await get_root(pool, snap, ("accept-profile", "nope"))
        assert (r.status, json.loads(r.body)["code"]) == (406, "PGRST106")
        everything = RestLimits(openapi_ignore_privileges=True)
        doc = json.loads((await get_root(pool, snap, limits=everything)).body)
        assert "/secrets" in doc["paths"]
        assert "/rpc/hidden" in doc["paths"]
        r = await get_root(pool, snap, limits=RestLimits(openapi_enabled=False))
        assert (r.status, json.loads(r.body)["code"]) == (404, "PGRST126")
        r = await get_root(pool, snap, ("host", "a b/c"), ("x-forwarded-proto", "https"))
        assert json.loads(r.body)["host"] == "localhost:443"
    finally:
        pool.close()
