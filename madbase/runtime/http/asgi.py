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
from madbase.runtime.http.server import Application

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

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one `http` scope."""
        method = str(scope["method"])
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
