"""The seam between our HTTP/1.1 server and the parser it drives.

The server (runtime/http.py) owns sockets, timeouts and the application; a `RequestParser` owns
one connection's bytes. Bytes go in (`receive_data`), complete requests come out
(`next_request`, which returns None when it needs more bytes and raises `Refusal` when the peer
got something wrong), and responses become bytes (`response`, `refusal`). Pipelined requests are
returned in the order they arrived; a refusal comes after the requests complete before it.

Two parsers serve the same `ParsedRequest` values:

- `h11` (runtime/http_h11.py): pure Python, ~150 µs of CPU per request (DESIGN.md).
- `httptools` (runtime/http_httptools.py): llhttp, the C parser uvicorn uses; ~40 µs.

`MADBASE_HTTP_PARSER=auto` (the default) takes httptools when it is importable, as uvicorn does.
Both refuse the request-smuggling shapes alike (tests/runtime/test_http_parsers.py): Content-Length
together with Transfer-Encoding, a repeated Content-Length, a chunk size that is not hex digits,
obsolete line folding, bare LF line ends, NUL or CR in header values.

Where they still differ (none lets one request be read as two): llhttp refuses methods it does
not know (h11 takes any token), a chunk size followed by whitespace, a few request-target shapes
and HTTP versions other than 1.0/1.1 (h11 takes any `HTTP/d.d`); llhttp skips empty lines before
a request line (h11 answers 400); h11 treats `Upgrade` without `Connection: upgrade` as an upgrade
request (closing after the response) where llhttp does not. Neither answers `Expect:
100-continue` with an interim 100; clients send the body after their own timeout.
"""

from __future__ import annotations

import importlib.util
import re
from http import HTTPStatus
from typing import Final, Protocol, final

import attrs

from madbase.protocol.http import Request, Response

__all__ = [
    "ParsedRequest",
    "Refusal",
    "RequestParser",
    "frame_response",
    "keep_alive_requested",
    "parser_name",
    "reason_phrase",
    "refusal_response",
    "serialize_response",
]


@final
@attrs.frozen
class ParsedRequest:
    """One complete request and what it says about the connection."""

    request: Request
    # "1.0" or "1.1".
    http_version: str
    # The peer allows another request on this connection (HTTP/1.1 without `Connection: close`).
    keep_alive: bool
    # The peer asked to switch protocols (`Upgrade`, or CONNECT): after the response the connection
    # either becomes a websocket or closes.
    upgrade: bool


class Refusal(Exception):
    """The request is refused at the HTTP level with `status`; the connection then closes."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class RequestParser(Protocol):
    """One connection's HTTP/1.1 parser (server side)."""

    @property
    def started(self) -> bool:
        """Bytes of a request not yet complete are held (the peer is not idle)."""
        ...

    @property
    def in_body(self) -> bool:
        """The current request's head is complete; its body is being read."""
        ...

    @property
    def buffered(self) -> bool:
        """Bytes beyond the requests returned so far were received (a pipelined request)."""
        ...

    def receive_data(self, data: bytes) -> None:
        """Take bytes from the peer (never empty: the server handles end of stream itself)."""
        ...

    def next_request(self) -> ParsedRequest | None:
        """The next complete request, None to wait for more bytes; raises `Refusal`."""
        ...

    def trailing_data(self) -> bytes:
        """Bytes received after the head of an upgrade request (the new protocol's first bytes)."""
        ...

    def continue_response(self) -> bytes | None:
        """`100 Continue` to send before waiting for the body of a request whose head asked for
        it (`Expect: 100-continue`), once per request; None otherwise."""
        ...

    def response(self, method: str, response: Response, *, keep_alive: bool, date: str) -> bytes:
        """The bytes of `response` to a `method` request; readies the next request if keep_alive."""
        ...

    def refusal(self, status: int, date: str) -> bytes | None:
        """The bytes of a refusal with `status` (connection: close), None if one can't be sent."""
        ...


def parser_name(setting: str) -> str:
    """`h11` or `httptools` for the setting `auto|h11|httptools`; raises if httptools is missing."""
    available = importlib.util.find_spec("httptools") is not None
    if setting == "auto":
        return "httptools" if available else "h11"
    if setting == "httptools" and not available:
        raise RuntimeError("MADBASE_HTTP_PARSER=httptools but httptools is not installed")
    if setting not in ("h11", "httptools"):
        raise ValueError(f"unknown HTTP parser {setting!r}")
    return setting


def keep_alive_requested(http_version: str, connection: str | None) -> bool:
    """HTTP/1.1 keeps a connection unless `Connection: close`; HTTP/1.0 always closes (as h11).

    >>> keep_alive_requested("1.1", None), keep_alive_requested("1.1", "Keep-Alive, Close")
    (True, False)
    >>> keep_alive_requested("1.0", "keep-alive")
    False
    """
    if http_version != "1.1":
        return False
    if connection is None:
        return True
    return not any(token.strip().lower() == "close" for token in connection.split(","))


def frame_response(
    method: str, response: Response, *, keep_alive: bool, date: str
) -> tuple[list[tuple[str, str]], bytes]:
    """The headers and body to send: our own Content-Length, Date and Connection, no body to HEAD.

    >>> response = Response(status=200, headers=(("content-length", "9"),), body=b"abc")
    >>> frame_response("HEAD", response, keep_alive=False, date="D")
    ([('content-length', '3'), ('date', 'D'), ('connection', 'close')], b'')
    """
    headers = [(k, v) for k, v in response.headers if k not in ("content-length", "connection")]
    status = response.status
    body = response.body
    if status >= 200 and status not in (204, 304):
        headers.append(("content-length", str(len(body))))
    headers.append(("date", date))
    if not keep_alive:
        headers.append(("connection", "close"))
    if method == "HEAD" or status in (204, 304) or status < 200:
        body = b""
    return headers, body


_REFUSAL_TEXT: Final = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Payload Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
}


def refusal_response(status: int) -> Response:
    """The JSON answer to a refused request.

    >>> refusal_response(414).body
    b'{"message":"URI Too Long"}'
    """
    status = status if 400 <= status < 600 else 400
    text = _REFUSAL_TEXT.get(status, "Bad Request")
    body = b'{"message":"%s"}' % text.encode()
    return Response(
        status=status, headers=(("content-type", "application/json; charset=utf-8"),), body=body
    )


def reason_phrase(status: int) -> str:
    """The standard reason phrase of `status`, empty if it has none."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# One header line as we send it: a token, ": ", a value without CR, LF or NUL.
_HEADER_BLOCK: Final = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [^\r\n\0]*\r\n)*")


def serialize_response(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """Status line, headers and body as one buffer; raises ValueError on a header that would
    split the response (a bug of ours: the application built it)."""
    block = "".join([f"{name}: {value}\r\n" for name, value in headers])
    # Well-formed lines, and exactly one per header: no value carried a line end of its own.
    if _HEADER_BLOCK.fullmatch(block) is None or block.count("\n") != len(headers):
        raise ValueError(f"invalid response header in {headers!r}")
    head = f"HTTP/1.1 {status} {reason_phrase(status)}\r\n{block}\r\n".encode("latin-1")
    return head + body if body else head
