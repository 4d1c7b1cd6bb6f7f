"""The h11 `RequestParser`: pure Python, always available.

h11 reads requests only: responses are framed by `madbase.protocol.http` for both parsers, and
each keep-alive cycle starts a fresh `h11.Connection` over the bytes already received. h11
bounds a head that arrives in pieces (`max_incomplete_event_size`); a head arriving whole, a long
request line and the body are held to `HttpLimits` by the protocol's checks. h11 accepts some
shapes llhttp refuses and that a proxy in front of us could read differently (request
smuggling); `check_head_bytes` refuses them before h11 parses the head, so both parsers answer
them alike, as it does Content-Length together with Transfer-Encoding.
"""

from __future__ import annotations

import re
from typing import Final, final

import h11

from madbase.protocol.http import (
    HttpLimits,
    Refusal,
    Request,
    Response,
    check_body_length,
    check_head_bytes,
    check_head_size,
    check_request_line,
    frame_response,
    keep_alive_requested,
    refusal_response,
    serialize_response,
)
from madbase.runtime.http.parser import ParsedRequest

__all__ = ["H11Parser"]

# Where h11 ends a head: an empty line, CRLF or bare LF.
_HEAD_END: Final = re.compile(rb"\n\r?\n")


@final
class H11Parser:
    """One connection's h11 state, fed by the server."""

    def __init__(self, limits: HttpLimits, client: str | None) -> None:
        self._limits = limits
        self._client = client
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_bytes)
        # A response was sent for the current request (no refusal can follow it).
        self._answered = False
        self._deferred: Refusal | None = None
        self._head: h11.Request | None = None
        # Body bytes received and not yet handed over; all of them counted; the end seen.
        self._body = bytearray()
        self._body_bytes = 0
        self._body_done = False
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
            if not self._first_line_seen:
                check_request_line(self._line_bytes, self._limits)
        try:
            self._conn.receive_data(data)
        except h11.RemoteProtocolError as err:
            raise Refusal(err.error_status_hint, str(err)) from None

    def next_request(self) -> ParsedRequest | None:
        limits = self._limits
        if self._deferred is not None:
            refusal, self._deferred = self._deferred, None
            raise refusal
        while True:
            if self._head is None and self._unchecked:
                self._check_raw_head()
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as err:
                if not self._first_line_seen:
                    check_request_line(self._line_bytes, limits)
                raise Refusal(err.error_status_hint, str(err)) from None
            if event is h11.NEED_DATA:
                if self._head is not None:
                    # The head is complete, the body still arriving: the server reads it on
                    # (`next_body`), whole or as the application pulls it.
                    return self._parsed(complete=False)
                return None
            if isinstance(event, h11.Request):
                self._head = event
                check_request_line(len(event.target), limits)
                # h11 bounds only a head that arrives in pieces; one arriving whole is checked here.
                check_head_size(sum(len(k) + len(v) + 4 for k, v in event.headers), limits)
                lengths = [v for k, v in event.headers if k == b"content-length"]
                if lengths and any(k == b"transfer-encoding" for k, _ in event.headers):
                    raise Refusal(400, "Content-Length with Transfer-Encoding")
                length = int(lengths[0]) if lengths else None  # h11 checked the digits
                if length is not None:
                    check_body_length(length, limits)
            elif isinstance(event, h11.Data):
                self._body_bytes += len(event.data)
                check_body_length(self._body_bytes, limits)
                self._body += event.data
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                # PAUSED: a request asking to switch protocols; h11 holds the rest, we decide.
                self._body_done = True
                return self._parsed(complete=True)
            # ConnectionClosed cannot come: the server never feeds the end of the stream.

    def next_body(self) -> bytes | None:
        if self._body:
            data = bytes(self._body)
            self._body = bytearray()
            return data
        if self._body_done:
            return b""
        try:
            event = self._conn.next_event()
        except h11.RemoteProtocolError as err:
            raise Refusal(err.error_status_hint, str(err)) from None
        if isinstance(event, h11.Data):
            self._body_bytes += len(event.data)
            check_body_length(self._body_bytes, self._limits)
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
            self._body_done = True
            return b""
        return None  # NEED_DATA

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
        check_head_bytes(head)

    def _parsed(self, *, complete: bool) -> ParsedRequest:
        head = self._head
        assert head is not None
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers)
        request = Request(
            method=head.method.decode("ascii", "replace"),
            target=head.target.decode("latin-1"),
            headers=headers,
            body=bytes(self._body) if complete else b"",
            client=self._client,
        )
        if complete:
            self._body = bytearray()
            upgrade = self._conn.their_state not in (h11.DONE, h11.MUST_CLOSE)
        else:
            # h11's own rule, read before it has seen the end of the body.
            upgrade = head.method == b"CONNECT" or any(k == b"upgrade" for k, _ in head.headers)
        version = head.http_version.decode("ascii", "replace")
        connection = request.header("connection")
        return ParsedRequest(
            request=request,
            http_version=version,
            keep_alive=keep_alive_requested(version, connection),
            upgrade=upgrade,
            complete=complete,
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
        headers, body = frame_response(method, response, keep_alive=keep_alive, date=date)
        data = serialize_response(response.status, headers, body)
        self.answered(keep_alive=keep_alive)
        return data

    def answered(self, *, keep_alive: bool) -> None:
        self._answered = True
        if keep_alive:
            self._next_cycle()

    def _next_cycle(self) -> None:
        """Read the next request from the bytes already received, on a fresh h11 state."""
        trailing = self._conn.trailing_data[0]
        self._conn = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self._limits.max_head_bytes
        )
        self._answered = False
        self._head = None
        self._body = bytearray()
        self._body_bytes = 0
        self._body_done = False
        self._first_line_seen = False
        self._line_bytes = 0
        self._raw = bytearray()
        self._scanned = 0
        self._started = self._unchecked = False
        if trailing:
            try:
                self.receive_data(bytes(trailing))
            except Refusal as refusal:
                self._deferred = refusal  # raised by the next `next_request`

    def refusal(self, status: int, date: str) -> bytes | None:
        if self._answered:
            return None
        return self.response("GET", refusal_response(status), keep_alive=False, date=date)
