"""HTTP/1.1 framing, written once for every front: limits, smuggling checks, refusals, responses.

The native server's two parsers (h11 and httptools) read request heads and bodies; what they
decide about a request (too long a line, too large a head or body, shapes a proxy in front of us
could read differently) and how every response is framed (status line, our own Content-Length,
Date and Connection, chunked bodies, no body to HEAD) is decided here, from bytes and values.
The ASGI front frames nothing itself (the ASGI server does) but takes the same `frame_headers`.

Request-smuggling shapes refused alike by both parsers (tests/runtime/test_http_parsers.py):
Content-Length together with Transfer-Encoding, a repeated Content-Length, obsolete line
folding, bare LF line ends (llhttp refuses them itself; `check_head_bytes` for h11).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Final, final

import attrs

from madbase.protocol.http.limits import HttpLimits
from madbase.protocol.http.messages import Headers, Request, Response

__all__ = [
    "LAST_CHUNK",
    "Framing",
    "Refusal",
    "check_body_length",
    "check_head_bytes",
    "check_head_size",
    "check_request_line",
    "chunk",
    "frame_headers",
    "frame_response",
    "is_websocket_handshake",
    "keep_alive_requested",
    "reason_phrase",
    "refusal_response",
    "serialize_head",
    "serialize_response",
]

# RFC 9110 §6.4.1: 1xx, 204 and 304 carry no content, whatever the application produced.
_NO_BODY: Final = frozenset({204, 304})
# The end of a chunked body: the zero-size chunk and an empty trailer section.
LAST_CHUNK: Final = b"0\r\n\r\n"


class Refusal(Exception):
    """The request is refused at the HTTP level with `status`; the connection then closes."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def check_request_line(length: int, limits: HttpLimits) -> None:
    """Refuse (414) a request line or target longer than the limit."""
    if length > limits.max_request_line_bytes:
        raise Refusal(414, "request line too long")


def check_head_size(size: int, limits: HttpLimits) -> None:
    """Refuse (431) header fields larger than the limit (each counted as `name: value\\r\\n`)."""
    if size > limits.max_head_bytes:
        raise Refusal(431, "request headers too large")


def check_body_length(length: int, limits: HttpLimits) -> None:
    """Refuse (413) a body larger than the limit: declared, or read so far.

    >>> check_body_length(11, HttpLimits(max_body_bytes=10))
    Traceback (most recent call last):
    ...
    madbase.protocol.http.framing.Refusal: request body too large
    """
    if length > limits.max_body_bytes:
        raise Refusal(413, "request body too large")


_CONTENT_LENGTH_LINE: Final = re.compile(rb"\ncontent-length[ \t]*:", re.IGNORECASE)


def check_head_bytes(head: bytes) -> None:
    """Refuse (400) a complete raw head that a proxy in front of us could read differently.

    >>> check_head_bytes(b"GET / HTTP/1.1\\r\\nHost: a\\r\\n b\\r\\n\\r\\n")
    Traceback (most recent call last):
    ...
    madbase.protocol.http.framing.Refusal: obsolete line folding in the head
    """
    # Plain substring counts first: this runs on every request of the h11 path.
    if b"\n " in head or b"\n\t" in head:
        raise Refusal(400, "obsolete line folding in the head")
    if head.count(b"\n") != head.count(b"\r\n"):
        raise Refusal(400, "bare LF in the head")
    if len(_CONTENT_LENGTH_LINE.findall(head)) > 1:
        raise Refusal(400, "repeated Content-Length")


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


def is_websocket_handshake(request: Request) -> bool:
    """A websocket opening handshake (RFC 6455 §4.1): GET with `Upgrade: websocket` and
    `Connection: upgrade`; whichever parser or front read it.

    >>> head = (("upgrade", "WebSocket"), ("connection", "keep-alive, Upgrade"))
    >>> is_websocket_handshake(Request(method="GET", target="/", headers=head))
    True
    >>> is_websocket_handshake(Request(method="GET", target="/", headers=head[:1]))
    False
    """
    if request.method != "GET":
        return False
    upgrade = request.header("upgrade")
    connection = request.header("connection")
    return (
        upgrade is not None
        and upgrade.lower() == "websocket"
        and connection is not None
        and any(token.strip().lower() == "upgrade" for token in connection.split(","))
    )


@final
@attrs.frozen
class Framing:
    """How a response goes on the wire: its headers, and how its body is delimited."""

    headers: list[tuple[str, str]]
    # The response carries a body at all (not to HEAD, not 1xx/204/304).
    has_body: bool
    # The body goes in chunks (`chunk`, then `LAST_CHUNK`).
    chunked: bool
    # The connection stays open after the response.
    keep_alive: bool


def frame_headers(
    method: str, response: Response, *, keep_alive: bool, date: str | None, chunked_ok: bool = True
) -> Framing:
    """The headers to send and how the body is delimited: our own Content-Length (a stream's
    own when it names one), chunked for a stream of unknown length (or, where the peer cannot
    read chunks, the connection closes after it), Date (None: the front adds it) and
    Connection, no body to HEAD.

    >>> response = Response(status=200, headers=(("content-length", "9"),), body=b"abc")
    >>> frame_headers("HEAD", response, keep_alive=False, date="D")
    Framing(headers=[('content-length', '3'), ('date', 'D'), ('connection', 'close')], has_body=False, chunked=False, keep_alive=False)
    """
    status = response.status
    streamed = response.stream is not None
    length = response.header("content-length") if streamed else None
    headers = [(k, v) for k, v in response.headers if k not in _FRAMING_HEADERS]
    chunked = False
    if status >= 200 and status not in _NO_BODY:
        if not streamed:
            headers.append(("content-length", str(len(response.body))))
        elif length is not None:
            headers.append(("content-length", length))
        elif method != "HEAD":
            if chunked_ok:
                chunked = True
                headers.append(("transfer-encoding", "chunked"))
            else:
                keep_alive = False  # HTTP/1.0: the end of the connection ends the body
    if date is not None:
        headers.append(("date", date))
    if not keep_alive:
        headers.append(("connection", "close"))
    has_body = method != "HEAD" and status >= 200 and status not in _NO_BODY
    return Framing(headers, has_body, chunked and has_body, keep_alive)


_FRAMING_HEADERS: Final = frozenset({"content-length", "connection", "transfer-encoding"})


def frame_response(
    method: str, response: Response, *, keep_alive: bool, date: str
) -> tuple[list[tuple[str, str]], bytes]:
    """The headers and body of a response whose body is bytes.

    >>> response = Response(status=200, headers=(("content-length", "9"),), body=b"abc")
    >>> frame_response("HEAD", response, keep_alive=False, date="D")
    ([('content-length', '3'), ('date', 'D'), ('connection', 'close')], b'')
    """
    # The hot path of every response: no `Framing` built, no stream looked at.
    headers = [(k, v) for k, v in response.headers if k not in _FRAMING_HEADERS]
    status = response.status
    body = response.body
    if status >= 200 and status not in _NO_BODY:
        headers.append(("content-length", str(len(body))))
    headers.append(("date", date))
    if not keep_alive:
        headers.append(("connection", "close"))
    if method == "HEAD" or status in _NO_BODY or status < 200:
        body = b""
    return headers, body


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (never empty: the empty chunk is `LAST_CHUNK`).

    >>> chunk(b"hello, world")
    b'c\\r\\nhello, world\\r\\n'
    """
    assert data
    return b"%x\r\n%b\r\n" % (len(data), data)


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
    """The standard reason phrase of `status`, empty if it has none.

    >>> reason_phrase(404), reason_phrase(599)
    ('Not Found', '')
    """
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# One header line as we send it: a token, ": ", a value without CR, LF or NUL.
_HEADER_BLOCK: Final = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [^\r\n\0]*\r\n)*")


def serialize_head(status: int, headers: list[tuple[str, str]] | Headers) -> bytes:
    """Status line and headers; raises ValueError on a header that would split the response
    (a bug of ours: the application built it).

    >>> serialize_head(204, [("date", "D")])
    b'HTTP/1.1 204 No Content\\r\\ndate: D\\r\\n\\r\\n'
    """
    block = "".join([f"{name}: {value}\r\n" for name, value in headers])
    # Well-formed lines, and exactly one per header: no value carried a line end of its own.
    if _HEADER_BLOCK.fullmatch(block) is None or block.count("\n") != len(headers):
        raise ValueError(f"invalid response header in {headers!r}")
    return f"HTTP/1.1 {status} {reason_phrase(status)}\r\n{block}\r\n".encode("latin-1")


def serialize_response(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """Status line, headers and body as one buffer (see `serialize_head`)."""
    head = serialize_head(status, headers)
    return head + body if body else head
