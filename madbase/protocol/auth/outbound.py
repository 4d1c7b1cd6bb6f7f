"""Requests the auth flows make to other servers (OAuth providers): the command and its answers.

A flow yields `HttpRequest` and is sent an `HttpResponse` (any status) or an `HttpFailure` (no
answer: refused connection, timeout, TLS failure). The runtime gives every request a deadline
and, for a `cache_seconds` above zero, may answer a GET from an earlier 2xx answer to the same URL
no older than that (OIDC discovery documents and JWKS, as go-oidc's remote key set caches them).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import TypeAlias, final
from urllib.parse import parse_qsl

import attrs

from madbase.protocol.http.messages import JsonValue

__all__ = [
    "HttpFailure",
    "HttpRequest",
    "HttpResponse",
    "decode_json",
    "decode_token_response",
    "fetch",
]

Headers: TypeAlias = tuple[tuple[str, str], ...]
JsonObject = dict[str, JsonValue]


@final
@attrs.frozen(kw_only=True)
class HttpRequest:
    """Command: send this request; the runtime answers `HttpResponse | HttpFailure`."""

    method: str
    url: str
    headers: Headers = attrs.field(default=(), repr=False)
    body: bytes = attrs.field(default=b"", repr=False)
    # >0: a GET whose 2xx answer may be served from a cache for that many seconds.
    cache_seconds: int = 0


@final
@attrs.frozen(kw_only=True)
class HttpResponse:
    """What the other server answered (header names lower-case)."""

    status: int
    headers: Headers = ()
    body: bytes = attrs.field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@final
@attrs.frozen(kw_only=True)
class HttpFailure:
    """No answer: the reason, for logs (never shown to clients)."""

    reason: str


def fetch(request: HttpRequest) -> Generator[HttpRequest, object, HttpResponse | HttpFailure]:
    """Yield `request` and return the runtime's answer."""
    result = yield request
    assert isinstance(result, HttpResponse | HttpFailure), result
    return result


def decode_json(body: bytes) -> JsonValue:
    """`body` as JSON, or None when it is not JSON.

    >>> decode_json(b'{"a": 1}'), decode_json(b"<html>")
    ({'a': 1}, None)
    """
    try:
        value: JsonValue = json.loads(body)
    except ValueError:
        return None
    return value


def decode_token_response(response: HttpResponse) -> JsonObject | None:
    """An OAuth token endpoint's answer as an object: JSON or, as GitHub may answer, a form.

    >>> decode_token_response(HttpResponse(status=200, body=b"access_token=a&token_type=bearer"))
    {'access_token': 'a', 'token_type': 'bearer'}
    """
    value = decode_json(response.body)
    if isinstance(value, dict):
        return value
    try:
        pairs = parse_qsl(response.body.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    found: JsonObject = dict(pairs)
    return found
