"""The seam between our HTTP/1.1 server and the parser it drives.

The server (runtime/http/server.py) owns sockets, timeouts and the application; a `RequestParser` owns
one connection's bytes. Bytes go in (`receive_data`), complete requests come out
(`next_request`, which returns None when it needs more bytes and raises `Refusal` when the peer
got something wrong), and responses become bytes (`response`, `refusal`; the framing itself is
`madbase.protocol.http.framing`'s, written once for both parsers and the ASGI front). Pipelined requests are
returned in the order they arrived; a refusal comes after the requests complete before it.

Two parsers serve the same `ParsedRequest` values:

- `h11` (runtime/http/h11_parser.py): pure Python, ~150 µs of CPU per request (DESIGN.md).
- `httptools` (runtime/http/httptools_parser.py): llhttp, the C parser uvicorn uses; ~40 µs.

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
from typing import Protocol, final

import attrs

from madbase.protocol.http import Refusal, Request, Response

__all__ = ["ParsedRequest", "Refusal", "RequestParser", "parser_name"]


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
    # The body is whole in `request.body`; else it is still arriving and is read with
    # `RequestParser.next_body` (the request's `body` is empty then).
    complete: bool = True


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
        """The next request whose head is complete, None to wait for more bytes; raises
        `Refusal`. Its body is in it when the bytes received hold all of it (`complete`);
        else the body is read with `next_body` before the next request."""
        ...

    def next_body(self) -> bytes | None:
        """The next bytes of an incomplete request's body, b"" at its end, None to wait for more
        bytes; raises `Refusal` (413 past the size limit: nothing beyond it is returned)."""
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

    def answered(self, *, keep_alive: bool) -> None:
        """A response's head went out (the server framed it); readies the next request if
        keep_alive."""
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
