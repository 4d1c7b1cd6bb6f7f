"""The h11 `RequestParser`: pure Python, always available.

h11 bounds a head that arrives in pieces (`max_incomplete_event_size`); a head arriving whole, a
long request line and the body are bounded here. h11 accepts some shapes llhttp refuses and that
a proxy in front of us could read differently (request smuggling); they are refused here before
h11 parses the head, so both parsers answer them alike: obsolete line folding, bare LF line ends,
a repeated Content-Length, Content-Length together with Transfer-Encoding.
"""

from __future__ import annotations

import re
from typing import Final, final

import h11

from madbase.config import HttpSettings
from madbase.protocol.http import Request, Response
from madbase.runtime.http_parse import (
    ParsedRequest,
    Refusal,
    frame_response,
    keep_alive_requested,
    reason_phrase,
    refusal_response,
)

__all__ = ["H11Parser"]

# Where h11 ends a head: an empty line, CRLF or bare LF.
_HEAD_END: Final = re.compile(rb"\n\r?\n")
_CONTENT_LENGTH_LINE: Final = re.compile(rb"\ncontent-length[ \t]*:", re.IGNORECASE)


@final
class H11Parser:
    """One connection's h11 state, fed by the server."""

    def __init__(self, settings: HttpSettings, client: str | None) -> None:
        self._settings = settings
        self._client = client
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=settings.max_head_bytes)
        self._head: h11.Request | None = None
        self._body = bytearray()
        self._first_line_seen = False
        self._line_bytes = 0
        self._started = False
        # The bytes of the head being received, until it is complete and checked.
        self._raw = bytearray()
        self._scanned = 0
        self._unchecked = False

    @property
    def started(self) -> bool:
        return self._started or self._head is not None

    @property
    def in_body(self) -> bool:
        return self._head is not None

    @property
    def buffered(self) -> bool:
        return bool(self._conn.trailing_data[0])

    def receive_data(self, data: bytes) -> None:
        self._started = True
        if self._head is None:
            self._raw += data
            self._unchecked = True
        if not self._first_line_seen:
            self._line_bytes += len(data)
            self._first_line_seen = b"\n" in data
            if (
                not self._first_line_seen
                and self._line_bytes > self._settings.max_request_line_bytes
            ):
                raise Refusal(414, "request line too long")
        try:
            self._conn.receive_data(data)
        except h11.RemoteProtocolError as err:
            raise Refusal(err.error_status_hint, str(err)) from None

    def next_request(self) -> ParsedRequest | None:
        settings = self._settings
        while True:
            if self._head is None and self._unchecked:
                self._check_raw_head()
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as err:
                if not self._first_line_seen and self._line_bytes > settings.max_request_line_bytes:
                    raise Refusal(414, "request line too long") from None
                raise Refusal(err.error_status_hint, str(err)) from None
            if event is h11.NEED_DATA:
                return None
            if isinstance(event, h11.Request):
                self._head = event
                if len(event.target) > settings.max_request_line_bytes:
                    raise Refusal(414, "request line too long")
                # h11 bounds only a head that arrives in pieces; one arriving whole is checked here.
                if sum(len(k) + len(v) + 4 for k, v in event.headers) > settings.max_head_bytes:
                    raise Refusal(431, "request headers too large")
                lengths = [v for k, v in event.headers if k == b"content-length"]
                if lengths and any(k == b"transfer-encoding" for k, _ in event.headers):
                    raise Refusal(400, "Content-Length with Transfer-Encoding")
                length = int(lengths[0]) if lengths else None  # h11 checked the digits
                if length is not None and length > settings.max_body_bytes:
                    raise Refusal(413, "request body too large")
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > settings.max_body_bytes:
                    raise Refusal(413, "request body too large")
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                # PAUSED: a request asking to switch protocols; h11 holds the rest, we decide.
                return self._complete()
            # ConnectionClosed cannot come: the server never feeds the end of the stream.

    def _check_raw_head(self) -> None:
        """Refuse what h11 would accept but llhttp refuses, once the head is all buffered."""
        end = _HEAD_END.search(self._raw, max(0, self._scanned - 2))
        if end is None:
            self._scanned = len(self._raw)
            self._unchecked = False
            return
        head = bytes(self._raw[: end.end()])
        self._raw = bytearray()
        self._scanned = 0
        self._unchecked = False
        # Plain substring counts first: this runs on every request of the h11 path.
        if b"\n " in head or b"\n\t" in head:
            raise Refusal(400, "obsolete line folding in the head")
        if head.count(b"\n") != head.count(b"\r\n"):
            raise Refusal(400, "bare LF in the head")
        if len(_CONTENT_LENGTH_LINE.findall(head)) > 1:
            raise Refusal(400, "repeated Content-Length")

    def _complete(self) -> ParsedRequest:
        head = self._head
        assert head is not None
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers)
        request = Request(
            method=head.method.decode("ascii", "replace"),
            target=head.target.decode("latin-1"),
            headers=headers,
            body=bytes(self._body),
            client=self._client,
        )
        version = head.http_version.decode("ascii", "replace")
        connection = request.header("connection")
        return ParsedRequest(
            request=request,
            http_version=version,
            keep_alive=keep_alive_requested(version, connection),
            upgrade=self._conn.their_state not in (h11.DONE, h11.MUST_CLOSE),
        )

    def trailing_data(self) -> bytes:
        data, _closed = self._conn.trailing_data
        return bytes(data)

    def continue_response(self) -> bytes | None:
        conn = self._conn
        if not conn.they_are_waiting_for_100_continue:
            return None
        return conn.send(h11.InformationalResponse(status_code=100, headers=[]))

    def response(self, method: str, response: Response, *, keep_alive: bool, date: str) -> bytes:
        conn = self._conn
        headers, body = frame_response(method, response, keep_alive=keep_alive, date=date)
        status = response.status
        data = (
            conn.send(
                h11.Response(
                    status_code=status, headers=headers, reason=reason_phrase(status).encode()
                )
            )
            or b""
        )
        if body:
            data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        if keep_alive:
            conn.start_next_cycle()
            self._head = None
            self._body = bytearray()
            self._first_line_seen = False
            self._line_bytes = 0
            self._raw = bytearray(self._conn.trailing_data[0])
            self._scanned = 0
            self._started = self._unchecked = bool(self._raw)
        return data

    def refusal(self, status: int, date: str) -> bytes | None:
        if self._conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return None
        try:
            return self.response("GET", refusal_response(status), keep_alive=False, date=date)
        except h11.LocalProtocolError:
            return None
