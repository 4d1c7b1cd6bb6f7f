"""Our HTTP/1.1 server: trio sockets driving h11, one task per connection.

Per connection: read bytes, feed h11, and once a request is complete turn it into a
`protocol.http.Request`, await the application's `Response`, write it with one `send_all`, start
the next cycle. Pipelined requests wait in h11's buffer and are answered in order. A request the
peer got wrong (malformed, too large, too slow) gets 400/413/414/431/408 and the connection is
closed; nothing the peer sends reaches the application as an exception.

A websocket upgrade (GET with `Upgrade: websocket`) is offered to the application's
`websocket_check`; accepted, the connection is handed to trio-websocket with the bytes h11 already
read replayed in front, and to the application's `websocket` coroutine.

Shutdown (`begin_shutdown`): listeners close, idle keep-alive connections close, requests in
flight finish and their responses carry `Connection: close`; whatever is still running after the
shutdown timeout is cancelled by the caller's nursery.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from http import HTTPStatus
from typing import Final, Protocol, final

import h11
import trio
import trio_websocket

from madbase.config import HttpSettings
from madbase.protocol.http import Request, Response

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


class _Refuse(Exception):
    """The request is refused at the HTTP level with `status`; the connection then closes."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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
        self._shutting_down = False
        self._idle_scopes: set[trio.CancelScope] = set()
        self._listener_scope: trio.CancelScope | None = None
        self._connections = 0
        self._slots = trio.Semaphore(settings.max_connections)
        self._date_second = -1
        self._date_value = ""

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
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._settings.max_head_bytes)
        while True:
            try:
                request = await self._read_request(conn, stream, client)
            except _Refuse as refusal:
                await self._send_refusal(conn, stream, refusal)
                return
            if request is None:
                return
            if _is_websocket_upgrade(request):
                await self._upgrade(conn, stream, request)
                return
            response = await self._app.handle(request)
            keep_alive = not self._shutting_down and conn.their_state is h11.DONE
            await self._send_response(conn, stream, request, response, keep_alive=keep_alive)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _read_request(
        self, conn: h11.Connection, stream: trio.abc.Stream, client: str | None
    ) -> Request | None:
        """Read one whole request; None when the peer closed (or we are idle at shutdown)."""
        settings = self._settings
        head: h11.Request | None = None
        body = bytearray()
        first_line_seen = False
        line_bytes = 0
        received_any = False
        deadline = trio.current_time() + settings.keepalive_timeout
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as err:
                if not first_line_seen and line_bytes > settings.max_request_line_bytes:
                    raise _Refuse(414, "request line too long") from None
                raise _Refuse(err.error_status_hint, str(err)) from None
            if event is h11.NEED_DATA:
                if self._shutting_down and not received_any and head is None:
                    return None
                idle = not received_any and head is None
                data = await self._receive(stream, deadline, idle=idle)
                if data is None:  # idle connection closed by shutdown or keep-alive timeout
                    return None
                if not data:
                    if received_any or head is not None:
                        raise _Refuse(400, "connection closed mid-request")
                    return None
                if not received_any:
                    received_any = True
                    deadline = trio.current_time() + settings.read_timeout
                if not first_line_seen:
                    line_bytes += len(data)
                    first_line_seen = b"\n" in data
                    if not first_line_seen and line_bytes > settings.max_request_line_bytes:
                        raise _Refuse(414, "request line too long")
                try:
                    conn.receive_data(data)
                except h11.RemoteProtocolError as err:
                    raise _Refuse(err.error_status_hint, str(err)) from None
                continue
            if isinstance(event, h11.Request):
                head = event
                received_any = True
                if len(event.target) > settings.max_request_line_bytes:
                    raise _Refuse(414, "request line too long")
                # h11 bounds only a head that arrives in pieces; one arriving whole is checked here.
                if sum(len(k) + len(v) + 4 for k, v in event.headers) > settings.max_head_bytes:
                    raise _Refuse(431, "request headers too large")
                length = _content_length(event)
                if length is not None and length > settings.max_body_bytes:
                    raise _Refuse(413, "request body too large")
                deadline = max(deadline, trio.current_time() + settings.read_timeout)
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > settings.max_body_bytes:
                    raise _Refuse(413, "request body too large")
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return _to_request(head, bytes(body), client)
            elif isinstance(event, h11.ConnectionClosed):
                if head is not None:
                    raise _Refuse(400, "connection closed mid-request")
                return None
            elif event is h11.PAUSED:
                # A request asking to switch protocols: h11 holds the rest; we decide on upgrade.
                assert head is not None
                return _to_request(head, bytes(body), client)

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
        raise _Refuse(408, "request timed out")

    async def _send_refusal(
        self, conn: h11.Connection, stream: trio.abc.Stream, refusal: _Refuse
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = b'{"message":"%s"}' % _status_text(refusal.status).encode()
        status = refusal.status if 400 <= refusal.status < 600 else 400
        headers = [
            ("content-type", "application/json; charset=utf-8"),
            ("content-length", str(len(body))),
            ("connection", "close"),
            ("date", self._date()),
        ]
        try:
            data = conn.send(
                h11.Response(status_code=status, headers=headers, reason=_reason(status))
            )
            data = (data or b"") + (conn.send(h11.Data(data=body)) or b"")
            data += conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            return
        with trio.move_on_after(5):
            await stream.send_all(data)

    async def _send_response(
        self,
        conn: h11.Connection,
        stream: trio.abc.Stream,
        request: Request,
        response: Response,
        *,
        keep_alive: bool,
    ) -> None:
        headers: list[tuple[str, str]] = [
            (k, v) for k, v in response.headers if k not in ("content-length", "connection")
        ]
        status = response.status
        body = response.body
        if status >= 200 and status not in (204, 304):
            headers.append(("content-length", str(len(body))))
        headers.append(("date", self._date()))
        if not keep_alive:
            headers.append(("connection", "close"))
        if request.method == "HEAD" or status in (204, 304) or status < 200:
            body = b""
        data = (
            conn.send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
            or b""
        )
        if body:
            data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        with trio.move_on_after(self._settings.read_timeout) as scope:
            await stream.send_all(data)
        if scope.cancelled_caught:
            raise trio.BrokenResourceError("client too slow to read the response")

    async def _upgrade(
        self, conn: h11.Connection, stream: trio.abc.Stream, request: Request
    ) -> None:
        refusal = await self._app.websocket_check(request)
        if refusal is not None:
            await self._send_response(conn, stream, request, refusal, keep_alive=False)
            return
        trailing, _closed = conn.trailing_data
        raw = _serialize_head(request) + bytes(trailing)
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


def _content_length(event: h11.Request) -> int | None:
    for name, value in event.headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _to_request(head: h11.Request, body: bytes, client: str | None) -> Request:
    return Request(
        method=head.method.decode("ascii", "replace"),
        target=head.target.decode("latin-1"),
        headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers),
        body=body,
        client=client,
    )


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


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _status_text(status: int) -> str:
    return {
        400: "Bad Request",
        408: "Request Timeout",
        413: "Payload Too Large",
        414: "URI Too Long",
        431: "Request Header Fields Too Large",
    }.get(status, "Bad Request")
