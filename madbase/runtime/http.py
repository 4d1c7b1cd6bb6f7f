"""Our HTTP/1.1 server: trio sockets driving a parser (httptools or h11), one task per connection.

Per connection: read bytes, feed the parser (runtime/http_parse.py: `MADBASE_HTTP_PARSER`), and
once it has a complete `protocol.http.Request`, await the application's `Response`, write it with
one `send_all`, go on with the next request. Pipelined requests wait in the parser and are
answered in order. A request the peer got wrong (malformed, too large, too slow) gets
400/413/414/431/408 (501 for a transfer coding we cannot read) and the connection is closed;
nothing the peer sends reaches the application as an exception.

A websocket upgrade (GET with `Upgrade: websocket`) is offered to the application's
`websocket_check`; accepted, the connection is handed to trio-websocket with the bytes the parser
already read replayed in front, and to the application's `websocket` coroutine.

A client that goes away while its request is handled (the socket reads end of stream, or is
reset) has the request cancelled, database statement included (runtime/db.py): a watcher looks at
the connections whose request is being handled every `_DISCONNECT_CHECK` seconds, without reading
(a peek; nothing on the hot path). Bytes waiting there (a pipelined request) are no disconnect,
nor is end of stream behind requests still to answer; like Go's server and nginx, a client that
half-closes its side right after one request is taken for gone.

Shutdown (`begin_shutdown`): listeners close; connections with no request being handled (idle
keep-alive ones, and those still sending a request's head) close at once; requests being handled
(their head complete) finish and their responses carry `Connection: close`; whatever is still
running after the shutdown timeout is cancelled by the caller's nursery.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from typing import Final, Protocol, final

import attrs
import trio
import trio_websocket

from madbase.config import HttpSettings
from madbase.protocol.http import Request, Response
from madbase.runtime.http_h11 import H11Parser
from madbase.runtime.http_io import ConnectionIo, SocketIo, StreamIo, accept_socket
from madbase.runtime.http_parse import (
    ParsedRequest,
    Refusal,
    RequestParser,
    parser_name,
)

__all__ = ["Application", "HttpServer", "HttpStatistics", "WebSocket"]

log = logging.getLogger(__name__)

WebSocket = trio_websocket.WebSocketConnection
# A connection answering requests without ever waiting checkpoints after this many.
_CHECKPOINT_EVERY: Final = 16
# Seconds between two looks for clients gone while their request is handled: a statement of
# theirs runs on in Postgres at most about this long.
_DISCONNECT_CHECK: Final = 0.5

# What a connection is doing (for its deadline, for shutdown, for the 408 and the disconnect
# watcher).
_IDLE: Final = 0
_READING: Final = 1
_ANSWERING: Final = 2
_SENDING: Final = 3
_UPGRADED: Final = 4
_NEW: Final = 5  # accepted, nothing read yet
_GONE: Final = 6  # its client went away: cancelled, closing


@final
class _Connection:
    __slots__ = ("io", "parser", "phase", "scope")

    def __init__(self, io: ConnectionIo, parser: RequestParser) -> None:
        self.io = io
        self.parser = parser
        self.phase = _NEW  # not yet idle: the first wait sets its deadline
        self.scope = trio.CancelScope()

    def owes_nothing(self) -> bool:
        """No request is being handled: idle, or its head is still arriving (shutdown closes
        such a connection at once)."""
        return self.phase == _IDLE or (self.phase == _READING and not self.parser.in_body)

    def client_gone(self) -> bool:
        """The request being handled has no one left to answer: the peer closed (or reset) the
        connection, and sent no pipelined request before that."""
        return self.phase == _ANSWERING and not self.parser.buffered and self.io.peer_closed()


@final
@attrs.frozen(kw_only=True)
class HttpStatistics:
    """A snapshot of the server's connections by what they are doing."""

    connections: int
    # Waiting for a request.
    idle: int
    # Receiving a request (its head or its body).
    reading: int
    # A request handled, or its response being sent.
    answering: int
    # Handed over to a websocket.
    upgraded: int
    # Requests cancelled because their client went away.
    abandoned: int


class Application(Protocol):
    """What the server serves."""

    async def handle(self, request: Request) -> Response:
        """Answer one request; must not raise for anything the client did."""
        ...

    async def websocket_check(self, request: Request) -> Response | None:
        """None to accept a websocket upgrade, else the response that refuses it."""
        ...

    async def websocket(self, request: Request, ws: WebSocket) -> None:
        """Serve an accepted websocket until it closes."""
        ...


class _ReplayStream(trio.abc.Stream):
    """A stream that first returns bytes already read from the wrapped one."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            await trio.lowlevel.checkpoint()
            return data
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        if isinstance(self._stream, trio.abc.HalfCloseableStream):
            await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


@final
class HttpServer:
    """Serves an `Application` on trio listeners."""

    def __init__(self, app: Application, settings: HttpSettings) -> None:
        self._app = app
        self._settings = settings
        self._parser_name = parser_name(settings.parser)
        self._shutting_down = False
        # Every open connection's phase and cancel scope.
        self._live: set[_Connection] = set()
        self._listener_scope: trio.CancelScope | None = None
        self._connections = 0
        self._slots = trio.Semaphore(settings.max_connections)
        self._abandoned = 0
        self._date_second = -1
        self._date_value = ""

    @property
    def parser(self) -> str:
        """The HTTP parser serving connections: `httptools` or `h11`."""
        return self._parser_name

    @property
    def connections(self) -> int:
        """Open connections now."""
        return self._connections

    def statistics(self) -> HttpStatistics:
        """Counts for metrics and tests."""
        phases = [state.phase for state in self._live]
        return HttpStatistics(
            connections=self._connections,
            idle=phases.count(_IDLE) + phases.count(_NEW),
            reading=phases.count(_READING),
            answering=phases.count(_ANSWERING) + phases.count(_SENDING),
            upgraded=phases.count(_UPGRADED),
            abandoned=self._abandoned,
        )

    async def serve(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections until `begin_shutdown`, then wait for open connections to finish."""
        async with trio.open_nursery() as watching:
            watching.start_soon(self._watch_disconnects)
            async with trio.open_nursery() as connections:
                async with trio.open_nursery() as accepting:
                    self._listener_scope = accepting.cancel_scope
                    if self._shutting_down:
                        accepting.cancel_scope.cancel()
                    for listener in listeners:
                        accepting.start_soon(self._accept_loop, listener, connections)
                    task_status.started()
                with trio.CancelScope(shield=True):
                    for listener in listeners:
                        await listener.aclose()
            watching.cancel_scope.cancel()

    def begin_shutdown(self) -> None:
        """Stop accepting, close connections owing no answer, let requests being handled finish."""
        self._shutting_down = True
        if self._listener_scope is not None:
            self._listener_scope.cancel()
        for state in list(self._live):
            if state.owes_nothing():
                state.phase = _IDLE  # closed as an idle one is: no 408 for a head cut short
                state.scope.cancel()

    async def _watch_disconnects(self) -> None:
        """Cancel the requests whose client went away, every `_DISCONNECT_CHECK` seconds.

        A peek per connection handling a request, and only then: nothing is added to the
        request's own path (a cancel scope or a task per request would be).
        """
        while True:
            await trio.sleep(_DISCONNECT_CHECK)
            for state in list(self._live):
                if state.client_gone():
                    self._abandoned += 1
                    state.phase = _GONE
                    state.scope.cancel()

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            await self._slots.acquire()
            try:
                sock, client = await accept_socket(listener)
            except OSError as err:
                self._slots.release()
                log.warning("accept failed: %s", err)
                await trio.sleep(0.01)
                continue
            except BaseException:
                self._slots.release()
                raise
            nursery.start_soon(self._serve_connection, SocketIo(sock), client)

    async def serve_stream(self, stream: trio.abc.Stream, client: str | None = None) -> None:
        """Serve one connection (public for tests over in-memory streams)."""
        await self._serve(StreamIo(stream), client)

    async def _serve_connection(self, io: ConnectionIo, client: str | None) -> None:
        try:
            await self._serve(io, client)
        finally:
            self._slots.release()

    async def _serve(self, io: ConnectionIo, client: str | None) -> None:
        self._connections += 1
        try:
            await self._connection_loop(io, client)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("connection handler failed")
        finally:
            self._connections -= 1
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await io.aclose()

    async def _connection_loop(self, io: ConnectionIo, client: str | None) -> None:
        """Requests and responses until either side ends the connection.

        One cancel scope serves the whole connection: its deadline is the keep-alive timeout while
        idle, the read timeout while a request or a blocked response is under way, and none while
        the application answers. Expiring (or shutdown cancelling an idle connection) ends the
        connection; a request cut short by its deadline gets 408 first.
        """
        parser = _make_parser(self._parser_name, self._settings, client)
        state = _Connection(io, parser)
        self._live.add(state)
        try:
            with trio.CancelScope() as state.scope:
                await self._exchange(io, parser, state)
                return
            # The deadline passed, or shutdown closed the connection while it was idle.
            if state.phase == _READING:
                data = parser.refusal(408, self._date())
                if data is not None:
                    with trio.move_on_after(5):
                        await io.send_rest(io.send_now(data))
        finally:
            self._live.discard(state)

    async def _exchange(self, io: ConnectionIo, parser: RequestParser, state: _Connection) -> None:
        scope = state.scope
        served = 0
        while True:
            try:
                parsed = await self._read_request(io, parser, state)
            except Refusal as refusal:
                data = parser.refusal(refusal.status, self._date())
                if data is not None:
                    scope.deadline = math.inf
                    with trio.move_on_after(5):
                        await io.send_rest(io.send_now(data))
                return
            if parsed is None:
                return
            request = parsed.request
            state.phase = _ANSWERING
            scope.deadline = math.inf
            if parsed.upgrade and _is_websocket_upgrade(request):
                state.phase = _UPGRADED
                await self._upgrade(parser, io, request)
                return
            response = await self._app.handle(request)
            keep_alive = not self._shutting_down and parsed.keep_alive and not parsed.upgrade
            data = parser.response(
                request.method, response, keep_alive=keep_alive, date=self._date()
            )
            rest = io.send_now(data)
            if rest:
                state.phase = _SENDING
                scope.deadline = trio.current_time() + self._settings.read_timeout
                await io.send_rest(rest)
            if not keep_alive:
                return
            served += 1
            if served % _CHECKPOINT_EVERY == 0:
                # Requests answered without waiting (pipelined, no database) let others run too.
                await trio.lowlevel.checkpoint()

    async def _read_request(
        self, io: ConnectionIo, parser: RequestParser, state: _Connection
    ) -> ParsedRequest | None:
        """Read one whole request; None when the peer closed (or we are idle at shutdown)."""
        settings = self._settings
        scope = state.scope
        extended = False
        while True:
            parsed = parser.next_request()
            if parsed is not None:
                return parsed
            if self._shutting_down and not parser.in_body:
                return None  # shutdown waits only for requests whose head is complete
            # Deadlines are set before waiting, not per read: a request that arrives whole in
            # one read sets none of its own.
            started = parser.started
            if not started:
                if state.phase != _IDLE:
                    state.phase = _IDLE
                    scope.deadline = trio.current_time() + settings.keepalive_timeout
            else:
                if state.phase != _READING:
                    state.phase = _READING
                    scope.deadline = trio.current_time() + settings.read_timeout
                if parser.in_body and not extended:
                    extended = True
                    scope.deadline = max(
                        scope.deadline, trio.current_time() + settings.read_timeout
                    )
            data = io.receive_now()
            if data is None:
                if started and parser.in_body:
                    # The client may hold the body back until we say so (curl does for large
                    # bodies, for a second).
                    go_on = parser.continue_response()
                    if go_on is not None:
                        await io.send_rest(io.send_now(go_on))
                data = await io.receive()
            if not data:
                if started:
                    raise Refusal(400, "connection closed mid-request")
                return None
            parser.receive_data(data)

    async def _upgrade(self, parser: RequestParser, io: ConnectionIo, request: Request) -> None:
        refusal = await self._app.websocket_check(request)
        if refusal is not None:
            data = parser.response(request.method, refusal, keep_alive=False, date=self._date())
            with trio.move_on_after(self._settings.read_timeout):
                await io.send_rest(io.send_now(data))
            return
        stream = io.stream()
        raw = _serialize_head(request) + parser.trailing_data()
        async with trio.open_nursery() as nursery:
            ws_request = await trio_websocket.wrap_server_stream(
                nursery, _ReplayStream(stream, raw)
            )
            ws = await ws_request.accept()
            try:
                await self._app.websocket(request, ws)
            finally:
                await ws.aclose()
            nursery.cancel_scope.cancel()

    def _date(self) -> str:
        now = time.time()
        second = math.floor(now)
        if second != self._date_second:
            self._date_second = second
            self._date_value = email.utils.formatdate(now, usegmt=True)
        return self._date_value


def _make_parser(name: str, settings: HttpSettings, client: str | None) -> RequestParser:
    if name == "httptools":
        # Imported only when chosen: httptools is optional where h11 is asked for.
        from madbase.runtime.http_httptools import HttptoolsParser

        return HttptoolsParser(settings, client)
    return H11Parser(settings, client)


def _is_websocket_upgrade(request: Request) -> bool:
    upgrade = request.header("upgrade")
    connection = request.header("connection") or ""
    return (
        request.method == "GET"
        and upgrade is not None
        and upgrade.lower() == "websocket"
        and "upgrade" in connection.lower()
    )


def _serialize_head(request: Request) -> bytes:
    lines = [f"{request.method} {request.target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in request.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
