"""HTTP request and response values shared by every service, whatever server parsed the bytes."""

from __future__ import annotations

import json
import re
from typing import Final, TypeAlias, final
from urllib.parse import parse_qsl

import attrs

__all__ = ["Headers", "JsonValue", "Request", "Response", "json_response"]

Headers: TypeAlias = tuple[tuple[str, str], ...]
JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"


# Header values that are credentials: shown as "<redacted>" in every repr.
_SECRET_HEADERS: Final = frozenset({"authorization", "apikey", "cookie", "proxy-authorization"})
_SECRET_QUERY: Final = re.compile(r"((?:^|[?&])(?:apikey|access_token|token)=)[^&]*", re.IGNORECASE)


@final
@attrs.frozen(kw_only=True, repr=False)
class Request:
    """One complete HTTP request.

    `target` is the raw request target (path and query, still percent-encoded); header names are
    lower-case, values decoded as latin-1 (RFC 9110 §5.5), in the order received.
    """

    method: str
    target: str
    headers: Headers = ()
    body: bytes = b""
    client: str | None = None

    @property
    def path(self) -> str:
        """The target's path, still percent-encoded."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        """The raw query string, without `?`."""
        _, _, query = self.target.partition("?")
        return query

    def __repr__(self) -> str:
        """Credentials in headers and the query string are redacted; the body is only counted.

        >>> Request(method="GET", target="/x?apikey=k&a=1", headers=(("apikey", "k"),))
        Request(method='GET', target='/x?apikey=<redacted>&a=1', headers=(('apikey', '<redacted>'),), body=<0 bytes>, client=None)
        """
        headers = tuple(
            (key, "<redacted>" if key in _SECRET_HEADERS else value) for key, value in self.headers
        )
        target = _SECRET_QUERY.sub(r"\1<redacted>", self.target)
        return (
            f"Request(method={self.method!r}, target={target!r}, headers={headers!r}, "
            f"body=<{len(self.body)} bytes>, client={self.client!r})"
        )

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower-case), or None.

        >>> Request(method="GET", target="/", headers=(("apikey", "k"),)).header("apikey")
        'k'
        """
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def query_param(self, name: str) -> str | None:
        """The first value of query parameter `name`, form-decoded, or None.

        >>> Request(method="GET", target="/x?a=1&apikey=a%2Bb+c").query_param("apikey")
        'a+b c'
        """
        for key, value in parse_qsl(self.query, keep_blank_values=True):
            if key == name:
                return value
        return None


@final
@attrs.frozen(kw_only=True)
class Response:
    """One HTTP response; the server adds framing headers (content-length, date, connection).

    `error_code` is the code an error answer carries in its body (`PGRST202`, `42501`,
    `weak_password`, ...), set by whoever rendered the body so that the access log can name it
    without parsing the body again; it is never sent as such and is not part of equality.
    """

    status: int
    headers: Headers = ()
    body: bytes = b""
    error_code: str | None = attrs.field(default=None, eq=False)

    def with_headers(self, extra: Headers) -> Response:
        """This response with `extra` headers appended."""
        # Built directly: attrs.evolve costs several microseconds on every response.
        return Response(
            status=self.status,
            headers=self.headers + extra,
            body=self.body,
            error_code=self.error_code,
        )

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


def json_response(
    status: int, value: JsonValue, headers: Headers = (), *, error_code: str | None = None
) -> Response:
    """A response whose body is `value` as compact JSON (`error_code`: see `Response`).

    >>> json_response(200, {"a": 1}).body
    b'{"a":1}'
    """
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(
        status=status,
        headers=(("content-type", "application/json; charset=utf-8"), *headers),
        body=body,
        error_code=error_code,
    )
