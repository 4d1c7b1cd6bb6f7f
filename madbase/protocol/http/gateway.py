"""The gateway: which service a request is for, CORS, the API-key check and request ids.

`admit(request, ...)` is the first step of every request: it either answers the request itself
(CORS preflight, a refused key, an unknown path) or hands back a `Dispatch` naming the service,
the path inside it and the role the API key grants. `finish(...)` adds the headers every response
carries (request id, CORS, `Retry-After` on a 503). Supabase's API gateway (Kong) does both jobs in
front of each service; here they are plain functions.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final, final
from urllib.parse import parse_qsl

import attrs

from madbase.protocol.auth import ApiKeyError, ApiKeyVerifier
from madbase.protocol.http.errors import (
    AmbiguousCredentials,
    GatewayError,
    InvalidApiKey,
    MethodNotAllowed,
    MissingApiKey,
    NotAProxy,
    RouteNotFound,
    Service,
    render_error,
)
from madbase.protocol.http.messages import Headers, Request, Response, json_response

__all__ = [
    "Dispatch",
    "Health",
    "admit",
    "finish",
    "health_response",
    "not_found",
    "pick_request_id",
]

_MOUNTS: Final = (
    ("/rest/v1", Service.REST),
    ("/auth/v1", Service.AUTH),
    ("/storage/v1", Service.STORAGE),
    ("/realtime/v1", Service.REALTIME),
)

# Browsers ask for these before supabase-js / postgrest-js / storage-js calls (spec/rest.md §11).
CORS_ALLOW_HEADERS: Final = (
    "authorization, x-client-info, apikey, content-type, content-profile, accept-profile, prefer, "
    "range, range-unit, x-upsert, cache-control, x-retry-count, x-supabase-api-version, "
    "x-request-id, x-project-ref, x-metadata, content-range, accept"
)
# Every method some route of ours takes; any other is refused at the gateway (405).
_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_TAKEN: Final = frozenset(_METHODS)
CORS_ALLOW_METHODS: Final = ", ".join(_METHODS)
CORS_EXPOSE_HEADERS: Final = (
    "Content-Encoding, Content-Location, Content-Range, Content-Type, Date, Location, Server, "
    "Transfer-Encoding, Range-Unit, X-Request-Id, X-Supabase-Api-Version, X-Sb-Error-Code, "
    # GoTrue's admin user list pages with these; Retry-After comes with auth's 429s.
    "X-Total-Count, Link, Retry-After"
)
CORS_MAX_AGE: Final = "86400"

# Every 503 says when to try again, as PostgREST's do (App.hs `addRetryHint`: the seconds until
# its next reconnection attempt, which PostgREST 13 no longer tracks and sends as 0). Our pool
# connects again for the very next request, so 0 is true here as well.
RETRY_AFTER: Final = "0"

# A request id from the client is echoed only if it is short and printable.
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


class Health:
    """Marker: the request is the health check; the runtime asks the database."""


@final
@attrs.frozen(kw_only=True)
class Dispatch:
    """An admitted request: `service` serves `subpath` with the API key's `role`.

    `request_id` labels the request in the service's logs and error bodies.
    """

    service: Service
    subpath: str
    role: str
    request_id: str | None = attrs.field(default=None, eq=False)


_OPEN_AUTH_PATHS = frozenset({"/health", "/settings", "/authorize", "/callback", "/verify"})


def admit(
    request: Request, *, keys: ApiKeyVerifier, now: datetime, request_id: str | None = None
) -> Response | Dispatch | Health:
    """Decide who answers `request`.

    Returns a `Response` when the gateway answers itself (preflight, a method no route takes,
    refused or ambiguous credentials, unknown path), `Health` for `/health`, else a `Dispatch`
    carrying `request_id`.
    """
    path = request.path
    if request.method not in _TAKEN:
        refused = _refuse_method(request)
        if refused is not None:
            return refused
    if (
        request.method == "OPTIONS"
        and request.header("origin") is not None
        and (request.header("access-control-request-method") is not None)
    ):
        return _preflight(request)
    if path in ("/health", "/health/"):
        return Health()
    service, subpath = _route(path)
    if service is None:
        return render_error(None, RouteNotFound("no Route matched with those values"))
    version = request.header("x-supabase-api-version")
    ambiguous = _ambiguous_credentials(request)
    if ambiguous is not None:
        return render_error(service, ambiguous, auth_api_version=version)
    if service is Service.AUTH and subpath in _OPEN_AUTH_PATHS:
        # GoTrue answers these without a key; dispatched with the anon role. Browsers reach
        # /authorize, /callback and /verify through links and provider redirects, which carry
        # no key (Supabase's Kong leaves them open).
        key = request.header("apikey") or request.query_param("apikey")
        if not key:
            return Dispatch(service=service, subpath=subpath, role="anon", request_id=request_id)
    try:
        role = _check_api_key(request, keys=keys, now=now)
    except GatewayError as err:
        return render_error(service, err, auth_api_version=version)
    return Dispatch(service=service, subpath=subpath, role=role, request_id=request_id)


def _refuse_method(request: Request) -> Response | None:
    """The answer to a method no route takes (TRACE, CONNECT, PROPFIND, ...); None for REST.

    `CONNECT host:port` (RFC 9110 §9.3.6, the authority form) asks for a tunnel: 400, we are no
    proxy. Otherwise 405 with `Allow` in the addressed service's error shape, except under
    `/rest/v1`, where PostgREST's own answer applies (PGRST117, or PGRST101 on `/rpc`).
    """
    if request.method == "CONNECT" and not request.target.startswith("/"):
        return render_error(None, NotAProxy())
    service, _ = _route(request.path)
    if service is Service.REST:
        return None
    return render_error(
        service,
        MethodNotAllowed(request.method, CORS_ALLOW_METHODS),
        auth_api_version=request.header("x-supabase-api-version"),
    )


def not_found(request: Request, service: Service) -> Response:
    """The answer for a path `service` does not serve, in its error format."""
    return render_error(
        service,
        RouteNotFound(f"Route {request.method}:{request.path} not found"),
        auth_api_version=request.header("x-supabase-api-version"),
    )


def health_response(database_ok: bool) -> Response:
    """`/health`: 200 only when the database answered."""
    if database_ok:
        return json_response(200, {"status": "ok", "database": "ok"})
    return json_response(503, {"status": "unavailable", "database": "unreachable"})


def pick_request_id(request: Request, generated: str) -> str:
    """The client's `x-request-id` if it is a sane token, else `generated`.

    >>> pick_request_id(Request(method="GET", target="/", headers=(("x-request-id", "abc"),)), "z")
    'abc'
    >>> pick_request_id(Request(method="GET", target="/", headers=(("x-request-id", "a b"),)), "z")
    'z'
    """
    given = request.header("x-request-id")
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return generated


def finish(response: Response, request: Request, *, request_id: str) -> Response:
    """Add the headers every response carries: the request id, `Retry-After` on a 503 that has
    none, and, for browsers, CORS.

    >>> done = finish(Response(status=503), Request(method="GET", target="/"), request_id="r")
    >>> done.headers
    (('x-request-id', 'r'), ('retry-after', '0'))
    """
    extra: Headers = (("x-request-id", request_id),)
    if response.status == 503 and response.header("retry-after") is None:
        extra += (("retry-after", RETRY_AFTER),)
    if (
        request.header("origin") is not None
        and response.header("access-control-allow-origin") is None
    ):
        extra += (
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", CORS_EXPOSE_HEADERS),
        )
    return response.with_headers(extra)


def _route(path: str) -> tuple[Service | None, str]:
    for prefix, service in _MOUNTS:
        if path == prefix or path.startswith(prefix + "/"):
            return service, path[len(prefix) :] or "/"
    return None, path


def _preflight(request: Request) -> Response:
    asked = request.header("access-control-request-headers")
    allow = CORS_ALLOW_HEADERS
    if asked:
        known = {h.strip() for h in CORS_ALLOW_HEADERS.split(",")}
        extra = [
            h.strip() for h in asked.lower().split(",") if h.strip() and h.strip() not in known
        ]
        allow = ", ".join([CORS_ALLOW_HEADERS, *extra])
    return Response(
        status=200,
        headers=(
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", CORS_ALLOW_METHODS),
            ("access-control-allow-headers", allow),
            ("access-control-max-age", CORS_MAX_AGE),
            ("vary", "Origin, Access-Control-Request-Headers"),
        ),
    )


def _ambiguous_credentials(request: Request) -> AmbiguousCredentials | None:
    authorizations = keys = 0
    for name, _ in request.headers:
        if name == "authorization":
            authorizations += 1
        elif name == "apikey":
            keys += 1
    if authorizations > 1:
        return AmbiguousCredentials("Only one Authorization header may be sent")
    if keys > 1 or (keys == 0 and _query_apikeys(request) > 1):
        return AmbiguousCredentials("Only one apikey may be sent")
    return None


def _query_apikeys(request: Request) -> int:
    query = request.query
    if "apikey" not in query and "%" not in query:  # the common case costs no parsing
        return 0
    return sum(1 for name, _ in parse_qsl(query, keep_blank_values=True) if name == "apikey")


def _check_api_key(request: Request, *, keys: ApiKeyVerifier, now: datetime) -> str:
    key = request.header("apikey") or request.query_param("apikey")
    if not key:
        raise MissingApiKey
    try:
        return keys.verify(key.strip(), now=now).role
    except ApiKeyError as err:
        raise InvalidApiKey from err
