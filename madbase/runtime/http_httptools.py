"""The httptools `RequestParser`: llhttp (C) through callbacks, responses serialized here.

llhttp parses in strict mode (no `set_dangerous_leniencies`): it refuses obsolete line folding,
bare LF, NUL/CR/LF in header values, repeated Content-Length, Content-Length with
Transfer-Encoding and bad chunk sizes by itself. What h11 also checks is added here: the Host
header (exactly one in HTTP/1.1), a Transfer-Encoding other than `chunked` (501), HTTP versions
other than 1.0 and 1.1. Header values lose their trailing whitespace as with h11; trailers are
dropped as with h11.

llhttp runs until the bytes it was given end, completing every pipelined request in them. To keep
what a peer's pipelined burst costs us close to h11's (which parses one event at a time), bytes
are handed to llhttp `_SLICE` at a time, and only when every completed request has been taken.

llhttp stops at the head of an upgrade request (or CONNECT) and does not read its body. A request
we will not upgrade (anything but a websocket handshake) still gets its declared body, read by a
second parser over a synthetic head; the connection closes after its response.
"""

from __future__ import annotations

from collections import deque
from typing import Final, final

import attrs
import httptools

from madbase.config import HttpSettings
from madbase.protocol.http import Request, Response
from madbase.runtime.http_parse import (
    ParsedRequest,
    Refusal,
    frame_response,
    keep_alive_requested,
    refusal_response,
    serialize_response,
)

__all__ = ["HttptoolsParser"]

_SLICE: Final = 8 * 1024


_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


@final
class HttptoolsParser:
    """One connection's llhttp state, fed by the server."""

    def __init__(self, settings: HttpSettings, client: str | None) -> None:
        self._settings = settings
        self._client = client
        self._parser = httptools.HttpRequestParser(self)
        self._ready: deque[ParsedRequest] = deque()
        self._error: Refusal | None = None
        self._pending = memoryview(b"")
        self._trailing = b""
        self._upgraded = False
        # Reads the body of an upgrade request that is answered as a plain one.
        self._body_reader: HttptoolsParser | None = None
        self._held: ParsedRequest | None = None
        # The message being parsed.
        self._in_message = False
        self._headers_done = False
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._streamed = 0
        self._body = bytearray()
        self._length: int | None = None
        self._chunked = False
        # The request under way asked for `Expect: 100-continue` and has not been answered it.
        self._expects_continue = False

    @property
    def started(self) -> bool:
        return self._in_message or bool(self._pending) or self._body_reader is not None

    @property
    def in_body(self) -> bool:
        return self._headers_done or self._body_reader is not None

    @property
    def buffered(self) -> bool:
        return bool(self._ready or self._pending or self._trailing) or self._in_message

    def receive_data(self, data: bytes) -> None:
        if self._body_reader is not None:
            self._body_reader.receive_data(data)
        elif self._pending:
            self._pending = memoryview(bytes(self._pending) + data)
        else:
            self._pending = memoryview(data)

    def next_request(self) -> ParsedRequest | None:
        while True:
            if self._ready:
                return self._ready.popleft()
            if self._body_reader is not None:
                return self._read_upgrade_body(self._body_reader)
            if self._error is not None:
                raise self._error
            if not self._pending or self._upgraded:
                return None
            chunk, self._pending = self._pending[:_SLICE], self._pending[_SLICE:]
            self._feed(chunk)

    def _feed(self, chunk: memoryview) -> None:
        try:
            self._parser.feed_data(chunk)
        except httptools.HttpParserUpgrade as upgrade:
            (offset,) = upgrade.args
            self._trailing = bytes(chunk[offset:]) + bytes(self._pending)
            self._pending = memoryview(b"")
            self._upgraded = True
            self._start_upgrade_body()
            return
        except httptools.HttpParserError as err:
            if self._error is None:
                reason = str(err)
                # llhttp refuses transfer codings it cannot read; h11 answers those 501.
                status = 501 if "`Transfer-Encoding`" in reason else 400
                self._error = Refusal(status, reason)
            self._pending = memoryview(b"")
            return
        if self._in_message and not self._headers_done:
            # llhttp hands over partial tokens at the end of each chunk; httptools keeps a header
            # value until it is complete, so the head is bounded by the bytes it came in.
            self._streamed += len(chunk)
            if (
                self._streamed
                > self._settings.max_head_bytes + self._settings.max_request_line_bytes
            ):
                self._error = Refusal(431, "request headers too large")
                self._pending = memoryview(b"")

    def _refuse(self, status: int, reason: str) -> Refusal:
        self._error = Refusal(status, reason)
        return self._error

    # llhttp callbacks, called inside feed_data.

    def on_message_begin(self) -> None:
        self._in_message = True
        self._headers_done = False
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._streamed = 0
        self._body = bytearray()
        self._length = None
        self._chunked = False
        self._expects_continue = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._settings.max_request_line_bytes:
            raise self._refuse(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._headers_done:
            return  # a trailer of a chunked body: dropped, as h11 does
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self._settings.max_head_bytes:
            raise self._refuse(431, "request headers too large")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").rstrip(" \t")
        if key == "content-length":
            self._length = int(text)  # llhttp checked the digits and refuses repeats
        elif key == "transfer-encoding":
            text = text.lower()  # as h11 hands it over
            if text != "chunked":
                raise self._refuse(501, "only Transfer-Encoding: chunked is supported")
            self._chunked = True
        self._headers.append((key, text))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        version = self._parser.get_http_version()
        if version not in ("1.0", "1.1"):
            raise self._refuse(400, f"unsupported HTTP version {version}")
        hosts = sum(1 for key, _ in self._headers if key == "host")
        if hosts > 1 or (hosts == 0 and version == "1.1"):
            raise self._refuse(400, "HTTP/1.1 needs exactly one Host header")
        if self._length is not None and self._length > self._settings.max_body_bytes:
            raise self._refuse(413, "request body too large")
        self._expects_continue = version == "1.1" and any(
            key == "expect" and value.lower() == "100-continue" for key, value in self._headers
        )

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > self._settings.max_body_bytes:
            raise self._refuse(413, "request body too large")

    def on_message_complete(self) -> None:
        self._in_message = False
        self._headers_done = False
        self._expects_continue = False
        parser = self._parser
        version = parser.get_http_version()
        headers = tuple(self._headers)
        request = Request(
            method=parser.get_method().decode("ascii", "replace"),
            target=self._url.decode("latin-1"),
            headers=headers,
            body=bytes(self._body),
            client=self._client,
        )
        connection = next((v for k, v in headers if k == "connection"), None)
        self._ready.append(
            ParsedRequest(
                request=request,
                http_version=version,
                keep_alive=keep_alive_requested(version, connection),
                upgrade=parser.should_upgrade(),
            )
        )

    # Upgrade requests that will be answered as plain requests.

    def _start_upgrade_body(self) -> None:
        parsed = self._ready[-1]
        if _is_websocket_handshake(parsed.request) or not (self._chunked or self._length):
            return
        self._held = self._ready.pop()
        framing = (
            b"transfer-encoding: chunked"
            if self._chunked
            else b"content-length: %d" % (self._length or 0)
        )
        reader = HttptoolsParser(self._settings, self._client)
        reader.receive_data(b"POST / HTTP/1.1\r\nhost: body\r\n" + framing + b"\r\n\r\n")
        if self._trailing:
            reader.receive_data(self._trailing)
        self._trailing = b""
        self._body_reader = reader

    def _read_upgrade_body(self, reader: HttptoolsParser) -> ParsedRequest | None:
        body = reader.next_request()
        if body is None:
            return None
        held = self._held
        assert held is not None
        self._body_reader = self._held = None
        request = Request(
            method=held.request.method,
            target=held.request.target,
            headers=held.request.headers,
            body=body.request.body,
            client=held.request.client,
        )
        return attrs.evolve(held, request=request)

    def trailing_data(self) -> bytes:
        return self._trailing

    def continue_response(self) -> bytes | None:
        if not self._expects_continue or self._error is not None:
            return None
        self._expects_continue = False
        return _CONTINUE

    def response(self, method: str, response: Response, *, keep_alive: bool, date: str) -> bytes:
        headers, body = frame_response(method, response, keep_alive=keep_alive, date=date)
        return serialize_response(response.status, headers, body)

    def refusal(self, status: int, date: str) -> bytes | None:
        return self.response("GET", refusal_response(status), keep_alive=False, date=date)


def _is_websocket_handshake(request: Request) -> bool:
    upgrade = request.header("upgrade")
    return request.method == "GET" and upgrade is not None and upgrade.lower() == "websocket"
