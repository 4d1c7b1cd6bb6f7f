"""Gateway errors and how each service renders an error body.

Exception tree::

    ProtocolError                 the peer sent something we refuse; never raised for our own bugs
      GatewayError                refused before any service looked at the request
        MissingApiKey             401, no `apikey` header or query parameter
        InvalidApiKey             401, the key is not a valid project key
        AmbiguousCredentials      400, two `Authorization` or two `apikey` values
        RouteNotFound             404, no such endpoint (yet) in that service
        MethodNotAllowed          405, a method no route takes (TRACE, CONNECT to a path, ...)
        NotAProxy                 400, CONNECT host:port (authority form): we are no proxy

Each service keeps the error shape its official client reads: PostgREST's `{code, message, details,
hint}`, GoTrue's versioned `{code, message}` or legacy `{code, error_code, msg}`, Storage's
`{statusCode, error, message}` and Realtime's `{error}`. Outside any service we answer as Supabase's
API gateway does, `{message}`. The rendered response names the code it carries (`error_code`, for
the access log): the service's code, or `auth_code` for the shapes that carry none.
"""

from __future__ import annotations

import enum
import re
from typing import ClassVar

from madbase.protocol.http.messages import Headers, JsonValue, Response, json_response

__all__ = [
    "AmbiguousCredentials",
    "GatewayError",
    "InvalidApiKey",
    "MethodNotAllowed",
    "MissingApiKey",
    "NotAProxy",
    "ProtocolError",
    "RouteNotFound",
    "Service",
    "render_error",
]

# auth-js and supabase_auth send this header; GoTrue answers with the newer error shape when it is
# at least this date (spec/auth.md §6).
AUTH_API_VERSION = "2024-01-01"
_API_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class Service(enum.StrEnum):
    """The services mounted under one project's base URL."""

    REST = "rest"
    AUTH = "auth"
    STORAGE = "storage"
    REALTIME = "realtime"


class ProtocolError(Exception):
    """The peer sent something we refuse; never raised for our own bugs."""

    status: ClassVar[int] = 400


class GatewayError(ProtocolError):
    """Refused by the gateway; one class attribute per service's error code."""

    message: ClassVar[str]
    hint: ClassVar[str | None] = None
    rest_code: ClassVar[str]
    auth_code: ClassVar[str]
    storage_error: ClassVar[str]

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.message)
        self.detail = detail

    def extra_headers(self) -> Headers:
        """Headers the answer carries besides the service's own (none by default)."""
        return ()


class MissingApiKey(GatewayError):
    """No `apikey` header or `apikey` query parameter."""

    status = 401
    message = "No API key found in request"
    hint = "No `apikey` request header or url param was found."
    rest_code = "PGRST302"  # PostgREST: anonymous access refused without credentials
    auth_code = "no_authorization"
    storage_error = "Unauthorized"


class InvalidApiKey(GatewayError):
    """The `apikey` is not a JWT signed with the project's secret carrying an API-key role."""

    status = 401
    message = "Invalid API key"
    hint = "Double check your Supabase `anon` or `service_role` API key."
    rest_code = "PGRST301"  # PostgREST: JWT could not be decoded or verified
    auth_code = "bad_jwt"
    storage_error = "Unauthorized"


class AmbiguousCredentials(GatewayError):
    """Two `Authorization` headers, or two `apikey` headers (or query parameters).

    Picking one would let whatever sits in front of us (a proxy that adds or checks one of them)
    and us disagree about who is asking, so neither is used.
    """

    status = 400
    message = "Only one Authorization header and one apikey may be sent"
    # PostgREST has no code for this; its JWT family's "could not decode" is the closest.
    rest_code = "PGRST301"
    auth_code = "validation_failed"
    storage_error = "InvalidRequest"


class RouteNotFound(GatewayError):
    """The path names no endpoint of the service."""

    status = 404
    message = "Not found"
    rest_code = "PGRST125"  # PostgREST: invalid path specified in request URL
    auth_code = "not_found"
    storage_error = "not_found"


class MethodNotAllowed(GatewayError):
    """The method is one no route of ours takes; `Allow` lists those that are taken."""

    status = 405
    message = "Method not allowed"
    rest_code = "PGRST117"  # PostgREST: unsupported HTTP method
    # GoTrue's router answers these 405 without a code of its own; Storage likewise.
    auth_code = "method_not_allowed"
    storage_error = "method_not_allowed"

    def __init__(self, method: str, allow: str) -> None:
        super().__init__(f"Unsupported HTTP method: {method}")
        self.allow = allow

    def extra_headers(self) -> Headers:
        """`Allow` (RFC 9110 §15.5.6: a 405 lists the methods the resource supports)."""
        return (("allow", self.allow),)


class NotAProxy(GatewayError):
    """`CONNECT host:port`: a tunnel request to a proxy, which this server is not."""

    status = 400
    message = "CONNECT is not supported: this server is not a proxy"
    rest_code = "PGRST125"  # PostgREST: invalid path specified in request URL
    auth_code = "bad_request"
    storage_error = "InvalidRequest"


def _is_api_date(value: str) -> bool:
    """True for a `YYYY-MM-DD` date on or after the first versioned API date."""
    return _API_DATE.fullmatch(value) is not None and value >= AUTH_API_VERSION


def render_error(
    service: Service | None, err: GatewayError, *, auth_api_version: str | None = None
) -> Response:
    """Render `err` in `service`'s error shape (None: outside any service).

    >>> render_error(Service.STORAGE, MissingApiKey()).body
    b'{"statusCode":"401","error":"Unauthorized","message":"No API key found in request"}'
    """
    message = str(err)
    body: JsonValue
    headers = err.extra_headers()
    code = err.auth_code
    match service:
        case Service.REST:
            code = err.rest_code
            body = {"code": code, "message": message, "details": None, "hint": err.hint}
        case Service.AUTH:
            headers += (("x-sb-error-code", code),)
            if auth_api_version is not None and _is_api_date(auth_api_version):
                body = {"code": code, "message": message}
                headers += (("x-supabase-api-version", AUTH_API_VERSION),)
            else:
                body = {"code": err.status, "error_code": code, "msg": message}
        case Service.STORAGE:
            code = err.storage_error
            body = {"statusCode": str(err.status), "error": code, "message": message}
        case Service.REALTIME:
            body = {"error": message}
        case None:
            body = {"message": message}
            if err.hint is not None:
                body["hint"] = err.hint
    return json_response(err.status, body, headers, error_code=code)
