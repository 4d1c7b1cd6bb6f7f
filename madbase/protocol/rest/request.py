"""`parse_request`: one `/rest/v1` request to a typed `ApiRequest` (PostgREST `ApiRequest.hs`).

Checks run in PostgREST's order: the path (PGRST125, root disabled PGRST126), the schema profile
(PGRST106), the method (PGRST101, PGRST117), the query string (PGRST100, PGRST103), the ranges
(PGRST103, PUT PGRST114), then what PostgREST checks while planning but needs no schema: the
`Accept` media type (PGRST107), strict preferences (PGRST122) and disabled aggregates (PGRST123).
The body stays bytes: decoding JSON/CSV against the target's columns is the planner's job.
"""

from __future__ import annotations

import enum
from typing import Final, final
from urllib.parse import unquote_to_bytes

import attrs

from madbase.protocol.http.messages import Headers, Request
from madbase.protocol.rest.errors import (
    AggregatesNotAllowed,
    InvalidPreferences,
    InvalidRange,
    InvalidResourcePath,
    InvalidRpcMethod,
    OpenApiDisabled,
    PutLimitNotAllowed,
    UnsupportedMethod,
)
from madbase.protocol.rest.headers import (
    MediaKind,
    MediaType,
    Preferences,
    PreferHandling,
    negotiate,
    parse_accept,
    parse_media_type,
    parse_prefer,
    parse_range,
    select_schema,
)
from madbase.protocol.rest.limits import RestLimits
from madbase.protocol.rest.query import parse_query
from madbase.protocol.rest.syntax import QueryParams, SelectEmbed, SelectField, SelectItem

__all__ = [
    "Action",
    "ApiRequest",
    "RowRange",
    "Target",
    "TargetKind",
    "parse_request",
    "request_cookies",
]


class Action(enum.StrEnum):
    """What the request asks for (PostgREST `Action`)."""

    READ = "read"  # GET/HEAD on a relation
    CREATE = "create"  # POST
    UPSERT = "upsert"  # POST with Prefer: resolution=...
    SINGLE_UPSERT = "single_upsert"  # PUT
    UPDATE = "update"  # PATCH
    DELETE = "delete"  # DELETE
    CALL = "call"  # POST /rpc/f
    CALL_READ = "call_read"  # GET/HEAD /rpc/f
    SCHEMA = "schema"  # GET/HEAD / (OpenAPI)
    INFO = "info"  # OPTIONS on any of them


class TargetKind(enum.StrEnum):
    """What the path names."""

    RELATION = "relation"
    ROUTINE = "routine"
    SCHEMA = "schema"


@final
@attrs.frozen(kw_only=True)
class Target:
    """The relation or function (`name`) in `schema`; `name` is None for the schema root."""

    kind: TargetKind
    schema: str
    name: str | None = None


@final
@attrs.frozen(kw_only=True)
class RowRange:
    """Rows `offset`…`offset + limit - 1` of the top-level result (`limit` None: no limit)."""

    offset: int = 0
    limit: int | None = None


@final
@attrs.frozen(kw_only=True)
class ApiRequest:
    """A request the grammar accepted; the planner checks it against the schema.

    `head` is True for HEAD. `range` is the top-level window after `limit`/`offset` and, on GET,
    the `Range` header. `media_type` is the negotiated response type (`*/*` already resolved to
    JSON or OpenAPI); `accept` the whole ranked list, for a planner that must renegotiate (e.g.
    GeoJSON without PostGIS). `headers` are the request headers without `cookie` (for the
    `request.headers` GUC), `cookies` the parsed `Cookie` header.
    """

    action: Action
    method: str
    path: str
    head: bool
    target: Target
    negotiated_by_profile: bool
    query: QueryParams
    range: RowRange
    preferences: Preferences
    accept: tuple[MediaType, ...]
    media_type: MediaType
    content_type: MediaType
    body: bytes
    headers: Headers
    cookies: tuple[tuple[str, str], ...]


_ROW_TYPES: Final = frozenset(
    {
        MediaKind.JSON,
        MediaKind.OBJECT,
        MediaKind.ARRAY_STRIPPED,
        MediaKind.CSV,
    }
)
# GeoJSON is offered by PostgREST only when PostGIS is installed (its `ST_AsGeoJSON` renders the
# body); the embedded server has no PostGIS, so it is not offered: 406 PGRST107 as PostgREST.
_SCHEMA_TYPES: Final = frozenset({MediaKind.OPENAPI, MediaKind.JSON})

_RELATION_ACTIONS: Final = {
    "GET": Action.READ,
    "HEAD": Action.READ,
    "POST": Action.CREATE,
    "PUT": Action.SINGLE_UPSERT,
    "PATCH": Action.UPDATE,
    "DELETE": Action.DELETE,
    "OPTIONS": Action.INFO,
}
_ROUTINE_ACTIONS: Final = {
    "GET": Action.CALL_READ,
    "HEAD": Action.CALL_READ,
    "POST": Action.CALL,
    "OPTIONS": Action.INFO,
}
_SCHEMA_ACTIONS: Final = {"GET": Action.SCHEMA, "HEAD": Action.SCHEMA, "OPTIONS": Action.INFO}


def _segments(subpath: str) -> list[str]:
    """Percent-decoded path segments (`/` and the empty path have none).

    Raises:
        InvalidResourcePath: a segment is not UTF-8 or holds NUL (PGRST125).
    """
    path = subpath.split("?", 1)[0]
    if path in ("", "/"):
        return []
    segments = []
    for raw in path.removeprefix("/").split("/"):
        try:
            segment = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidResourcePath from err
        if "\x00" in segment:
            raise InvalidResourcePath
        segments.append(segment)
    return segments


def _headers(request: Request, name: str) -> list[str]:
    """All values of header `name`, re-decoded as UTF-8 where the server decoded latin-1."""
    out = []
    for key, value in request.headers:
        if key == name:
            try:
                out.append(value.encode("latin-1").decode("utf-8"))
            except (UnicodeEncodeError, UnicodeDecodeError):
                out.append(value)
    return out


def _header(request: Request, name: str) -> str | None:
    values = _headers(request, name)
    return values[0] if values else None


def _has_aggregate(items: tuple[SelectItem, ...]) -> bool:
    stack = list(items)
    while stack:
        item = stack.pop()
        if isinstance(item, SelectField) and item.aggregate is not None:
            return True
        if isinstance(item, SelectEmbed):
            stack.extend(item.children)
    return False


def _top_range(query: QueryParams, method: str, range_header: str | None) -> RowRange:
    root = next((r for r in query.ranges if r.path == ()), None)
    offset = 0 if root is None or root.offset is None else root.offset
    limit = None if root is None else root.limit
    if method == "PUT" and root is not None and (root.offset is not None or limit is not None):
        raise PutLimitNotAllowed
    if limit == 0:
        return RowRange(offset=offset, limit=0)  # `limit=0` is always allowed (PostgREST #1121)
    # RFC 9110 §14.2: the Range header is ignored for methods other than GET (as PostgREST).
    header = parse_range(range_header) if method == "GET" else None
    if header is None:
        return RowRange(offset=offset, limit=limit)
    if header.last is not None and header.last < header.first:
        raise InvalidRange.lower_gt_upper()
    lower = max(offset, header.first)
    uppers = [
        u for u in (header.last, None if limit is None else offset + limit - 1) if u is not None
    ]
    if not uppers:
        return RowRange(offset=lower)
    upper = min(uppers)
    if upper < lower:
        raise InvalidRange.negative_limit()  # PostgREST's detail for an empty intersection
    return RowRange(offset=lower, limit=upper - lower + 1)


def request_cookies(request: Request) -> tuple[tuple[str, str], ...]:
    """The (name, value) pairs of the request's `Cookie` headers, in order."""
    out = []
    for header in _headers(request, "cookie"):
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name:
                out.append((name, value))
    return tuple(out)


def parse_request(
    request: Request, subpath: str, limits: RestLimits, exposed_schemas: tuple[str, ...]
) -> ApiRequest:
    """Parse a request for `/rest/v1` whose path inside the service is `subpath`.

    Raises:
        RestError: the request is refused before planning (the codes in the module docstring).

    >>> req = Request(method="GET", target="/rest/v1/todos?select=id&done=is.false",
    ...               headers=(("accept-profile", "public"),))
    >>> api = parse_request(req, "/todos", RestLimits(), ("public",))
    >>> api.action, api.target
    (<Action.READ: 'read'>, Target(kind=<TargetKind.RELATION: 'relation'>, schema='public', name='todos'))
    """
    method = request.method
    segments = _segments(subpath)
    match segments:
        case []:
            if not limits.openapi_enabled:
                raise OpenApiDisabled
            kind, name, actions = TargetKind.SCHEMA, None, _SCHEMA_ACTIONS
        case [name]:
            kind, actions = TargetKind.RELATION, _RELATION_ACTIONS
        case ["rpc", name]:
            kind, actions = TargetKind.ROUTINE, _ROUTINE_ACTIONS
        case _:
            raise InvalidResourcePath
    schema, negotiated = select_schema(
        method,
        _header(request, "accept-profile"),
        _header(request, "content-profile"),
        exposed_schemas,
    )
    action = actions.get(method)
    if action is None:
        if kind is TargetKind.ROUTINE:
            raise InvalidRpcMethod.for_method(method)
        raise UnsupportedMethod.for_method(method)
    query = parse_query(request.query, limits=limits, rpc_read=action is Action.CALL_READ)
    row_range = _top_range(query, method, _header(request, "range"))
    preferences = parse_prefer(
        _headers(request, "prefer"), tx_allow_override=limits.tx_allow_override
    )
    if action is Action.CREATE and preferences.resolution is not None:
        action = Action.UPSERT
    accept = parse_accept(_header(request, "accept"))
    offered = _SCHEMA_TYPES if kind is TargetKind.SCHEMA else _ROW_TYPES
    if limits.plan_enabled and kind is not TargetKind.SCHEMA:
        offered |= {MediaKind.PLAN}
    media_type = negotiate(accept, offered)
    if preferences.handling is PreferHandling.STRICT and preferences.invalid:
        raise InvalidPreferences.for_prefs(preferences.invalid)
    if not limits.aggregates_enabled and _has_aggregate(query.select):
        raise AggregatesNotAllowed
    content_type = _header(request, "content-type")
    return ApiRequest(
        action=action,
        method=method,
        path=subpath,
        head=method == "HEAD",
        target=Target(kind=kind, schema=schema, name=name),
        negotiated_by_profile=negotiated,
        query=query,
        range=row_range,
        preferences=preferences,
        accept=accept,
        media_type=media_type,
        content_type=(
            MediaType(kind=MediaKind.JSON)
            if content_type is None
            else parse_media_type(content_type)
        ),
        body=request.body,
        headers=tuple((k, v) for k, v in request.headers if k != "cookie"),
        cookies=request_cookies(request),
    )
