"""The gateway: which service a request is for, CORS, admission (API key and identity), ids.

`admit(request, ...)` is the first step of every request: it answers the request itself (CORS
preflight, a path under no mount), refuses it inside a service's mount (`Refused`: the service
renders the refusal in its own error shape), or hands back a `Dispatch` naming the service, the
path inside it, the API key's claims and the identity of the `Authorization` token, both verified
here once with the project's `Verifier`. Services read the dispatch and never verify again.
`finish(...)` adds the headers every response carries (request id, CORS, `Retry-After` on a
503). Supabase's API gateway
(Kong) does these jobs in front of each service; here they are plain functions.

The gateway knows no service: each one declares its `Mount` (path prefix, name, the paths it
answers without an API key, whether it answers methods no route takes itself) and the runtime
passes the project's mounts in.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final, final
from urllib.parse import parse_qsl

import attrs

from madbase.protocol.http.errors import (
    AmbiguousCredentials,
    GatewayError,
    InvalidApiKey,
    MethodNotAllowed,
    MissingApiKey,
    NotAProxy,
    RouteNotFound,
    render_refusal,
)
from madbase.protocol.http.messages import Headers, Request, Response, json_response
from madbase.protocol.identity import ApiKeyClaims, ApiKeyError, BearerError, Principal, Verifier

__all__ = [
    "RETRY_AFTER",
    "Dispatch",
    "Health",
    "Mount",
    "Refused",
    "admit",
    "finish",
    "health_response",
    "pick_request_id",
    "route_not_found",
]

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
@attrs.frozen
class Mount:
    """Where a service is mounted: `prefix` (`/rest/v1`), its `service` name, the subpaths it
    answers without an API key (`open_paths`, GoTrue's `/verify` and the like), and whether it
    answers methods no route takes itself (`own_methods`)."""

    prefix: str
    service: str
    open_paths: frozenset[str] = frozenset()
    # The service answers methods no route takes itself (PostgREST: PGRST117, PGRST101 on /rpc).
    own_methods: bool = False


@final
@attrs.frozen(kw_only=True)
class Dispatch:
    """An admitted request: `service` serves `subpath` with the API key's `role`.

    `key`: the API key's claims (None on an open path reached without one). `identity`: who the
    request runs as, from its `Authorization` bearer token (the anonymous role without one), or
    why that token was refused; a service that needs it renders the refusal its own way, one
    that does not (GoTrue's /token) ignores it. Both were verified once, by `admit`.
    `request_id` labels the request in the service's logs and error bodies.
    """

    service: str
    subpath: str
    role: str
    key: ApiKeyClaims | None = attrs.field(default=None, eq=False, repr=False)
    identity: Principal | BearerError | None = attrs.field(default=None, eq=False, repr=False)
    request_id: str | None = attrs.field(default=None, eq=False)


@final
@attrs.frozen(kw_only=True)
class Refused:
    """A request refused inside `mount`: its service renders `error` in its own shape."""

    mount: Mount
    error: GatewayError


def admit(
    request: Request,
    *,
    verifier: Verifier,
    mounts: tuple[Mount, ...],
    now: datetime,
    request_id: str | None = None,
) -> Response | Dispatch | Refused | Health:
    """Decide who answers `request`, verifying its API key and bearer token once.

    Returns a `Response` when the gateway answers itself (preflight, a path under no mount, a
    tunnel request), `Health` for `/health`, `Refused` for refused or ambiguous credentials and
    methods no route takes, else a `Dispatch` carrying `request_id`.
    """
    path = request.path
    if request.method not in _TAKEN:
        refused = _refuse_method(request, mounts)
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
    mount, subpath = _route(path, mounts)
    if mount is None:
        return render_refusal(RouteNotFound("no Route matched with those values"))
    ambiguous = _ambiguous_credentials(request)
    if ambiguous is not None:
        return Refused(mount=mount, error=ambiguous)
    key = request.header("apikey") or request.query_param("apikey")
    claims: ApiKeyClaims | None = None
    if key:
        try:
            claims = verifier.api_key(key.strip(), now=now)
        except ApiKeyError:
            return Refused(mount=mount, error=InvalidApiKey())
    elif subpath not in mount.open_paths:
        return Refused(mount=mount, error=MissingApiKey())
    # An open path (answered without a key, e.g. links opened by a browser) runs as anon.
    return Dispatch(
        service=mount.service,
        subpath=subpath,
        role="anon" if claims is None else claims.role,
        key=claims,
        identity=verifier.identify(request.header("authorization"), now=now),
        request_id=request_id,
    )


def _refuse_method(request: Request, mounts: tuple[Mount, ...]) -> Response | Refused | None:
    """The answer to a method no route takes (TRACE, CONNECT, PROPFIND, ...); None when the
    addressed service answers such methods itself (`Mount.own_methods`: PostgREST's PGRST117,
    or PGRST101 on `/rpc`).

    `CONNECT host:port` (RFC 9110 §9.3.6, the authority form) asks for a tunnel: 400, we are no
    proxy. Otherwise 405 with `Allow`, in the addressed service's error shape.
    """
    if request.method == "CONNECT" and not request.target.startswith("/"):
        return render_refusal(NotAProxy())
    mount, _ = _route(request.path, mounts)
    refusal = MethodNotAllowed(request.method, CORS_ALLOW_METHODS)
    if mount is None:
        return render_refusal(refusal)
    if mount.own_methods:
        return None
    return Refused(mount=mount, error=refusal)


def route_not_found(request: Request) -> RouteNotFound:
    """The refusal for a path inside a mount that its service does not serve."""
    return RouteNotFound(f"Route {request.method}:{request.path} not found")


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


def _route(path: str, mounts: tuple[Mount, ...]) -> tuple[Mount | None, str]:
    for mount in mounts:
        prefix = mount.prefix
        if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
            return mount, path[len(prefix) :] or "/"
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
