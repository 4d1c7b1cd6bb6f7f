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

Shutdown (`begin_shutdown`): listeners close, idle keep-alive connections close, requests in
flight finish and their responses carry `Connection: close`; whatever is still running after the
shutdown timeout is cancelled by the caller's nursery.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from typing import Final, Protocol, final

import trio
import trio_websocket

from madbase.config import HttpSettings
from madbase.protocol.http import Request, Response
from madbase.runtime.http_h11 import H11Parser
from madbase.runtime.http_parse import (
    ParsedRequest,
    Refusal,
    RequestParser,
    parser_name,
)

__all__ = ["Application", "HttpServer", "WebSocket"]

log = logging.getLogger(__name__)

WebSocket = trio_websocket.WebSocketConnection
_READ_SIZE: Final = 64 * 1024


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
        self._idle_scopes: set[trio.CancelScope] = set()
        self._listener_scope: trio.CancelScope | None = None
        self._connections = 0
        self._slots = trio.Semaphore(settings.max_connections)
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

    async def serve(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections until `begin_shutdown`, then wait for open connections to finish."""
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

    def begin_shutdown(self) -> None:
        """Stop accepting, close idle connections, let requests in flight finish."""
        self._shutting_down = True
        if self._listener_scope is not None:
            self._listener_scope.cancel()
        for scope in list(self._idle_scopes):
            scope.cancel()

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            await self._slots.acquire()
            try:
                stream = await listener.accept()
            except OSError as err:
                self._slots.release()
                log.warning("accept failed: %s", err)
                await trio.sleep(0.01)
                continue
            except BaseException:
                self._slots.release()
                raise
            nursery.start_soon(self._serve_connection, stream)

    async def serve_stream(self, stream: trio.abc.Stream, client: str | None = None) -> None:
        """Serve one connection (public for tests over in-memory streams)."""
        self._connections += 1
        try:
            await self._connection_loop(stream, client)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("connection handler failed")
        finally:
            self._connections -= 1
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.aclose()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        try:
            try:
                peer = stream.socket.getpeername()
                client = str(peer[0]) if isinstance(peer, tuple) else None
            except OSError:
                client = None
            await self.serve_stream(stream, client)
        finally:
            self._slots.release()

    async def _connection_loop(self, stream: trio.abc.Stream, client: str | None) -> None:
        parser = _make_parser(self._parser_name, self._settings, client)
        while True:
            try:
                parsed = await self._read_request(parser, stream)
            except Refusal as refusal:
                data = parser.refusal(refusal.status, self._date())
                if data is not None:
                    with trio.move_on_after(5):
                        await stream.send_all(data)
                return
            if parsed is None:
                return
            request = parsed.request
            if parsed.upgrade and _is_websocket_upgrade(request):
                await self._upgrade(parser, stream, request)
                return
            response = await self._app.handle(request)
            keep_alive = not self._shutting_down and parsed.keep_alive and not parsed.upgrade
            data = parser.response(
                request.method, response, keep_alive=keep_alive, date=self._date()
            )
            with trio.move_on_after(self._settings.read_timeout) as scope:
                await stream.send_all(data)
            if scope.cancelled_caught:
                raise trio.BrokenResourceError("client too slow to read the response")
            if not keep_alive:
                return

    async def _read_request(
        self, parser: RequestParser, stream: trio.abc.Stream
    ) -> ParsedRequest | None:
        """Read one whole request; None when the peer closed (or we are idle at shutdown)."""
        settings = self._settings
        deadline = trio.current_time() + (
            settings.read_timeout if parser.started else settings.keepalive_timeout
        )
        extended = False
        while True:
            parsed = parser.next_request()
            if parsed is not None:
                return parsed
            started = parser.started
            if self._shutting_down and not started:
                return None
            if parser.in_body and not extended:
                extended = True
                deadline = max(deadline, trio.current_time() + settings.read_timeout)
            data = await self._receive(stream, deadline, idle=not started)
            if data is None:  # idle connection closed by shutdown or keep-alive timeout
                return None
            if not data:
                if started:
                    raise Refusal(400, "connection closed mid-request")
                return None
            if not started:
                deadline = trio.current_time() + settings.read_timeout
            parser.receive_data(data)

    async def _receive(
        self, stream: trio.abc.Stream, deadline: float, *, idle: bool
    ) -> bytes | None:
        with trio.CancelScope(deadline=deadline) as scope:
            if idle:
                self._idle_scopes.add(scope)
            try:
                return bytes(await stream.receive_some(_READ_SIZE))
            finally:
                self._idle_scopes.discard(scope)
        if idle:
            return None
        raise Refusal(408, "request timed out")

    async def _upgrade(
        self, parser: RequestParser, stream: trio.abc.Stream, request: Request
    ) -> None:
        refusal = await self._app.websocket_check(request)
        if refusal is not None:
            data = parser.response(request.method, refusal, keep_alive=False, date=self._date())
            with trio.move_on_after(self._settings.read_timeout):
                await stream.send_all(data)
            return
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
