"""The read planner against a hand-built snapshot: SQL shape, parameters, errors, responses."""

from __future__ import annotations

import json
from urllib.parse import quote

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.http.messages import Request
from madbase.protocol.identity.bearer import Principal
from madbase.protocol.rest import (
    Cardinality,
    Column,
    Junction,
    QualifiedName,
    Relation,
    RelationKind,
    Relationship,
    RestError,
    RestLimits,
    SchemaSnapshot,
    parse_request,
)
from madbase.protocol.rest.build import pg_array
from madbase.protocol.rest.plan import Plan, plan_request
from madbase.protocol.rest.respond import content_range, respond
from madbase.protocol.sql import DbError, DbResult


def q(name: str) -> QualifiedName:
    return QualifiedName("public", name)


def table(name: str, *cols: str) -> Relation:
    return Relation(
        name=q(name),
        kind=RelationKind.TABLE,
        columns=tuple(
            Column(name=c, position=i + 1, type="integer", base_type="integer")
            for i, c in enumerate(cols)
        ),
        primary_key=("id",),
    )


def fk(
    source: str, target: str, name: str, col: str, *, back: bool = False
) -> tuple[Relationship, Relationship]:
    m2o = Relationship(
        source=q(source),
        target=q(target),
        cardinality=Cardinality.MANY_TO_ONE,
        constraint=name,
        columns=((col, "id"),),
    )
    o2m = Relationship(
        source=q(target),
        target=q(source),
        cardinality=Cardinality.ONE_TO_MANY,
        constraint=name,
        columns=(("id", col),),
        source_is_referenced=True,
    )
    return m2o, o2m


SNAP = SchemaSnapshot.build(
    schemas=("public",),
    relations=(
        table("countries", "id", "name"),
        table("cities", "id", "name", "country_id", "data"),
        table("films", "id", "title"),
        table("actors", "id", "name"),
        table("roles", "film_id", "actor_id"),
        table("people", "id", "name"),
        table("messages", "id", "sender_id", "receiver_id"),
    ),
    relationships=(
        *fk("cities", "countries", "cities_country_id_fkey", "country_id"),
        *fk("messages", "people", "message_sender_fkey", "sender_id"),
        *fk("messages", "people", "message_receiver_fkey", "receiver_id"),
        Relationship(
            source=q("films"),
            target=q("actors"),
            cardinality=Cardinality.MANY_TO_MANY,
            constraint="roles",
            junction=Junction(
                relation=q("roles"),
                source_constraint="roles_film_id_fkey",
                source_columns=(("id", "film_id"),),
                target_constraint="roles_actor_id_fkey",
                target_columns=(("actor_id", "id"),),
            ),
        ),
    ),
)
AUTH = Principal(role="authenticated", claims_json='{"role":"authenticated","sub":"u1"}')


def plan(target: str, *headers: tuple[str, str], method: str = "GET") -> Plan:
    limits = RestLimits()
    path = target.split("?", 1)[0]
    api = parse_request(
        Request(method=method, target="/rest/v1" + target, headers=headers),
        path,
        limits,
        ("public",),
    )
    return plan_request(api, SNAP, AUTH, limits=limits, path=path, headers_json='{"a":"b"}')


def error(target: str, *headers: tuple[str, str]) -> RestError:
    with pytest.raises(RestError) as info:
        plan(target, *headers)
    return info.value


def test_plan_settings_in_postgrest_order_and_read_only() -> None:
    p = plan("/cities?select=id", ("prefer", "timezone=UTC"))
    tx = p.transaction
    assert tx.read_only
    assert not tx.rollback
    assert [name for name, _ in tx.settings] == [
        "search_path",
        "role",
        "request.jwt.claims",
        "request.method",
        "request.path",
        "request.headers",
        "request.cookies",
        "timezone",
    ]
    values = dict(tx.settings)
    assert values["role"] == "authenticated"
    assert values["request.jwt.claims"] == AUTH.claims_json
    assert (values["request.method"], values["request.path"]) == ("GET", "/cities")
    assert values["request.headers"] == '{"a":"b"}'
    assert values["search_path"] == '"public", "public"'
    assert p.preference_applied == "timezone=UTC"


def test_plan_binds_every_value() -> None:
    p = plan("/cities?select=id,data->a->>0&name=eq.x&id=in.(1,2)&data->>k=like.a*b&order=id")
    (st_,) = p.transaction.statements
    assert st_.params == ("a", "0", "x", '{"1","2"}', "k", "a%b")
    assert "$1::text" in st_.sql
    assert "$2::integer" in st_.sql
    assert '"cities"."name" = $3' in st_.sql
    assert "= any($4)" in st_.sql
    assert 'order by "cities"."id"' in st_.sql


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00")))
def test_plan_sql_text_never_depends_on_values(value: str) -> None:
    v = quote(value, safe="")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    in_tree = quote(f'"{escaped}"', safe="")
    base = plan("/cities?select=id&name=eq.x&data->>k=like.x&or=(id.eq.1,name.neq.y)")
    other = plan(f"/cities?select=id&name=eq.{v}&data->>k=like.{v}&or=(id.eq.1,name.neq.{in_tree})")
    assert base.transaction.statements[0].sql == other.transaction.statements[0].sql
    params = other.transaction.statements[0].params
    assert params[0] == value
    assert params[-1] == value


@pytest.mark.parametrize("value", ["'; drop table x; --", "$1", '"a"', "--", ";", "\\"])
def test_plan_hostile_values_are_params(value: str) -> None:
    p = plan(f"/cities?name=eq.{quote(value, safe='')}")
    assert p.transaction.statements[0].params == (value,)
    assert (
        p.transaction.statements[0].sql == plan("/cities?name=eq.x").transaction.statements[0].sql
    )


def test_plan_unknown_table_hints() -> None:
    err = error("/citys")
    assert (err.code, err.status) == ("PGRST205", 404)
    assert err.message == "Could not find the table 'public.citys' in the schema cache"
    assert err.hint == "Perhaps you meant the table 'public.cities'"
    assert error("/zzzzzz").hint is None


@pytest.mark.parametrize(
    "target",
    [
        "/cities?select=nope",
        "/cities?nope=eq.1",
        "/cities?order=nope",
        "/cities?select=id,countries(nope)",
        "/cities?select=id,countries(id)&countries.nope=eq.1",
        "/cities?select=id,countries(id)&order=countries(nope)",
    ],
)
def test_plan_unknown_column(target: str) -> None:
    err = error(target)
    assert (err.code, err.status) == ("42703", 400)
    assert err.message.endswith("does not exist")


def test_plan_relationship_errors() -> None:
    err = error("/films?select=id,countrys(id)")
    assert (err.code, err.status) == ("PGRST200", 400)
    assert (
        err.message
        == "Could not find a relationship between 'films' and 'countrys' in the schema cache"
    )
    err = error("/cities?select=id,countres(id)")
    assert err.hint == "Perhaps you meant 'countries' instead of 'countres'."
    err = error("/cities?select=id,countries!nope(id)")
    assert err.details == (
        "Searched for a foreign key relationship between 'cities' and 'countries' using the "
        "hint 'nope' in the schema 'public', but no matches were found."
    )
    err = error("/messages?select=id,people(id)")
    assert (err.code, err.status) == ("PGRST201", 300)
    assert isinstance(err.details, list)
    assert len(err.details) == 2
    assert err.hint == (
        "Try changing 'people' to one of the following: 'people!message_sender_fkey', "
        "'people!message_receiver_fkey'. Find the desired relationship in the 'details' key."
    )


def test_plan_embed_errors() -> None:
    assert error("/cities?select=id&countries.id=eq.1").code == "PGRST108"
    err = error("/cities?select=id,c:countries(id)&countries.id=eq.1")
    assert err.code == "PGRST108"
    assert err.hint == "Change 'countries' to 'c' in filters, orders or limits."
    assert error("/cities?select=id,countries(id)&countries=eq.1").code == "PGRST120"
    assert error("/countries?select=id,cities(id)&order=cities(id)").code == "PGRST118"
    assert error("/countries?select=id,...cities(id)").code == "PGRST127"
    assert error("/cities?select=id::int[]").code in ("PGRST100",)


def test_plan_embed_shapes() -> None:
    sql = plan("/films?select=title,actors!inner(name)").transaction.statements[0].sql
    assert "join lateral" in sql
    assert "left join lateral" not in sql
    assert '"public"."roles" "roles_1"' in sql
    assert "having count(*) > 0" in sql
    sql = plan("/cities?select=id,...countries(name)").transaction.statements[0].sql
    assert '"cities_countries_1".*' in sql


def test_plan_media_and_rollback() -> None:
    refused = error("/cities", ("accept", "application/geo+json"))
    assert (refused.status, refused.code) == (406, "PGRST107")


def result(total: int | None, rows: int, body: bytes) -> list[DbResult]:
    enc = None if total is None else str(total).encode()
    return [DbResult(rows=((enc, str(rows).encode(), body),), command="SELECT 1")]


def test_respond_statuses_and_headers() -> None:
    p = plan("/cities?limit=2", ("prefer", "count=exact"), ("accept-profile", "public"))
    r = respond(p, result(5, 2, b"[1,2]"))
    assert (r.status, r.body) == (206, b"[1,2]")
    assert r.headers == (
        ("content-type", "application/json; charset=utf-8"),
        ("content-range", "0-1/5"),
        ("content-profile", "public"),
        ("preference-applied", "count=exact"),
    )
    r = respond(plan("/cities?offset=7", ("prefer", "count=exact")), result(5, 0, b"[]"))
    assert r.status == 416
    assert (
        json.loads(r.body)["details"] == "An offset of 7 was requested, but there are only 5 rows."
    )
    r = respond(plan("/cities", method="HEAD"), result(None, 3, b"[1,2,3]"))
    assert (r.status, r.body, r.header("content-range")) == (200, b"", "0-2/*")
    single = ("accept", "application/vnd.pgrst.object+json")
    r = respond(plan("/cities", single), result(None, 2, b"{}"))
    assert (r.status, json.loads(r.body)["details"]) == (406, "The result contains 2 rows")
    r = respond(plan("/cities", single), result(None, 1, b'{"id":1}'))
    assert (r.status, r.body) == (200, b'{"id":1}')
    assert r.header("content-type") == "application/vnd.pgrst.object+json; charset=utf-8"


def test_respond_db_errors() -> None:
    p = plan("/cities")
    r = respond(p, DbError(sqlstate="42501", message="permission denied for table cities"))
    assert r.status == 403
    anon = attrs.evolve(p, anonymous=True)
    assert respond(anon, DbError(sqlstate="42501", message="denied")).status == 401
    assert respond(p, DbError(sqlstate="22P02", message="bad")).status == 400
    head = plan("/cities", method="HEAD")
    r = respond(head, DbError(sqlstate="42P01", message="gone"))
    assert (r.status, r.body) == (404, b"")


def test_content_range_and_pg_array() -> None:
    assert content_range(3, 0, 3) == "*/3"
    assert content_range(0, 1, 1) == "0-0/1"
    assert pg_array([]) == "{}"
    assert pg_array(['a"b']) == '{"a\\"b"}'


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("/cities?id=eq(any).{1,2}", '"cities"."id" = any($1)'),
        ("/cities?name=like(all).{a*,*b}", '"cities"."name" like all($1)'),
        ("/cities?id=is.true", '"cities"."id" is true'),
        ("/cities?id=not.is.unknown", 'not ("cities"."id" is unknown)'),
        ("/cities?name=fts.cat", 'to_tsvector("cities"."name") @@ to_tsquery($1::text)'),
        (
            "/cities?name=wfts(english).cat",
            'to_tsvector($1::regconfig, "cities"."name") @@ websearch_to_tsquery($1::regconfig, $2::text)',
        ),
        ("/cities?not.and=(id.eq.1,or(id.eq.2,id.eq.3))", 'not ("cities"."id" = $1 and ('),
        ("/cities?select=id::double precision", 'cast("cities"."id" as double precision) as "id"'),
        ("/cities?select=data->0", '"cities"."data" -> $1::integer as "data"'),
        ("/cities?order=data->a.desc.nullsfirst", "-> $1::text desc nulls first"),
        (
            "/cities?select=id,countries(name)&order=countries(name).asc",
            '("cities_countries_1".body::jsonb) -> $1::text asc',
        ),
        (
            "/cities?select=id,...countries(name)&order=countries(name)",
            'order by "cities_countries_1"."name"',
        ),
        ("/cities", "select null::bigint, count(*), coalesce(json_agg(_t), '[]')::text"),
        ("/countries?select=id,cities(id)&cities=is.null", '"countries_cities_1".body is null'),
    ],
)
def test_plan_sql_fragments(target: str, fragment: str) -> None:
    assert fragment in plan(target).transaction.statements[0].sql


@pytest.mark.parametrize(
    ("accept", "fragment"),
    [
        ("text/csv", "string_agg(substr(_t::text, 2, length(_t::text) - 2), chr(10))"),
        ("application/vnd.pgrst.object+json", "(json_agg(row_to_json(_t)) -> 0)::text"),
        ("application/vnd.pgrst.object+json;nulls=stripped", "json_strip_nulls(row_to_json(_t))"),
        ("application/vnd.pgrst.array+json;nulls=stripped", "json_agg(json_strip_nulls("),
    ],
)
def test_plan_media_bodies(accept: str, fragment: str) -> None:
    assert fragment in plan("/cities", ("accept", accept)).transaction.statements[0].sql


def test_plan_more_errors() -> None:
    assert error("/cities?select=id,countries(id),countries(id)").code == "PGRST100"
    assert error("/cities?select=id,...countries(id)&countries=is.null").code == "PGRST127"
    assert error("/cities?select=id,countries(id)&order=nope(id)").code == "PGRST108"
    assert error("/cities?select=count()").code == "PGRST123"


def test_plan_computed_fields_and_relationships() -> None:
    from madbase.protocol.rest import Function, FunctionArg

    snap = SchemaSnapshot.build(
        schemas=("public",),
        relations=(table("films", "id"), table("actors", "id")),
        relationships=(
            Relationship(
                source=q("films"),
                target=q("actors"),
                cardinality=Cardinality.ONE_TO_MANY,
                constraint="cast_of",
                function=q("cast_of"),
            ),
        ),
        functions=(
            Function(
                name=q("label"),
                args=(FunctionArg(name="", type="films", relation=q("films")),),
                return_type="text",
            ),
        ),
    )
    limits = RestLimits()
    api = parse_request(
        Request(method="GET", target="/rest/v1/films?select=label,cast_of(id)"),
        "/films",
        limits,
        ("public",),
    )
    sql = plan_request(api, snap, AUTH, limits=limits, path="/films", headers_json="{}")
    text = sql.transaction.statements[0].sql
    assert '"films"."label" as "label"' in text
    assert '"public"."cast_of"("films") "actors_1"' in text
