"""Gateway errors: what the gateway refuses before any service looks at a request.

Exception tree::

    ProtocolError                 the peer sent something we refuse; never raised for our own bugs
      GatewayError                refused before any service looked at the request
        MissingApiKey             401, no `apikey` header or query parameter
        InvalidApiKey             401, the key is not a valid project key
        AmbiguousCredentials      400, two `Authorization` or two `apikey` values
        RouteNotFound             404, no such endpoint (yet) in that service
        MethodNotAllowed          405, a method no route takes (TRACE, CONNECT to a path, ...)
        NotAProxy                 400, CONNECT host:port (authority form): we are no proxy

The gateway does not know how a service writes errors: a refusal inside a service's mount is
handed to that service's renderer (PostgREST's `{code, message, details, hint}`, GoTrue's
versioned `{code, message}` or legacy `{code, error_code, msg}`, Storage's `{statusCode, error,
message}`, Realtime's `{error}`), each of which maps these classes to its own codes. Outside any
service we answer as Supabase's API gateway does, `{message}` (`render_refusal`). Each class names its
`code` (for the access log, and for envelopes without codes of their own); the services' own codes
are theirs.
"""

from __future__ import annotations

import enum
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
    "render_refusal",
]


class Service(enum.StrEnum):
    """The names of the services Supabase mounts under one project's base URL.

    A mount's name is a plain string (`madbase.protocol.http.Mount`); these are the ones whose
    paths Supabase's clients know. A new service needs no member here.
    """

    REST = "rest"
    AUTH = "auth"
    STORAGE = "storage"
    REALTIME = "realtime"


class ProtocolError(Exception):
    """The peer sent something we refuse; never raised for our own bugs."""

    status: ClassVar[int] = 400


class GatewayError(ProtocolError):
    """Refused by the gateway; each service's renderer picks its own code for each class."""

    message: ClassVar[str]
    hint: ClassVar[str | None] = None
    # The gateway's name for the refusal: the access log's `error_code` where an envelope has no
    # code of its own (Realtime's, the gateway's `{message}`).
    code: ClassVar[str]

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.message)
        self.detail = detail

    def extra_headers(self) -> Headers:
        """Headers the answer carries besides the service's own (none by default)."""
        return ()


class MissingApiKey(GatewayError):
    """No `apikey` header or `apikey` query parameter."""

    code = "no_authorization"
    status = 401
    message = "No API key found in request"
    hint = "No `apikey` request header or url param was found."


class InvalidApiKey(GatewayError):
    """The `apikey` is not a JWT signed with the project's secret carrying an API-key role."""

    code = "bad_jwt"
    status = 401
    message = "Invalid API key"
    hint = "Double check your Supabase `anon` or `service_role` API key."


class AmbiguousCredentials(GatewayError):
    """Two `Authorization` headers, or two `apikey` headers (or query parameters).

    Picking one would let whatever sits in front of us (a proxy that adds or checks one of them)
    and us disagree about who is asking, so neither is used.
    """

    code = "validation_failed"
    status = 400
    message = "Only one Authorization header and one apikey may be sent"


class RouteNotFound(GatewayError):
    """The path names no endpoint of the service."""

    code = "not_found"
    status = 404
    message = "Not found"


class MethodNotAllowed(GatewayError):
    """The method is one no route of ours takes; `Allow` lists those that are taken."""

    status = 405
    message = "Method not allowed"
    code = "method_not_allowed"

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
    code = "bad_request"


def render_refusal(err: GatewayError) -> Response:
    """Render `err` outside any service, as Supabase's API gateway does: `{message, hint}`.

    >>> render_refusal(MissingApiKey()).body
    b'{"message":"No API key found in request","hint":"No `apikey` request header or url param was found."}'
    """
    body: dict[str, JsonValue] = {"message": str(err)}
    if err.hint is not None:
        body["hint"] = err.hint
    return json_response(err.status, body, err.extra_headers(), error_code=err.code)
