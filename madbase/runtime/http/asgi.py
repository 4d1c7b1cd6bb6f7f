"""The ASGI front: an `Application` served as an ASGI 3 callable (under hypercorn).

Only steps 1 and 9 of a request differ from our own server: the ASGI messages become a
`protocol.http.Request` (the body read within the same limit, enforced while it arrives), and the
`Response` becomes one `http.response.start` and its `http.response.body` messages: one for a
bytes body, one per piece for a streamed body (each sent once the ASGI server took the previous
one: hypercorn awaits the socket, so a slow reader holds the stream, not our memory). Framing
headers are `madbase.protocol.http`'s, as for the native server; the ASGI server chunks a body
of unknown length itself. As with our own server, a client that goes away before its answer (the
ASGI server sends `http.disconnect`) has its request cancelled, database statement included.

Websocket under ASGI arrives with the realtime issue: for now a websocket scope is closed with
code 1000 as soon as it connects.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias, final
from urllib.parse import quote

import trio

from madbase.protocol.http import (
    HttpLimits,
    Refusal,
    Request,
    Response,
    frame_headers,
    refusal_response,
)
from madbase.runtime.http.server import Application, StreamingApplication

__all__ = ["AsgiFront", "Receive", "Scope", "Send", "send_response"]

# ASGI messages are plain dicts (asgiref's typing uses the same shapes); they are turned into our
# typed values at once and never leave this module.
Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]


@final
class AsgiFront:
    """Serves `http` and `websocket` scopes with an `Application`."""

    def __init__(self, app: Application, limits: HttpLimits) -> None:
        self._app = app
        self._limits = limits
        self._streams_body = app.streams_body if isinstance(app, StreamingApplication) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An ASGI 3 callable of its own (the lifespan answered at once): for an application
        that needs no start-up, e.g. in tests and bench; `madbase.asgi` opens a project first."""
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            await self.websocket(scope, receive, send)
        elif kind == "lifespan":
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await send({"type": "lifespan.shutdown.complete"})
        else:
            raise ValueError(f"unsupported ASGI scope type {kind!r}")

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one `http` scope."""
        method = str(scope["method"])
        if self._streams_body is not None:
            head = _to_request(scope, method, b"")
            if self._streams_body(head):
                await self._http_streamed(head, receive, send)
                return
        try:
            body = await _read_body(receive, self._limits)
        except _DisconnectedError:
            return
        except Refusal as refusal:
            await send_response(send, method, refusal_response(refusal.status))
            return
        request = _to_request(scope, method, body)
        response: Response | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
            response = await self._app.handle(request)
            if response.stream is not None:
                await send_response(send, method, response)
                response = None
            nursery.cancel_scope.cancel()
        if response is not None:  # else the client went away: no one to answer
            await send_response(send, method, response)

    async def _http_streamed(self, head: Request, receive: Receive, send: Send) -> None:
        """Serve a request whose body the application pulls as it arrives."""
        sender, receiver = trio.open_memory_channel[bytes](0)
        body = _AsgiBody(receiver, self._limits)
        request = head.with_body(b"", body)
        response: Response | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump_body, receive, sender, nursery.cancel_scope)
            try:
                response = await self._app.handle(request)
            except Refusal as refusal:  # the body the handler read was refused
                response = refusal_response(refusal.status)
            finally:
                receiver.close()  # a body left unread is not read on
            if response.stream is not None:
                await send_response(send, head.method, response)
                response = None
            nursery.cancel_scope.cancel()
        if response is not None:  # else the client went away: no one to answer
            await send_response(send, head.method, response)

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one `websocket` scope (closed at once for now)."""
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 1000})


class _DisconnectedError(Exception):
    """The client went away before its request was complete."""


async def _read_body(receive: Receive, limits: HttpLimits) -> bytes:
    """The whole request body; raises `Refusal` (413) once it passes the limit."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _DisconnectedError
        body += message.get("body", b"")
        if len(body) > limits.max_body_bytes:
            raise Refusal(413, "request body too large")
        if not message.get("more_body", False):
            return bytes(body)


@final
class _AsgiBody:
    """A request body as the ASGI server hands it over, pulled by the handler (`BodyStream`)."""

    def __init__(self, pieces: trio.MemoryReceiveChannel[bytes], limits: HttpLimits) -> None:
        self._pieces = pieces
        self._limits = limits
        self._received = 0

    async def receive(self) -> bytes:
        try:
            piece = await self._pieces.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return b""
        self._received += len(piece)
        if self._received > self._limits.max_body_bytes:
            self._pieces.close()  # nothing more is taken from the ASGI server
            raise Refusal(413, "request body too large")
        return piece

    async def read(self) -> bytes:
        pieces = []
        while piece := await self.receive():
            pieces.append(piece)
        return b"".join(pieces)


async def _pump_body(
    receive: Receive, pieces: trio.MemorySendChannel[bytes], scope: trio.CancelScope
) -> None:
    """Hand the body's pieces over one at a time (each once the handler took the previous one),
    then wait for the client to go away; cancel `scope` when it does."""
    with pieces:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return
            data = message.get("body", b"")
            if data:
                try:
                    await pieces.send(bytes(data))
                except trio.BrokenResourceError:
                    # The handler stopped reading (413, or it answered without the rest): take
                    # nothing more from the ASGI server; the response ends the scope.
                    await trio.sleep_forever()
            if not message.get("more_body", False):
                break
    await _cancel_on_disconnect(receive, scope)


async def _cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    """Cancel `scope` when the ASGI server reports the client gone (`http.disconnect`)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _to_request(scope: Scope, method: str, body: bytes) -> Request:
    raw_path: bytes | None = scope.get("raw_path")
    target = raw_path.decode("latin-1") if raw_path else quote(str(scope["path"]))
    query: bytes = scope.get("query_string", b"")
    if query:
        target = f"{target}?{query.decode('latin-1')}"
    client: tuple[str, int] | list[Any] | None = scope.get("client")
    return Request(
        method=method,
        target=target,
        headers=tuple(
            (bytes(name).decode("latin-1").lower(), bytes(value).decode("latin-1"))
            for name, value in scope.get("headers", ())
        ),
        body=body,
        client=str(client[0]) if client else None,
    )


async def send_response(send: Send, method: str, response: Response) -> None:
    """Send `response` (its body bytes or streamed) as ASGI messages."""
    framing = frame_headers(method, response, keep_alive=True, date=None)
    # The ASGI server delimits the body itself (its own chunking for a stream of unknown length).
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in framing.headers
        if name != "transfer-encoding"
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    stream = response.stream
    if stream is None:
        body = response.body if framing.has_body else b""
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    pieces = aiter(stream)
    try:
        if framing.has_body:
            async for piece in pieces:
                if piece:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        if isinstance(pieces, AsyncGenerator):
            with trio.CancelScope(shield=True):
                await pieces.aclose()
