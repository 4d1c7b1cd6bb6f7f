"""Function calls against a hand-built snapshot: overloads, errors, arguments, SQL, responses.

Covers `madbase.protocol.rest.rpc` and `madbase.protocol.rest.overloads` (they share the snapshot).
"""

from __future__ import annotations

import contextlib
import json
from urllib.parse import quote

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.http.messages import Request, Response
from madbase.protocol.identity.bearer import Principal
from madbase.protocol.rest import (
    AmbiguousFunction,
    ArgMode,
    Column,
    Function,
    FunctionArg,
    FunctionNotFound,
    QualifiedName,
    Relation,
    RelationKind,
    RestError,
    RestLimits,
    SchemaSnapshot,
    Volatility,
    parse_request,
)
from madbase.protocol.rest.compile import compile_request
from madbase.protocol.rest.headers import MediaKind
from madbase.protocol.rest.overloads import find_function
from madbase.protocol.rest.plan import Plan, plan_request
from madbase.protocol.rest.respond import respond
from madbase.protocol.rest.rpc import with_response_settings
from madbase.protocol.sql import DbError, DbResult


def q(name: str, schema: str = "public") -> QualifiedName:
    return QualifiedName(schema, name)


def arg(
    name: str, type_: str = "integer", *, default: bool = False, mode: ArgMode = ArgMode.IN
) -> FunctionArg:
    return FunctionArg(name=name, type=type_, mode=mode, has_default=default)


def fn(
    name: str,
    *args: FunctionArg,
    returns: str = "integer",
    setof: bool = False,
    volatility: Volatility = Volatility.IMMUTABLE,
    relation: str | None = None,
    schema: str = "public",
    composite: bool = False,
) -> Function:
    return Function(
        name=q(name, schema),
        args=args,
        return_type=returns,
        returns_set=setof,
        returns_composite=composite or relation is not None,
        return_relation=None if relation is None else q(relation),
        volatility=volatility,
    )


FILMS = Relation(
    name=q("films"),
    kind=RelationKind.TABLE,
    columns=tuple(
        Column(name=c, position=i + 1, type="integer", base_type="integer")
        for i, c in enumerate(("id", "year"))
    ),
    primary_key=("id",),
)
FUNCTIONS = (
    fn("add", arg("a"), arg("b")),
    fn("greet", arg("name", "text", default=True), returns="text"),
    fn("mixed", arg("a"), arg("b", default=True), arg("c", default=True)),
    fn("none"),
    fn("over", arg("a"), returns="text"),
    fn("over", arg("a"), arg("b"), returns="text"),
    fn("amb", arg("a"), returns="text"),
    fn("amb", arg("a", "text"), returns="text"),
    fn("body", arg("", "json"), returns="json"),
    fn("body", arg("x"), returns="json"),
    fn("raw_text", arg("", "text"), returns="text"),
    fn("raw_xml", arg("", "xml"), returns="xml"),
    fn("raw_bytes", arg("", "bytea")),
    fn("named_json", arg("payload", "jsonb"), returns="jsonb"),
    fn("two_unnamed", arg("", "integer"), arg("", "integer")),
    fn("unnamed_int", arg("", "integer")),
    fn("trig", returns="trigger"),
    fn("sum_all", arg("v", "integer[]", mode=ArgMode.VARIADIC)),
    fn("films_after", arg("y"), returns="films", setof=True, relation="films"),
    fn("film", arg("fid"), returns="films", relation="films"),
    fn(
        "squares",
        arg("n", mode=ArgMode.TABLE),
        arg("sq", mode=ArgMode.TABLE),
        returns="record",
        setof=True,
        composite=True,
    ),
    fn("pt", returns="public.pt", composite=True),
    fn("ints", arg("n"), setof=True),
    fn("noop", returns="void", volatility=Volatility.VOLATILE),
    fn("spawn", arg("n"), setof=True, volatility=Volatility.VOLATILE),
    fn("write", arg("t", "character"), volatility=Volatility.VOLATILE),
    fn("ping", returns="text", schema="api"),
    Function(
        name=q("slow"),
        args=(),
        return_type="void",
        settings=(("statement_timeout", "5s"), ("search_path", "x"), ("work_mem", "1MB")),
    ),
)
SNAP = SchemaSnapshot.build(schemas=("public", "api"), relations=(FILMS,), functions=FUNCTIONS)
AUTH = Principal(role="anon", claims_json='{"role":"anon"}')


def find(name: str, *keys: str, post: bool = True, content: MediaKind = MediaKind.JSON) -> str:
    found = find_function(SNAP, "public", name, frozenset(keys), post=post, content=content)
    return ",".join(a.name or a.type for a in found.input_args)


def plan(
    method: str, target: str, payload: object = None, *headers: tuple[str, str], raw: bytes = b""
) -> Plan:
    limits = RestLimits(tx_allow_override=True)
    path = target.split("?", 1)[0]
    data = raw if payload is None else json.dumps(payload).encode()
    api = parse_request(
        Request(method=method, target="/rest/v1" + target, headers=headers, body=data),
        path,
        limits,
        ("public", "api"),
    )
    return plan_request(api, SNAP, AUTH, limits=limits, path=path, headers_json="{}")


def error(method: str, target: str, payload: object = None, *headers: tuple[str, str]) -> RestError:
    with pytest.raises(RestError) as info:
        plan(method, target, payload, *headers)
    return info.value


# --- overloads ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "keys", "expected"),
    [
        ("add", ("a", "b"), "a,b"),
        ("greet", (), "name"),
        ("greet", ("name",), "name"),
        ("mixed", ("a",), "a,b,c"),
        ("mixed", ("a", "c"), "a,b,c"),
        ("none", (), ""),
        ("over", ("a",), "a"),
        ("over", ("a", "b"), "a,b"),
        ("body", ("x",), "x"),  # a named match wins over the json fallback
        ("body", ("y", "z"), "json"),
        ("sum_all", ("v",), "v"),
    ],
)
def test_find_function_matches_argument_names(
    name: str, keys: tuple[str, ...], expected: str
) -> None:
    assert find(name, *keys) == expected


@pytest.mark.parametrize(
    ("name", "keys", "post"),
    [
        ("add", ("a",), True),
        ("add", ("a", "b", "c"), True),
        ("add", ("zzzzzzzzzzzzzzzzzzzzzzzzz",), True),
        ("mixed", ("b",), True),
        ("none", ("a",), True),
        ("body", ("y",), False),  # the body fallback is for POST only
        ("named_json", ("x",), True),  # a named json argument is no fallback (PostgREST 14)
        ("two_unnamed", (), True),  # unnamed arguments: not callable
        ("unnamed_int", (), True),
        ("trig", (), True),
        ("nothing", (), True),
    ],
)
def test_find_function_refuses_what_postgrest_refuses(
    name: str, keys: tuple[str, ...], post: bool
) -> None:
    with pytest.raises(FunctionNotFound):
        find(name, *keys, post=post)


def test_find_function_by_content_type() -> None:
    assert find("raw_text", content=MediaKind.TEXT) == "text"
    assert find("raw_xml", content=MediaKind.XML) == "xml"
    assert find("raw_bytes", content=MediaKind.OCTET_STREAM) == "bytea"
    with pytest.raises(FunctionNotFound):
        find("raw_text", content=MediaKind.JSON)
    with pytest.raises(FunctionNotFound):  # a raw body never calls a function without arguments
        find("none", content=MediaKind.TEXT)


def test_find_function_single_object_and_ambiguity() -> None:
    found = find_function(
        SNAP, "public", "named_json", frozenset({"x"}), post=True, single_object=True
    )
    assert found.name.name == "named_json"
    with pytest.raises(AmbiguousFunction) as info:
        find("amb", "a")
    err = info.value
    assert (err.status, err.code, err.details) == (300, "PGRST203", None)
    assert err.message == (
        "Could not choose the best candidate function between: "
        "public.amb(a => integer), public.amb(a => text)"
    )


@pytest.mark.parametrize(
    ("method", "target", "payload", "content", "message", "details", "hint"),
    [
        (
            "POST",
            "/rpc/add",
            {"a": 1, "c": 2},
            "application/json",
            "Could not find the function public.add(a, c) in the schema cache",
            "Searched for the function public.add with parameters a, c or with a single "
            "unnamed json/jsonb parameter, but no matches were found in the schema cache.",
            "Perhaps you meant to call the function public.add(a, b)",
        ),
        (
            "GET",
            "/rpc/add?a=1",
            None,
            "application/json",
            "Could not find the function public.add(a) in the schema cache",
            "Searched for the function public.add with parameter a, but no matches were found "
            "in the schema cache.",
            "Perhaps you meant to call the function public.add(a, b)",
        ),
        (
            "GET",
            "/rpc/ad",
            None,
            "application/json",
            "Could not find the function public.ad without parameters in the schema cache",
            "Searched for the function public.ad without parameters, but no matches were found "
            "in the schema cache.",
            "Perhaps you meant to call the function public.add",
        ),
        (
            "POST",
            "/rpc/add",
            "x",
            "text/plain",
            "Could not find the function public.add in the schema cache",
            "Searched for the function public.add with a single unnamed text parameter, but no "
            "matches were found in the schema cache.",
            None,
        ),
        (
            "POST",
            "/rpc/zzzzzz",
            {},
            "application/x-www-form-urlencoded",
            "Could not find the function public.zzzzzz without parameters in the schema cache",
            "Searched for the function public.zzzzzz without parameters, but no matches were "
            "found in the schema cache.",
            None,
        ),
    ],
)
def test_function_not_found_reads_as_postgrests(
    method: str,
    target: str,
    payload: object,
    content: str,
    message: str,
    details: str,
    hint: str | None,
) -> None:
    data = payload if content == "application/json" else None
    raw = b"" if content != "text/plain" else b"x"
    limits = RestLimits()
    path = target.split("?", 1)[0]
    api = parse_request(
        Request(
            method=method,
            target="/rest/v1" + target,
            headers=(("content-type", content),),
            body=raw if data is None else json.dumps(data).encode(),
        ),
        path,
        limits,
        ("public",),
    )
    with pytest.raises(FunctionNotFound) as info:
        plan_request(api, SNAP, AUTH, limits=limits, path=path, headers_json="{}")
    err = info.value
    assert (err.status, err.code) == (404, "PGRST202")
    assert (err.message, err.details, err.hint) == (message, details, hint)


# --- plans and SQL ------------------------------------------------------------------------------


def test_call_plans_read_only_by_method_and_volatility() -> None:
    assert plan("GET", "/rpc/add?a=1&b=2").transaction.read_only
    assert plan("POST", "/rpc/add", {"a": 1, "b": 2}).transaction.read_only
    assert not plan("POST", "/rpc/noop", {}).transaction.read_only
    assert plan("HEAD", "/rpc/noop").transaction.read_only
    p = plan("POST", "/rpc/noop", {}, ("prefer", "tx=rollback"))
    assert p.transaction.rollback
    assert p.preference_applied == "tx=rollback"


def test_call_sql_binds_arguments_and_quotes_names() -> None:
    st_ = plan("GET", "/rpc/add?a=1&b=2&select=x").transaction.statements[0]
    assert '"public"."add"("a" := $1::integer, "b" := $2::integer)' in st_.sql
    assert st_.params == ("1", "2")
    st_ = plan("GET", "/rpc/sum_all?v=1&v=2").transaction.statements[0]
    assert 'variadic "v" := $1::integer[]' in st_.sql
    assert st_.params == ('{"1","2"}',)
    st_ = plan("POST", "/rpc/add", {"a": 1, "b": 2}).transaction.statements[0]
    assert 'json_to_record($1::json) as pgrst_body("a" integer, "b" integer)' in st_.sql
    assert st_.params == ('{"a": 1, "b": 2}',)
    st_ = plan("POST", "/rpc/add", [{"a": 1, "b": 2}]).transaction.statements[0]
    assert "json_to_recordset($1::json)" in st_.sql
    st_ = plan("POST", "/rpc/write", {"t": "abc"}).transaction.statements[0]
    assert '"t" character varying' in st_.sql  # never cut to character(1)
    p = plan(
        "POST",
        "/rpc/raw_bytes",
        None,
        ("content-type", "application/octet-stream"),
        raw=b"\x00\xff",
    )
    assert p.transaction.statements[0].params == ("\\x00ff",)
    assert "$1::bytea" in p.transaction.statements[0].sql


def test_call_reads_its_result_like_a_relation() -> None:
    sql = plan("GET", "/rpc/films_after?y=1&select=id&year=gt.2000&order=id&limit=2").transaction
    text = sql.statements[0].sql
    assert 'from pgrst_source "films" where "films"."year" > $2' in text
    assert "limit 2" in text
    assert error("GET", "/rpc/films_after?y=1&nope=eq.1").code == "42703"
    assert error("GET", "/rpc/films_after?y=1&select=id,nope(*)").code == "PGRST200"
    assert error("GET", "/rpc/films_after?y=1&x.limit=1").code == "PGRST108"
    # the OUT/TABLE arguments are the columns of `returns table`
    assert error("GET", "/rpc/squares?z=eq.1").message == "column squares.z does not exist"
    # other composite types and scalars leave column names to Postgres
    assert '"pt"."z"' in plan("GET", "/rpc/pt?z=eq.1").transaction.statements[0].sql
    # a returned table outside the exposed schemas: read without checking its columns
    hidden = SchemaSnapshot.build(
        schemas=("public",), functions=(fn("secret", returns="private.t", relation="t"),)
    )
    tx = compile_request("GET", "/rpc/secret", "x=eq.1", {}, b"", hidden)
    assert '"secret"."x" = $1' in tx.statements[0].sql


@given(
    st.dictionaries(
        st.sampled_from(["a", "b"]),
        st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20).map(
            lambda text: "\u2603" + text  # a mark the SQL text never holds on its own
        ),
        min_size=2,
    )
)
def test_call_sql_never_holds_argument_values(args: dict[str, str]) -> None:
    p = plan("POST", "/rpc/add", args)
    statement = p.transaction.statements[0]
    assert json.loads(statement.params[0] or "") == args
    assert "\u2603" not in statement.sql


def test_call_errors_before_the_database() -> None:
    # CSV: a header line and at least as many fields per row (PGRST102 otherwise).
    e = error("POST", "/rpc/add", None, ("content-type", "text/csv"))
    assert (e.code, e.message) == ("PGRST102", "parse error (no header line)")
    csv = plan("POST", "/rpc/add", None, ("content-type", "text/csv"), raw=b"a,b\n1,2\n3,NULL\n")
    assert json.loads(csv.transaction.statements[0].params[0] or "") == [
        {"a": "1", "b": "2"},
        {"a": "3", "b": None},
    ]
    e = error("POST", "/rpc/add", None, ("content-type", "image/png"))
    assert (e.code, e.message) == ("PGRST102", "Content-Type not acceptable: image/png")
    e = error("POST", "/rpc/add", [{"a": 1}, {"b": 1}])
    assert (e.code, e.message) == ("PGRST102", "All object keys must match")
    assert error("POST", "/rpc/add", [1, 2]).code == "PGRST102"
    e = error("POST", "/rpc/add", {"a": 1, "b": 2}, ("prefer", "handling=strict,max-affected=1"))
    assert e.code == "PGRST128"
    p = plan("POST", "/rpc/ints", {"n": 1}, ("prefer", "handling=strict,max-affected=1"))
    assert "when count(*) > 1 then ('madbase-guard PGRST124 ' || count(*))::integer" in (
        p.transaction.statements[0].sql
    )
    assert p.preference_applied == "handling=strict, max-affected=1"
    # without handling=strict, max-affected is ignored (as PostgREST)
    p = plan("POST", "/rpc/ints", {"n": 1}, ("prefer", "max-affected=1"))
    assert "madbase-guard" not in p.transaction.statements[0].sql
    e = error("GET", "/rpc/ints?n=1", None, ("prefer", "handling=strict,params=single-object"))
    assert e.code == "PGRST122"


def test_call_bodies_of_other_shapes() -> None:
    form = ("content-type", "application/x-www-form-urlencoded")
    st_ = plan("POST", "/rpc/sum_all", None, form, raw=b"v=1&v=2").transaction.statements[0]
    assert st_.params == ('{"1","2"}',)
    single = ("prefer", "params=single-object")
    st_ = plan("POST", "/rpc/named_json", None, form, single, raw=b"a=1").transaction.statements[0]
    assert (st_.params, "$1::jsonb" in st_.sql) == (('{"a":"1"}',), True)
    st_ = plan("POST", "/rpc/named_json", {"a": 1}, single).transaction.statements[0]
    assert st_.params == ('{"a": 1}',)
    with pytest.raises(FunctionNotFound):
        plan("POST", "/rpc/add", {"a": 1, "b": 2}, single)
    # `columns=` names the arguments to read from the body, which is then not checked
    st_ = plan(
        "POST", "/rpc/mixed?columns=a", None, raw=b' [{"a":1,"b":2}]'
    ).transaction.statements[0]
    assert 'json_to_recordset($1::json) as pgrst_body("a" integer)' in st_.sql
    # an argument with a default left out is left out of the call
    st_ = plan("GET", "/rpc/mixed?a=1&c=3").transaction.statements[0]
    assert '"public"."mixed"("a" := $1::integer, "c" := $2::integer)' in st_.sql
    text = ("content-type", "text/plain")
    assert error("POST", "/rpc/raw_xml", None, text).code == "PGRST202"
    with pytest.raises(RestError) as info:
        plan("POST", "/rpc/raw_text", None, text, raw=b"\xff")
    assert info.value.code == "PGRST102"
    with pytest.raises(RestError) as info:
        plan("POST", "/rpc/add", None, raw=b"\xff")
    assert info.value.code == "PGRST102"
    with pytest.raises(RestError) as info:
        plan("POST", "/rpc/raw_text", None, text, raw=b"a\x00b")
    assert info.value.code == "PGRST102"
    with pytest.raises(RestError) as info:
        plan("POST", "/rpc/mixed?columns=a", None, raw=b'{"a":"\x00"}')
    assert info.value.code == "PGRST102"
    st_ = plan("POST", "/rpc/raw_text", None, text, raw=b"hi").transaction.statements[0]
    assert (st_.params, "$1::text" in st_.sql) == (("hi",), True)


def test_call_json_bodies() -> None:
    st_ = plan("POST", "/rpc/greet").transaction.statements[0]  # empty body: no arguments
    assert '"public"."greet"()' in st_.sql
    with pytest.raises(RestError) as info:
        plan("POST", "/rpc/greet", None, raw=b"{nope")
    assert (info.value.code, info.value.message) == ("PGRST102", "Empty or invalid json")
    st_ = plan("POST", "/rpc/body", {"y": 1, "z": 2}).transaction.statements[0]
    assert (st_.params, "$1::json" in st_.sql) == (('{"y": 1, "z": 2}',), True)
    st_ = plan("POST", "/rpc/greet", [{}]).transaction.statements[0]
    assert "$1" not in st_.sql  # no argument named: nothing read from the body


def test_call_media_and_ranges() -> None:
    csv = plan("GET", "/rpc/ints?n=3", None, ("accept", "text/csv")).transaction.statements[0]
    assert "string_agg" in csv.sql
    stripped = ("accept", "application/vnd.pgrst.array+json;nulls=stripped")
    sql = plan("GET", "/rpc/films_after?y=1", None, stripped).transaction.statements[0].sql
    assert "json_strip_nulls(json_agg(_t))" in sql
    sql = plan("GET", "/rpc/ints?n=9&offset=3&limit=2").transaction.statements[0].sql
    assert sql.endswith("limit 2 offset 3) _t")
    assert plan("GET", "/rpc/film?fid=1").transaction.statements[0].sql.count("-> 0") == 1


def test_call_media_without_postgis() -> None:
    e = error("GET", "/rpc/ints?n=1", None, ("accept", "application/geo+json"))
    assert (e.status, e.code) == (406, "PGRST107")


def test_call_in_another_exposed_schema() -> None:
    p = plan("GET", "/rpc/ping", None, ("accept-profile", "api"))
    assert '"api"."ping"()' in p.transaction.statements[0].sql
    assert p.profile == "api"
    assert error("GET", "/rpc/ping").code == "PGRST202"


def test_scalar_json_bodies_read_as_an_empty_array() -> None:
    # PostgREST reads a JSON body that is neither an object nor an array as `[]`.
    st_ = plan("POST", "/rpc/none", 5).transaction.statements[0]
    assert '"public"."none"()' in st_.sql
    st_ = plan("POST", "/rpc/body", "x").transaction.statements[0]
    assert st_.params == ("[]",)


# --- responses ----------------------------------------------------------------------------------


def result(
    total: bytes | None,
    rows: bytes,
    body: bytes | None,
    headers: bytes | None = None,
    status: bytes | None = None,
) -> list[DbResult]:
    return [DbResult(rows=((total, rows, body, headers, status),), command="SELECT 1")]


def test_respond_to_calls() -> None:
    r = respond(plan("POST", "/rpc/noop", {}), result(None, b"1", None))
    assert (r.status, r.body, r.header("content-type"), r.header("content-range")) == (
        204,
        b"",
        None,
        "0-0/*",
    )
    r = respond(plan("GET", "/rpc/add?a=1&b=2"), result(None, b"1", b"3"))
    assert (r.status, r.body, r.header("content-range")) == (200, b"3", "0-0/*")
    p = plan("GET", "/rpc/ints?n=5&limit=2", None, ("prefer", "count=exact"))
    r = respond(p, result(b"5", b"2", b"[1,2]"))
    assert (r.status, r.header("content-range"), r.header("preference-applied")) == (
        206,
        "0-1/5",
        "count=exact",
    )
    r = respond(plan("HEAD", "/rpc/ints?n=5"), result(None, b"5", None))
    assert (r.status, r.body) == (200, b"")


def test_compile_request_calls_functions() -> None:
    tx = compile_request(
        "POST", "/rpc/add", "", {"Content-Type": "application/json"}, b'{"a":1,"b":2}', SNAP
    )
    assert '"public"."add"(' in tx.statements[0].sql


def test_guards_roll_back_what_the_call_did() -> None:
    obj = ("accept", "application/vnd.pgrst.object+json")
    sql = plan("POST", "/rpc/spawn", {"n": 1}, obj).transaction.statements[0].sql
    assert "when count(*) <> 1 then ('madbase-guard PGRST116 ' || count(*))::integer" in sql
    # read-only calls have nothing to undo: respond checks the row count
    assert (
        "madbase-guard" not in plan("GET", "/rpc/ints?n=1", None, obj).transaction.statements[0].sql
    )
    refused = DbError(
        sqlstate="22P02",
        message='invalid input syntax for type integer: "madbase-guard PGRST124 7"',
    )
    r = respond(plan("POST", "/rpc/ints", {"n": 1}), refused)
    assert (r.status, json.loads(r.body)["details"]) == (400, "The query affects 7 rows")
    r = respond(
        plan("POST", "/rpc/ints", {"n": 1}, obj),
        attrs.evolve(refused, message=refused.message.replace("PGRST124 7", "PGRST116 0")),
    )
    assert (r.status, json.loads(r.body)["code"]) == (406, "PGRST116")
    # the same text from anything but a call is an ordinary error
    r = respond(plan("GET", "/films"), refused)
    assert (r.status, json.loads(r.body)["code"]) == (400, "22P02")


def test_response_settings_override_status_and_headers() -> None:
    p = plan("POST", "/rpc/add", {"a": 1, "b": 2})
    r = respond(
        p, result(None, b"1", b"3", b'[{"Location": "/x"}, {"Content-Range": "*/9"}]', b"201")
    )
    assert (r.status, r.body) == (201, b"3")
    assert r.headers == (
        ("location", "/x"),
        ("content-range", "*/9"),
        ("content-type", "application/json; charset=utf-8"),
        ("content-profile", "public"),  # two schemas are exposed: negotiated
    )
    r = respond(plan("POST", "/rpc/noop", {}), result(None, b"1", None, None, b"202"))
    assert (r.status, r.body) == (202, b"")
    r = respond(p, result(None, b"1", b"3", b"{}"))
    assert (r.status, r.header("proxy-status")) == (500, "PostgREST; error=PGRST111")
    r = respond(p, result(None, b"1", b"3", None, b"abc"))
    assert (r.status, r.header("proxy-status")) == (500, "PostgREST; error=PGRST112")
    r = respond(plan("HEAD", "/rpc/ints?n=1"), result(None, b"1", None, None, b"x"))
    assert (r.status, r.body) == (500, b"")


@pytest.mark.parametrize(
    "headers",
    [
        b"nope",
        b'{"a": "b"}',
        b'["a"]',
        b'[{"a": "b", "c": "d"}]',
        b'[{"a": 1}]',
        b'[{"bad name": "x"}]',
        b'[{"x": "line\\nbreak"}]',
        b'[{"x": "caf\\u00e9"}]',
    ],
)
def test_response_headers_setting_must_be_single_key_objects(headers: bytes) -> None:
    with pytest.raises(RestError) as info:
        with_response_settings(Response(status=200), headers, None)
    assert info.value.code == "PGRST111"


@pytest.mark.parametrize("status", [b"", b"abc", b"99", b"600", b"1e3", b"\xff"])
def test_response_status_setting_must_be_a_status(status: bytes) -> None:
    with pytest.raises(RestError) as info:
        with_response_settings(Response(status=200), None, status)
    assert info.value.code == "PGRST112"


def test_response_settings_keep_framing_headers_the_servers() -> None:
    r = with_response_settings(
        Response(status=200), b'[{"Content-Length": "1"}, {"Transfer-Encoding": "x"}]', b" 418 "
    )
    assert (r.status, r.headers) == (418, ())
    same = Response(status=200)
    assert with_response_settings(same, b"[]", None) is same


def test_function_settings_hoisted_into_the_transaction() -> None:
    settings = plan("POST", "/rpc/slow", {}).transaction.settings
    assert settings[-1] == ("statement_timeout", "5s")
    assert ("search_path", "x") not in settings
    assert all(name != "work_mem" for name, _ in settings)


@given(
    st.sampled_from(["add", "body", "greet", "sum_all", "raw_text", "raw_bytes", "nothing"]),
    st.sampled_from(
        [
            "application/json",
            "text/plain",
            "application/octet-stream",
            "text/xml",
            "x/y",
            "",
            "application/x-www-form-urlencoded",
        ]
    ),
    st.one_of(
        st.binary(max_size=64),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.sampled_from(["a", "b", "v", "x", ""]), inner, max_size=3)
            ),
            max_leaves=8,
        ).map(lambda value: json.dumps(value).encode()),
    ),
    st.sampled_from(["", "params=single-object", "handling=strict", "count=exact"]),
)
def test_call_planning_accepts_or_raises_rest_error(
    name: str, content: str, data: bytes, prefer: str
) -> None:
    headers = (("content-type", content), ("prefer", prefer))
    try:
        p = plan("POST", f"/rpc/{name}", None, *headers, raw=data)
    except RestError:
        return
    statement = p.transaction.statements[0]
    assert statement.sql.startswith("with pgrst_source as (")


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "v", "n", "select"]), st.text(max_size=8))))
def test_call_reads_accept_or_raise_rest_error(pairs: list[tuple[str, str]]) -> None:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs)
    for name in ("add", "sum_all", "ints", "greet"):
        with contextlib.suppress(RestError):
            plan("GET", f"/rpc/{name}?{query}")


def test_respond_to_calls_like_reads() -> None:
    raised = DbError(sqlstate="P0001", message="boom", hint="h")
    r = respond(plan("POST", "/rpc/noop", {}), raised)
    assert (r.status, json.loads(r.body)) == (
        400,
        {"code": "P0001", "message": "boom", "details": None, "hint": "h"},
    )
    assert respond(plan("HEAD", "/rpc/ints?n=1"), raised).body == b""
    counted = plan("GET", "/rpc/ints?n=1&offset=5", None, ("prefer", "count=exact"))
    r = respond(counted, result(b"2", b"0", b"[]"))
    assert (r.status, json.loads(r.body)["code"]) == (416, "PGRST103")
    obj = ("accept", "application/vnd.pgrst.object+json")
    r = respond(plan("GET", "/rpc/ints?n=2", None, obj), result(None, b"2", b"1"))
    assert (r.status, json.loads(r.body)["details"]) == (406, "The result contains 2 rows")
    r = respond(plan("GET", "/rpc/ping", None, ("accept-profile", "api")), result(None, b"1", None))
    assert (r.status, r.body, r.header("content-profile")) == (200, b"", "api")
