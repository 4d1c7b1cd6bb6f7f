"""`parse_request`: routing, actions, schema, ranges, media types, preferences, every refusal."""

from __future__ import annotations

import contextlib

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.http import Request
from madbase.protocol.rest import (
    Action,
    ApiRequest,
    MediaKind,
    MediaType,
    RestError,
    RestLimits,
    RowRange,
    Target,
    TargetKind,
    parse_request,
)
from tests.protocol.rest.strategies import grammar_text, header_text, prefer_text

LIMITS = RestLimits()
SCHEMAS = ("public", "api")


def parse(
    method: str = "GET",
    subpath: str = "/todos",
    query: str = "",
    headers: tuple[tuple[str, str], ...] = (),
    limits: RestLimits = LIMITS,
    body: bytes = b"",
) -> ApiRequest:
    target = "/rest/v1" + subpath + ("?" + query if query else "")
    request = Request(method=method, target=target, headers=headers, body=body)
    return parse_request(request, subpath, limits, SCHEMAS)


@pytest.mark.parametrize(
    ("method", "subpath", "headers", "action", "target"),
    [
        (
            "GET",
            "/todos",
            (),
            Action.READ,
            Target(kind=TargetKind.RELATION, schema="public", name="todos"),
        ),
        (
            "HEAD",
            "/todos",
            (),
            Action.READ,
            Target(kind=TargetKind.RELATION, schema="public", name="todos"),
        ),
        (
            "POST",
            "/todos",
            (),
            Action.CREATE,
            Target(kind=TargetKind.RELATION, schema="public", name="todos"),
        ),
        (
            "POST",
            "/todos",
            (("prefer", "resolution=merge-duplicates"),),
            Action.UPSERT,
            Target(kind=TargetKind.RELATION, schema="public", name="todos"),
        ),
        (
            "PUT",
            "/todos",
            (),
            Action.SINGLE_UPSERT,
            Target(kind=TargetKind.RELATION, schema="public", name="todos"),
        ),
        (
            "PATCH",
            "/todos",
            (),
            Action.UPDATE,
            Target(kind=TargetKind.RELATION, schema="public", name="todos"),
        ),
        (
            "DELETE",
            "/todos",
            (("content-profile", "api"),),
            Action.DELETE,
            Target(kind=TargetKind.RELATION, schema="api", name="todos"),
        ),
        (
            "OPTIONS",
            "/todos",
            (),
            Action.INFO,
            Target(kind=TargetKind.RELATION, schema="public", name="todos"),
        ),
        (
            "GET",
            "/rpc/add",
            (("accept-profile", "api"),),
            Action.CALL_READ,
            Target(kind=TargetKind.ROUTINE, schema="api", name="add"),
        ),
        (
            "HEAD",
            "/rpc/add",
            (),
            Action.CALL_READ,
            Target(kind=TargetKind.ROUTINE, schema="public", name="add"),
        ),
        (
            "POST",
            "/rpc/add",
            (),
            Action.CALL,
            Target(kind=TargetKind.ROUTINE, schema="public", name="add"),
        ),
        (
            "OPTIONS",
            "/rpc/add",
            (),
            Action.INFO,
            Target(kind=TargetKind.ROUTINE, schema="public", name="add"),
        ),
        ("GET", "/", (), Action.SCHEMA, Target(kind=TargetKind.SCHEMA, schema="public")),
        ("GET", "", (), Action.SCHEMA, Target(kind=TargetKind.SCHEMA, schema="public")),
        ("OPTIONS", "/", (), Action.INFO, Target(kind=TargetKind.SCHEMA, schema="public")),
        (
            "GET",
            "/my%20table",
            (),
            Action.READ,
            Target(kind=TargetKind.RELATION, schema="public", name="my table"),
        ),
        (
            "GET",
            "/t%C3%A9",
            (),
            Action.READ,
            Target(kind=TargetKind.RELATION, schema="public", name="té"),
        ),
    ],
)
def test_parse_request_action_and_target(
    method: str, subpath: str, headers: tuple[tuple[str, str], ...], action: Action, target: Target
) -> None:
    api = parse(method, subpath, headers=headers)
    assert (api.action, api.target, api.head, api.method) == (
        action,
        target,
        method == "HEAD",
        method,
    )


def test_parse_request_keeps_everything_the_planner_needs() -> None:
    api = parse(
        "POST",
        "/todos",
        "select=id&columns=%22a%22&on_conflict=a",
        headers=(
            ("content-type", "application/json"),
            ("content-profile", "api"),
            ("prefer", "return=representation"),
            ("prefer", "count=exact"),
            ("cookie", "a=1; b=2; junk"),
            ("accept", "application/vnd.pgrst.object+json"),
        ),
        body=b'[{"a":1}]',
    )
    assert api.body == b'[{"a":1}]'
    assert api.negotiated_by_profile
    assert api.query.columns == ("a",)
    assert api.query.on_conflict == ("a",)
    assert api.preferences.count is not None
    assert api.preferences.return_ is not None
    assert api.media_type == MediaType(kind=MediaKind.OBJECT)
    assert api.content_type == MediaType(kind=MediaKind.JSON)
    assert api.cookies == (("a", "1"), ("b", "2"))
    assert all(name != "cookie" for name, _ in api.headers)
    assert api.path == "/todos"


def test_parse_request_defaults() -> None:
    api = parse()
    assert api.range == RowRange()
    assert api.media_type == MediaType(kind=MediaKind.JSON)
    assert api.content_type == MediaType(kind=MediaKind.JSON)
    assert api.negotiated_by_profile  # two schemas exposed: PostgREST reports it negotiated


def test_parse_request_root_negotiates_openapi() -> None:
    assert parse(subpath="/").media_type == MediaType(kind=MediaKind.OPENAPI)
    assert (
        parse(subpath="/", headers=(("accept", "application/openapi+json"),)).media_type.kind
        is MediaKind.OPENAPI
    )


def test_parse_request_rpc_get_arguments() -> None:
    api = parse("GET", "/rpc/add", "a=1&b=2&select=x&x=gt.1")
    assert api.query.rpc_args == (("a", "1"), ("b", "2"))
    assert len(api.query.filters) == 1


def test_parse_request_header_values_are_utf8() -> None:
    api = parse(headers=(("accept-profile", "api"), ("prefer", "timezone=\xc3\xa9")))
    assert api.preferences.timezone == "é"
    api = parse(headers=(("prefer", "timezone=\xe9"),))
    assert api.preferences.timezone == "é"


@pytest.mark.parametrize(
    ("method", "query", "headers", "expected"),
    [
        ("GET", "limit=10&offset=5", (), RowRange(offset=5, limit=10)),
        ("GET", "offset=5", (), RowRange(offset=5)),
        ("GET", "", (("range", "0-9"),), RowRange(offset=0, limit=10)),
        ("GET", "", (("range", "10-"),), RowRange(offset=10)),
        ("GET", "limit=5", (("range", "2-20"),), RowRange(offset=2, limit=3)),
        ("GET", "offset=3", (("range", "0-9"),), RowRange(offset=3, limit=7)),
        ("GET", "", (("range", "junk"),), RowRange()),
        ("HEAD", "", (("range", "0-9"),), RowRange()),  # Range honoured on GET only
        ("GET", "limit=0", (("range", "5-2"),), RowRange(offset=0, limit=0)),
        ("GET", "limit=0&offset=4", (), RowRange(offset=4, limit=0)),
        ("GET", "actors.limit=1", (), RowRange()),
    ],
)
def test_parse_request_top_level_range(
    method: str, query: str, headers: tuple[tuple[str, str], ...], expected: RowRange
) -> None:
    assert parse(method, query=query, headers=headers).range == expected


ERRORS = [
    # (method, subpath, query, headers, limits, status, code, message)
    ("GET", "/a/b", "", (), LIMITS, 404, "PGRST125", "Invalid path specified in request URL"),
    ("GET", "/rpc/a/b", "", (), LIMITS, 404, "PGRST125", "Invalid path specified in request URL"),
    ("GET", "/todos/", "", (), LIMITS, 404, "PGRST125", "Invalid path specified in request URL"),
    ("GET", "/%FF", "", (), LIMITS, 404, "PGRST125", "Invalid path specified in request URL"),
    ("GET", "/a%00", "", (), LIMITS, 404, "PGRST125", "Invalid path specified in request URL"),
    (
        "GET",
        "/",
        "",
        (),
        RestLimits(openapi_enabled=False),
        404,
        "PGRST126",
        "Root endpoint metadata is disabled",
    ),
    (
        "GET",
        "/t",
        "",
        (("accept-profile", "private"),),
        LIMITS,
        406,
        "PGRST106",
        "Invalid schema: private",
    ),
    (
        "POST",
        "/t",
        "",
        (("content-profile", "private"),),
        LIMITS,
        406,
        "PGRST106",
        "Invalid schema: private",
    ),
    ("PATCH", "/rpc/f", "", (), LIMITS, 405, "PGRST101", "Cannot use the PATCH method on RPC"),
    ("DELETE", "/rpc/f", "", (), LIMITS, 405, "PGRST101", "Cannot use the DELETE method on RPC"),
    ("TRACE", "/t", "", (), LIMITS, 405, "PGRST117", "Unsupported HTTP method: TRACE"),
    ("get", "/t", "", (), LIMITS, 405, "PGRST117", "Unsupported HTTP method: get"),
    ("POST", "/", "", (), LIMITS, 405, "PGRST117", "Unsupported HTTP method: POST"),
    ("GET", "/t", "a=%00", (), LIMITS, 400, "PGRST100", "failed to decode query parameter (a=%00)"),
    ("GET", "/t", "a=%zz", (), LIMITS, 400, "PGRST100", "failed to decode query parameter (a=%zz)"),
    ("GET", "/t", "a=%C3", (), LIMITS, 400, "PGRST100", "failed to decode query parameter (a=%C3)"),
    (
        "GET",
        "/t",
        "select=a,,b",
        (),
        LIMITS,
        400,
        "PGRST100",
        '"failed to parse select parameter (a,,b)" (line 1, column 3)',
    ),
    ("GET", "/t", "limit=-1", (), LIMITS, 416, "PGRST103", "Requested range not satisfiable"),
    (
        "GET",
        "/t",
        "",
        (("range", "5-2"),),
        LIMITS,
        416,
        "PGRST103",
        "Requested range not satisfiable",
    ),
    (
        "GET",
        "/t",
        "offset=20",
        (("range", "0-9"),),
        LIMITS,
        416,
        "PGRST103",
        "Requested range not satisfiable",
    ),
    (
        "PUT",
        "/t",
        "limit=1",
        (),
        LIMITS,
        400,
        "PGRST114",
        "limit/offset querystring parameters are not allowed for PUT",
    ),
    (
        "PUT",
        "/t",
        "offset=0",
        (),
        LIMITS,
        400,
        "PGRST114",
        "limit/offset querystring parameters are not allowed for PUT",
    ),
    (
        "GET",
        "/t",
        "",
        (("accept", "text/html"),),
        LIMITS,
        406,
        "PGRST107",
        "None of these media types are available: text/html",
    ),
    (
        "GET",
        "/",
        "",
        (("accept", "text/csv"),),
        LIMITS,
        406,
        "PGRST107",
        "None of these media types are available: text/csv",
    ),
    (
        "GET",
        "/t",
        "",
        (("accept", "application/vnd.pgrst.plan"),),
        LIMITS,
        406,
        "PGRST107",
        'None of these media types are available: application/vnd.pgrst.plan+text; for="application/json"',
    ),
    (
        "GET",
        "/t",
        "",
        (("prefer", "handling=strict, bogus"),),
        LIMITS,
        400,
        "PGRST122",
        "Invalid preferences given with handling=strict",
    ),
    (
        "GET",
        "/t",
        "select=a.sum()",
        (),
        LIMITS,
        400,
        "PGRST123",
        "Use of aggregate functions is not allowed",
    ),
    (
        "GET",
        "/t",
        "select=r(count())",
        (),
        LIMITS,
        400,
        "PGRST123",
        "Use of aggregate functions is not allowed",
    ),
]


@pytest.mark.parametrize(
    ("method", "subpath", "query", "headers", "limits", "status", "code", "message"), ERRORS
)
def test_parse_request_refusals(
    method: str,
    subpath: str,
    query: str,
    headers: tuple[tuple[str, str], ...],
    limits: RestLimits,
    status: int,
    code: str,
    message: str,
) -> None:
    with pytest.raises(RestError) as info:
        parse(method, subpath, query, headers, limits)
    err = info.value
    assert (err.status, err.code, err.message) == (status, code, message)
    response = err.to_response()
    assert response.status == status
    assert response.header("proxy-status") == f"PostgREST; error={code}"


def test_parse_request_lenient_prefs_and_enabled_features_pass() -> None:
    assert parse(headers=(("prefer", "bogus"),)).preferences.invalid == ("bogus",)
    limits = RestLimits(aggregates_enabled=True, plan_enabled=True, tx_allow_override=True)
    api = parse(
        query="select=a.sum()",
        headers=(("accept", "application/vnd.pgrst.plan+json"), ("prefer", "tx=rollback")),
        limits=limits,
    )
    assert api.media_type.kind is MediaKind.PLAN
    assert api.preferences.transaction is not None


def test_rest_limits_validate_depths() -> None:
    with pytest.raises(ValueError, match="max_logic_depth"):
        RestLimits(max_logic_depth=0)
    with pytest.raises(ValueError, match="max_embed_depth"):
        attrs.evolve(LIMITS, max_embed_depth=10_000)


@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]),
    subpath=st.one_of(
        st.sampled_from(["/", "/t", "/rpc/f", "/a/b"]), grammar_text.map(lambda t: "/" + t)
    ),
    query=st.one_of(grammar_text, st.text(max_size=100)),
    prefer=prefer_text,
    accept=header_text,
    profile=st.sampled_from(["public", "api", "nope"]),
    range_=header_text,
)
def test_parse_request_accepts_or_raises_rest_error(
    method: str, subpath: str, query: str, prefer: str, accept: str, profile: str, range_: str
) -> None:
    headers = (
        ("prefer", prefer),
        ("accept", accept),
        ("accept-profile", profile),
        ("content-profile", profile),
        ("range", range_),
    )
    with contextlib.suppress(RestError):
        parse(method, subpath, query, headers)
