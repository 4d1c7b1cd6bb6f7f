"""The gateway: routing to services, the API-key check, CORS, health and request ids."""

from __future__ import annotations

import json
from datetime import timedelta

import jwt
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

# `admit`, with each refusal rendered by the addressed service, as `App` does.
from fuzz.fuzz_gateway import MOUNTS, RENDERERS, gate
from madbase.protocol.http import (
    Dispatch,
    Health,
    MissingApiKey,
    Mount,
    Refused,
    Request,
    Response,
    Service,
    admit,
    finish,
    health_response,
    json_response,
    pick_request_id,
    route_not_found,
)
from madbase.protocol.http.gateway import CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS
from madbase.protocol.identity import (
    API_KEY_ROLES,
    Principal,
    UnverifiableToken,
    Verifier,
    mint_api_key,
)
from tests.strategies import NOW, NOW_TS, SECRET, forge_jwt, requests

ANON_KEY = mint_api_key(SECRET, "anon", issued_at=NOW_TS - 60)
SERVICE_KEY = mint_api_key(SECRET, "service_role", issued_at=NOW_TS - 60)
OTHER_SECRET_KEY = mint_api_key(
    "another-secret-that-is-at-least-32-chars", "anon", issued_at=NOW_TS
)

Header = tuple[str, str]
KEY: Header = ("apikey", SERVICE_KEY)
BEARER = "Authorization header"


def request(target: str, *headers: Header, method: str = "GET") -> Request:
    return Request(method=method, target=target, headers=headers)


def admitted(target: str, *headers: Header, method: str = "GET") -> Response | Dispatch | Health:
    return gate(request(target, *headers, method=method))


def body(response: Response | Dispatch | Health) -> object:
    assert isinstance(response, Response)
    return json.loads(response.body)


# --- routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "service", "subpath"),
    [
        ("/rest/v1/x", Service.REST, "/x"),
        ("/rest/v1", Service.REST, "/"),
        ("/rest/v1/", Service.REST, "/"),
        ("/rest/v1?select=*", Service.REST, "/"),
        ("/rest/v1/todos?select=id,name&id=eq.1", Service.REST, "/todos"),
        ("/rest/v1/rpc/hello", Service.REST, "/rpc/hello"),
        ("/rest/v1/a%2Fb", Service.REST, "/a%2Fb"),
        ("/auth/v1/token", Service.AUTH, "/token"),
        ("/auth/v1", Service.AUTH, "/"),
        ("/storage/v1/object/public/bucket/a.png", Service.STORAGE, "/object/public/bucket/a.png"),
        ("/storage/v1", Service.STORAGE, "/"),
        ("/realtime/v1/websocket?vsn=1.0.0", Service.REALTIME, "/websocket"),
        ("/realtime/v1/api/broadcast", Service.REALTIME, "/api/broadcast"),
    ],
)
def test_admit_routes_each_mount(target: str, service: Service, subpath: str) -> None:
    assert admitted(target, ("apikey", ANON_KEY)) == Dispatch(
        service=service, subpath=subpath, role="anon"
    )


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "",
        "/rest/v10",
        "/rest/v10/x",
        "/rest/v1x",
        "/rest",
        "/rest/v2/x",
        "/REST/v1/x",
        "//rest/v1/x",
        "/auth/v12/token",
        "/graphql/v1",
        "/healthz",
        "/x/health",
    ],
)
@pytest.mark.parametrize("with_key", [True, False])
def test_admit_unknown_path_is_gateway_404(target: str, with_key: bool) -> None:
    headers = (("apikey", ANON_KEY),) if with_key else ()
    response = admitted(target, *headers)
    assert isinstance(response, Response)
    assert response.status == 404
    assert body(response) == {"message": "no Route matched with those values"}


@pytest.mark.parametrize("target", ["example.com:443", "127.0.0.1:5432", "[::1]:80", "x"])
@pytest.mark.parametrize("with_key", [True, False])
def test_admit_connect_to_an_authority_is_400_not_a_proxy(target: str, with_key: bool) -> None:
    headers = (("apikey", ANON_KEY),) if with_key else ()
    response = admitted(target, *headers, method="CONNECT")
    assert isinstance(response, Response)
    assert response.status == 400
    assert body(response) == {"message": "CONNECT is not supported: this server is not a proxy"}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", {"message": "Unsupported HTTP method: TRACE"}),
        ("/health", {"message": "Unsupported HTTP method: TRACE"}),
        ("/nowhere", {"message": "Unsupported HTTP method: TRACE"}),
        (
            "/auth/v1/user",
            {
                "code": 405,
                "error_code": "method_not_allowed",
                "msg": "Unsupported HTTP method: TRACE",
            },
        ),
        (
            "/storage/v1/bucket",
            {
                "statusCode": "405",
                "error": "method_not_allowed",
                "message": "Unsupported HTTP method: TRACE",
            },
        ),
        ("/realtime/v1/api/broadcast", {"error": "Unsupported HTTP method: TRACE"}),
    ],
)
@pytest.mark.parametrize("with_key", [True, False])
def test_admit_method_no_route_takes_is_405_with_allow(
    target: str, expected: object, with_key: bool
) -> None:
    headers = (("apikey", ANON_KEY),) if with_key else ()
    response = admitted(target, *headers, method="TRACE")
    assert isinstance(response, Response)
    assert response.status == 405
    assert body(response) == expected
    assert response.header("allow") == "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


@pytest.mark.parametrize("method", ["CONNECT", "PROPFIND", "BREW", "get"])
def test_admit_any_unknown_method_is_405_on_a_path(method: str) -> None:
    response = admitted("/auth/v1/token", ("apikey", ANON_KEY), method=method)
    assert isinstance(response, Response)
    assert response.status == 405
    assert response.error_code == "method_not_allowed"
    assert response.header("x-sb-error-code") == "method_not_allowed"


@pytest.mark.parametrize("method", ["TRACE", "CONNECT"])
def test_admit_leaves_unknown_methods_under_rest_to_postgrest(method: str) -> None:
    # PostgREST answers them itself: PGRST117 on a table, PGRST101 on /rpc.
    assert admitted("/rest/v1/todos", ("apikey", ANON_KEY), method=method) == Dispatch(
        service=Service.REST, subpath="/todos", role="anon"
    )


@pytest.mark.parametrize("target", ["/health", "/health/", "/health?verbose=1"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_admit_health_needs_no_key(target: str, method: str) -> None:
    assert isinstance(admitted(target, method=method), Health)


# --- API keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "role"), [(ANON_KEY, "anon"), (SERVICE_KEY, "service_role")])
def test_admit_dispatches_with_key_role(key: str, role: str) -> None:
    result = admitted("/rest/v1/todos", ("apikey", key))
    assert result == Dispatch(service=Service.REST, subpath="/todos", role=role)


@pytest.mark.parametrize(("key", "role"), [(ANON_KEY, "anon"), (SERVICE_KEY, "service_role")])
def test_admit_reads_key_from_query(key: str, role: str) -> None:
    result = admitted(f"/realtime/v1/websocket?apikey={key}&vsn=1.0.0")
    assert result == Dispatch(service=Service.REALTIME, subpath="/websocket", role=role)


def test_admit_header_key_wins_over_query_key() -> None:
    assert admitted(f"/rest/v1/t?apikey={SERVICE_KEY}", ("apikey", ANON_KEY)) == Dispatch(
        service=Service.REST, subpath="/t", role="anon"
    )
    refused = admitted(f"/rest/v1/t?apikey={ANON_KEY}", ("apikey", "garbage"))
    assert isinstance(refused, Response)
    assert refused.status == 401


def test_admit_empty_header_falls_back_to_query_key() -> None:
    assert admitted(f"/rest/v1/t?apikey={ANON_KEY}", ("apikey", "")) == Dispatch(
        service=Service.REST, subpath="/t", role="anon"
    )


def test_admit_strips_whitespace_around_key() -> None:
    assert admitted("/rest/v1/t", ("apikey", f"  {ANON_KEY}\t")) == Dispatch(
        service=Service.REST, subpath="/t", role="anon"
    )


MISSING_KEY_BODIES = [
    (
        "/rest/v1/todos",
        {
            "code": "PGRST302",
            "message": "No API key found in request",
            "details": None,
            "hint": "No `apikey` request header or url param was found.",
        },
    ),
    (
        "/auth/v1/user",
        {"code": 401, "error_code": "no_authorization", "msg": "No API key found in request"},
    ),
    (
        "/storage/v1/bucket",
        {"statusCode": "401", "error": "Unauthorized", "message": "No API key found in request"},
    ),
    ("/realtime/v1/websocket", {"error": "No API key found in request"}),
]


@pytest.mark.parametrize(("target", "expected"), MISSING_KEY_BODIES)
@pytest.mark.parametrize(
    "headers",
    [
        (),
        (("apikey", ""),),
        (("authorization", f"Bearer {ANON_KEY}"),),  # a bearer token is not an API key
        (("x-apikey", ANON_KEY),),
    ],
)
def test_admit_missing_key_is_401_in_service_shape(
    target: str, expected: object, headers: tuple[Header, ...]
) -> None:
    response = admitted(target, *headers)
    assert isinstance(response, Response)
    assert response.status == 401
    assert response.header("content-type") == "application/json; charset=utf-8"
    assert body(response) == expected


def test_admit_missing_key_auth_legacy_has_error_code_header_only() -> None:
    response = admitted("/auth/v1/user")
    assert isinstance(response, Response)
    assert response.header("x-sb-error-code") == "no_authorization"
    assert response.header("x-supabase-api-version") is None


def test_admit_missing_key_auth_versioned_shape_echoes_version() -> None:
    response = admitted("/auth/v1/user", ("x-supabase-api-version", "2024-01-01"))
    assert isinstance(response, Response)
    assert response.status == 401
    assert body(response) == {"code": "no_authorization", "message": "No API key found in request"}
    assert response.header("x-supabase-api-version") == "2024-01-01"
    assert response.header("x-sb-error-code") == "no_authorization"


def test_admit_auth_version_header_ignored_by_other_services() -> None:
    response = admitted("/rest/v1/t", ("x-supabase-api-version", "2024-01-01"))
    assert isinstance(response, Response)
    assert body(response)["code"] == "PGRST302"  # type: ignore[index]
    assert response.header("x-supabase-api-version") is None


ANON_CLAIMS: dict[str, object] = {"role": "anon", "iat": NOW_TS - 60, "exp": NOW_TS + 3600}

INVALID_KEYS = [
    pytest.param(OTHER_SECRET_KEY, id="wrong-secret"),
    pytest.param("garbage", id="garbage"),
    pytest.param("a.b.c", id="three-garbage-parts"),
    pytest.param(ANON_KEY[:-4], id="truncated-signature"),
    pytest.param(
        forge_jwt({"alg": "none", "typ": "JWT"}, ANON_CLAIMS).rsplit(".", 1)[0] + ".", id="alg-none"
    ),
    pytest.param(forge_jwt({"alg": "RS256", "typ": "JWT"}, ANON_CLAIMS), id="rs256-header"),
    pytest.param(mint_api_key(SECRET, "authenticated", issued_at=NOW_TS), id="authenticated-role"),
    pytest.param(jwt.encode(ANON_CLAIMS, SECRET + SECRET, algorithm="HS512"), id="hs512"),
    pytest.param(
        mint_api_key(SECRET, "anon", issued_at=NOW_TS - 11 * 365 * 24 * 3600), id="expired"
    ),
    pytest.param(
        forge_jwt({"alg": "HS256"}, {"role": "anon", "nbf": NOW_TS + 3600}), id="nbf-in-future"
    ),
    pytest.param(forge_jwt({"alg": "HS256"}, {"role": "anon", "exp": "never"}), id="exp-not-int"),
    pytest.param(forge_jwt({"alg": "HS256"}, {"role": ["anon"]}), id="role-is-a-list"),
]


@pytest.mark.parametrize("key", INVALID_KEYS)
@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            "/rest/v1/t",
            {
                "code": "PGRST301",
                "message": "Invalid API key",
                "details": None,
                "hint": "Double check your Supabase `anon` or `service_role` API key.",
            },
        ),
        ("/auth/v1/user", {"code": 401, "error_code": "bad_jwt", "msg": "Invalid API key"}),
        (
            "/storage/v1/bucket",
            {"statusCode": "401", "error": "Unauthorized", "message": "Invalid API key"},
        ),
        ("/realtime/v1/websocket", {"error": "Invalid API key"}),
    ],
)
def test_admit_invalid_key_is_401_in_service_shape(key: str, target: str, expected: object) -> None:
    for where in ((("apikey", key),), ()):
        url = target if where else f"{target}?apikey={key}"
        response = admitted(url, *where)
        assert isinstance(response, Response)
        assert response.status == 401
        assert body(response) == expected


# --- ambiguous credentials ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            "/rest/v1/t",
            {
                "code": "PGRST301",
                "message": "Only one {} may be sent",
                "details": None,
                "hint": None,
            },
        ),
        (
            "/auth/v1/user",
            {"code": 400, "error_code": "validation_failed", "msg": "Only one {} may be sent"},
        ),
        (
            "/storage/v1/bucket",
            {"statusCode": "400", "error": "InvalidRequest", "message": "Only one {} may be sent"},
        ),
        ("/realtime/v1/websocket", {"error": "Only one {} may be sent"}),
    ],
)
@pytest.mark.parametrize(
    ("target_tail", "headers", "what"),
    [
        ("", (KEY, ("authorization", "Bearer a.b.c"), ("authorization", "Bearer d.e.f")), BEARER),
        ("", (KEY, ("authorization", "Bearer a.b.c"), ("authorization", "Bearer a.b.c")), BEARER),
        ("", (("apikey", ANON_KEY), ("apikey", SERVICE_KEY)), "apikey"),
        (f"?apikey={ANON_KEY}&apikey={SERVICE_KEY}", (), "apikey"),
        (f"?apikey={ANON_KEY}&api%6Bey={SERVICE_KEY}", (), "apikey"),
    ],
)
def test_admit_two_credentials_of_a_kind_are_400_in_service_shape(
    target: str,
    expected: dict[str, object],
    target_tail: str,
    headers: tuple[Header, ...],
    what: str,
) -> None:
    response = admitted(target + target_tail, *headers)
    assert isinstance(response, Response)
    assert response.status == 400
    assert body(response) == {
        k: v.format(what) if isinstance(v, str) else v for k, v in expected.items()
    }


def test_admit_open_auth_paths_refuse_two_credentials_too() -> None:
    response = admitted("/auth/v1/verify", ("authorization", "Bearer x"), ("authorization", "y"))
    assert isinstance(response, Response)
    assert response.status == 400


def test_admit_one_header_key_and_one_query_key_is_not_ambiguous() -> None:
    # The header wins, as before (and as Supabase's gateway reads it first).
    assert admitted(f"/rest/v1/t?apikey={ANON_KEY}", ("apikey", SERVICE_KEY)) == Dispatch(
        service=Service.REST, subpath="/t", role="service_role"
    )


def test_admit_carries_the_request_id() -> None:
    dispatch = gate(request("/rest/v1/t", ("apikey", ANON_KEY)), request_id="req-9")
    assert isinstance(dispatch, Dispatch)
    assert dispatch.request_id == "req-9"


# --- GoTrue endpoints open without a key ------------------------------------------------------


@pytest.mark.parametrize("subpath", ["/health", "/settings", "/authorize", "/callback", "/verify"])
def test_admit_auth_health_and_settings_need_no_key(subpath: str) -> None:
    assert admitted(f"/auth/v1{subpath}") == Dispatch(
        service=Service.AUTH, subpath=subpath, role="anon"
    )


@pytest.mark.parametrize("subpath", ["/health", "/settings"])
def test_admit_auth_health_and_settings_keep_key_role(subpath: str) -> None:
    assert admitted(f"/auth/v1{subpath}", ("apikey", SERVICE_KEY)) == Dispatch(
        service=Service.AUTH, subpath=subpath, role="service_role"
    )


@pytest.mark.parametrize("subpath", ["/health", "/settings"])
def test_admit_auth_health_and_settings_refuse_bad_key(subpath: str) -> None:
    response = admitted(f"/auth/v1{subpath}", ("apikey", "garbage"))
    assert isinstance(response, Response)
    assert response.status == 401


def test_admit_auth_verify_link_needs_no_key() -> None:
    # The link in auth mails is opened by a browser, without an API key.
    assert admitted("/auth/v1/verify?token=h&type=signup") == Dispatch(
        service=Service.AUTH, subpath="/verify", role="anon"
    )


@pytest.mark.parametrize(
    "target",
    [
        "/auth/v1/health/",
        "/auth/v1/settings/x",
        "/rest/v1/health",
        "/storage/v1/settings",
        "/auth/v1/authorize/x",
        "/auth/v1/verify/x",
        "/auth/v1/user",
    ],
)
def test_admit_other_health_like_paths_need_key(target: str) -> None:
    response = admitted(target)
    assert isinstance(response, Response)
    assert response.status == 401


# --- CORS -----------------------------------------------------------------------------------

PREFLIGHT = (("origin", "http://localhost:3000"), ("access-control-request-method", "POST"))


def _allowed(response: Response) -> list[str]:
    allow = response.header("access-control-allow-headers")
    assert allow is not None
    return [h.strip() for h in allow.split(",")]


@pytest.mark.parametrize(
    "target",
    ["/rest/v1/todos", "/auth/v1/token?grant_type=password", "/storage/v1/object/b/x", "/nope"],
)
def test_admit_preflight_answers_without_key(target: str) -> None:
    response = admitted(target, *PREFLIGHT, method="OPTIONS")
    assert isinstance(response, Response)
    assert response.status == 200
    assert response.body == b""
    assert response.header("access-control-allow-origin") == "*"
    methods = response.header("access-control-allow-methods")
    assert methods is not None
    assert {m.strip() for m in methods.split(",")} >= {"GET", "POST", "PATCH", "DELETE", "OPTIONS"}
    assert response.header("access-control-max-age") == "86400"
    assert response.header("vary") == "Origin, Access-Control-Request-Headers"


@pytest.mark.parametrize(
    "name",
    [
        "apikey",
        "authorization",
        "x-client-info",
        "prefer",
        "range",
        "accept-profile",
        "content-profile",
        "x-upsert",
        "cache-control",
        "x-supabase-api-version",
        "content-type",
    ],
)
def test_admit_preflight_allows_client_headers(name: str) -> None:
    response = admitted("/rest/v1/t", *PREFLIGHT, method="OPTIONS")
    assert isinstance(response, Response)
    assert name in _allowed(response)


def test_admit_preflight_without_requested_headers_is_default_list() -> None:
    response = admitted("/rest/v1/t", *PREFLIGHT, method="OPTIONS")
    assert isinstance(response, Response)
    assert response.header("access-control-allow-headers") == CORS_ALLOW_HEADERS


def test_admit_preflight_adds_extra_requested_headers_once() -> None:
    response = admitted(
        "/rest/v1/t",
        *PREFLIGHT,
        ("access-control-request-headers", "apikey, X-Custom-Thing,  prefer,x-other ,,"),
        method="OPTIONS",
    )
    assert isinstance(response, Response)
    allowed = _allowed(response)
    assert "x-custom-thing" in allowed
    assert "x-other" in allowed
    assert allowed.count("apikey") == 1
    assert allowed.count("prefer") == 1
    assert "" not in allowed


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("OPTIONS", (("origin", "http://a"),)),
        ("OPTIONS", (("access-control-request-method", "GET"),)),
        ("OPTIONS", ()),
        ("GET", PREFLIGHT),
        ("options", PREFLIGHT),
    ],
)
def test_admit_not_preflight_needs_key(method: str, headers: tuple[Header, ...]) -> None:
    response = admitted("/rest/v1/t", *headers, method=method)
    assert isinstance(response, Response)
    assert response.status == 401


def test_admit_options_with_key_is_dispatched() -> None:
    assert admitted("/rest/v1/t", ("apikey", ANON_KEY), method="OPTIONS") == Dispatch(
        service=Service.REST, subpath="/t", role="anon"
    )


@pytest.mark.parametrize("status", [503, 500, 504, 200, 429])
def test_finish_adds_retry_after_to_every_503(status: int) -> None:
    done = finish(json_response(status, {}), request("/rest/v1/t"), request_id="r")
    assert done.header("retry-after") == ("0" if status == 503 else None)


def test_finish_keeps_a_503s_own_retry_after() -> None:
    own = json_response(503, {}, (("retry-after", "7"),))
    done = finish(own, request("/auth/v1/token"), request_id="r")
    assert [v for k, v in done.headers if k == "retry-after"] == ["7"]


def test_finish_adds_request_id_only_without_origin() -> None:
    original = json_response(201, {"ok": True}, (("x-a", "1"),))
    finished = finish(original, request("/rest/v1/t"), request_id="rid-1")
    assert finished.status == 201
    assert finished.body == original.body
    assert finished.headers == (*original.headers, ("x-request-id", "rid-1"))


def test_finish_adds_cors_headers_when_origin_present() -> None:
    original = json_response(200, [])
    finished = finish(
        original, request("/rest/v1/t", ("origin", "https://app.example")), request_id="r"
    )
    assert finished.headers == (
        *original.headers,
        ("x-request-id", "r"),
        ("access-control-allow-origin", "*"),
        ("access-control-expose-headers", CORS_EXPOSE_HEADERS),
    )
    exposed = {h.strip().lower() for h in CORS_EXPOSE_HEADERS.split(",")}
    assert {"content-range", "x-request-id", "x-supabase-api-version", "x-sb-error-code"} <= exposed
    assert {"x-total-count", "link", "retry-after"} <= exposed


def test_finish_keeps_preflight_cors_headers_single() -> None:
    preflight_request = request("/rest/v1/t", *PREFLIGHT, method="OPTIONS")
    preflight = gate(preflight_request)
    assert isinstance(preflight, Response)
    finished = finish(preflight, preflight_request, request_id="r")
    names = [name for name, _ in finished.headers]
    assert names.count("access-control-allow-origin") == 1
    assert "access-control-expose-headers" not in names
    assert finished.header("x-request-id") == "r"


# --- not_found, health, request ids ---------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "headers", "expected"),
    [
        (
            Service.REST,
            (),
            {
                "code": "PGRST125",
                "message": "Route GET:/rest/v1/nope not found",
                "details": None,
                "hint": None,
            },
        ),
        (
            Service.AUTH,
            (),
            {"code": 404, "error_code": "not_found", "msg": "Route GET:/rest/v1/nope not found"},
        ),
        (
            Service.AUTH,
            (("x-supabase-api-version", "2024-01-01"),),
            {"code": "not_found", "message": "Route GET:/rest/v1/nope not found"},
        ),
        (
            Service.STORAGE,
            (),
            {
                "statusCode": "404",
                "error": "not_found",
                "message": "Route GET:/rest/v1/nope not found",
            },
        ),
        (Service.REALTIME, (), {"error": "Route GET:/rest/v1/nope not found"}),
    ],
)
def test_not_found_renders_service_shape(
    service: Service, headers: tuple[Header, ...], expected: object
) -> None:
    asked = request("/rest/v1/nope?x=1", *headers)
    response = RENDERERS[service](route_not_found(asked), asked)
    assert response.status == 404
    assert body(response) == expected


@pytest.mark.parametrize(
    ("ok", "status", "expected"),
    [
        (True, 200, {"status": "ok", "database": "ok"}),
        (False, 503, {"status": "unavailable", "database": "unreachable"}),
    ],
)
def test_health_response_reflects_database(ok: bool, status: int, expected: object) -> None:
    response = health_response(ok)
    assert response.status == status
    assert body(response) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("abc", "abc"),
        ("0f8e1c2a-1b2c-4d5e-8f90-123456789abc", "0f8e1c2a-1b2c-4d5e-8f90-123456789abc"),
        ("a.b_c:d/e+f=g-h", "a.b_c:d/e+f=g-h"),
        ("x" * 128, "x" * 128),
        ("x" * 129, "generated"),
        ("", "generated"),
        ("a b", "generated"),
        ("abc\n", "generated"),
        ("abc\r\nset-cookie: x", "generated"),
        ("é", "generated"),
        ("<script>", "generated"),
        ("a,b", "generated"),
        (None, "generated"),
    ],
)
def test_pick_request_id_keeps_only_sane_tokens(given: str | None, expected: str) -> None:
    headers = (("x-request-id", given),) if given is not None else ()
    assert pick_request_id(request("/", *headers), "generated") == expected


def test_pick_request_id_uses_first_header() -> None:
    req = request("/", ("x-request-id", "first"), ("x-request-id", "second"))
    assert pick_request_id(req, "generated") == "first"


# --- properties -----------------------------------------------------------------------------


@given(requests)
@example(Request(method="OPTIONS", target="/rest/v1", headers=PREFLIGHT))
@example(Request(method="GET", target="/rest/v1?apikey=%FF%00", headers=()))
@example(Request(method="GET", target="/auth/v1/health?apikey=\x00", headers=()))
@example(Request(method="GET", target="\x00?%", headers=(("apikey", "\x00."),)))
def test_admit_is_total(req: Request) -> None:
    result = gate(req)
    assert isinstance(result, Response | Dispatch | Health)
    if isinstance(result, Response):
        assert result.status in (200, 400, 401, 404, 405)
        if result.status == 405:  # a method no route takes
            assert req.method not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        if result.status == 200:  # only a CORS preflight is answered with 200, with no body
            assert req.method == "OPTIONS"
            assert result.header("access-control-allow-origin") == "*"
            assert result.body == b""
        else:
            assert result.header("content-type") == "application/json; charset=utf-8"
            assert isinstance(json.loads(result.body), dict)
    elif isinstance(result, Dispatch):
        assert result.role in API_KEY_ROLES
        assert result.subpath.startswith("/")
        assert req.path.endswith(result.subpath) or result.subpath == "/"
    else:
        assert req.path in ("/health", "/health/")


@given(requests)
def test_admit_dispatch_only_with_valid_key_or_open_auth_endpoint(req: Request) -> None:
    result = gate(req)
    if isinstance(result, Dispatch):
        open_endpoint = result.service is Service.AUTH and result.subpath in (
            "/health",
            "/settings",
        )
        key = req.header("apikey") or req.query_param("apikey")
        assert open_endpoint or key


@given(requests, st.text(min_size=1, max_size=20))
def test_finish_appends_request_id_and_keeps_response(req: Request, rid: str) -> None:
    original = json_response(200, {"a": 1})
    finished = finish(original, req, request_id=rid)
    assert finished.headers[: len(original.headers)] == original.headers
    assert finished.headers[len(original.headers)] == ("x-request-id", rid)
    assert finished.body == original.body
    added = {name for name, _ in finished.headers[len(original.headers) :]}
    assert ("access-control-allow-origin" in added) == (req.header("origin") is not None)


@given(requests)
def test_pick_request_id_returns_header_or_generated(req: Request) -> None:
    picked = pick_request_id(req, "gen")
    assert picked in ("gen", req.header("x-request-id"))
    assert picked == "gen" or (0 < len(picked) <= 128 and picked.isascii() and " " not in picked)


def test_admit_uses_passed_now_for_expiry() -> None:
    key = mint_api_key(SECRET, "anon", issued_at=NOW_TS)
    later = NOW + timedelta(days=3651)
    response = gate(request("/rest/v1/t", ("apikey", key)), now=later)
    assert isinstance(response, Response)
    assert response.status == 401


# --- admission carries the identity; refusals go to the service -----------------------------


def test_admit_refusal_inside_a_mount_is_left_to_its_service() -> None:
    refused = admit(request("/rest/v1/t"), verifier=Verifier(SECRET), mounts=MOUNTS, now=NOW)
    assert isinstance(refused, Refused)
    assert refused.mount.prefix == "/rest/v1"
    assert isinstance(refused.error, MissingApiKey)


def test_admit_dispatch_carries_key_and_identity_verified_once() -> None:
    user = jwt.encode(
        {"role": "authenticated", "sub": "u-1", "exp": NOW_TS + 60}, SECRET, algorithm="HS256"
    )
    dispatch = gate(
        request("/rest/v1/t", ("apikey", ANON_KEY), ("authorization", f"Bearer {user}"))
    )
    assert isinstance(dispatch, Dispatch)
    assert dispatch.key is not None
    assert dispatch.key.role == "anon"
    assert isinstance(dispatch.identity, Principal)
    assert (dispatch.identity.role, dispatch.identity.subject) == ("authenticated", "u-1")


def test_admit_refused_bearer_token_is_carried_not_answered() -> None:
    # GoTrue's /token ignores a stale token; PostgREST refuses it: the service decides.
    dispatch = gate(request("/auth/v1/token", KEY, ("authorization", f"Bearer {OTHER_SECRET_KEY}")))
    assert isinstance(dispatch, Dispatch)
    assert isinstance(dispatch.identity, UnverifiableToken)


def test_admit_routes_by_the_mounts_it_is_given() -> None:
    mounts = (Mount("/echo/v1", "echo"),)
    dispatch = admit(request("/echo/v1/x", KEY), verifier=Verifier(SECRET), mounts=mounts, now=NOW)
    assert dispatch == Dispatch(service="echo", subpath="/x", role="service_role")
    nowhere = admit(request("/rest/v1/x", KEY), verifier=Verifier(SECRET), mounts=mounts, now=NOW)
    assert isinstance(nowhere, Response)
    assert nowhere.status == 404
