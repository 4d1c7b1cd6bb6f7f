"""Supabase Storage's error shape, `{statusCode, error, message}` (storage-js reads `error` and
`message`; `statusCode` is a string, as supabase/storage sends it).

Only the gateway's refusals exist so far: the storage API itself is not built yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from madbase.protocol.http.errors import (
    AmbiguousCredentials,
    GatewayError,
    InvalidApiKey,
    MethodNotAllowed,
    MissingApiKey,
    NotAProxy,
    RouteNotFound,
)
from madbase.protocol.http.messages import JsonValue, Request, Response, json_response

__all__ = ["render_storage_refusal"]

# supabase/storage src/internal/errors/codes.ts names.
_REFUSAL_ERRORS: Final[Mapping[type[GatewayError], str]] = MappingProxyType(
    {
        MissingApiKey: "Unauthorized",
        InvalidApiKey: "Unauthorized",
        AmbiguousCredentials: "InvalidRequest",
        RouteNotFound: "not_found",
        MethodNotAllowed: "method_not_allowed",
        NotAProxy: "InvalidRequest",
    }
)


def render_storage_refusal(err: GatewayError, request: Request) -> Response:
    """A gateway refusal under `/storage/v1`, in Storage's shape.

    >>> render_storage_refusal(MissingApiKey(), Request(method="GET", target="/")).body
    b'{"statusCode":"401","error":"Unauthorized","message":"No API key found in request"}'
    """
    code = _REFUSAL_ERRORS.get(type(err), "InternalError")
    body: JsonValue = {"statusCode": str(err.status), "error": code, "message": str(err)}
    return json_response(err.status, body, err.extra_headers(), error_code=code)
