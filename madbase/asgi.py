"""The ASGI entry point: `app` serves the same application as `madbase serve`, under hypercorn.

    hypercorn --worker-class trio madbase.asgi:app

The project (database, migrations, `App`) is opened when the server sends `lifespan.startup` and
closed on `lifespan.shutdown`, so the ASGI server must speak the lifespan protocol (hypercorn on trio
does). The configuration is read at that moment from `MADBASE_*` variables and the `.env` file in
the current directory, environment first, as the CLI does; the host and port are the ASGI
server's. Only steps 1 and 9 of a request differ from our own server: the ASGI messages become a
`protocol.http.Request`, and the `Response` becomes one `http.response.start` and one
`http.response.body`. As with our own server, a client that goes away before its answer (the
ASGI server sends `http.disconnect`) has its request cancelled, database statement included.

Websocket under ASGI arrives with the realtime issue: for now a websocket scope is closed with
code 1000 as soon as it connects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, TypeAlias, final
from urllib.parse import quote

import trio

from madbase.config import Config, parse_dotenv, unknown_settings
from madbase.protocol.http import RETRY_AFTER, Request, Response, json_response
from madbase.runtime.project import Project
from madbase.runtime.serve import open_project

__all__ = ["AsgiApp", "app", "load_config"]

log = logging.getLogger(__name__)

# ASGI messages are plain dicts (asgiref's typing uses the same shapes); they are turned into our
# typed values at once and never leave this module.
Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]

# RFC 9110 §6.4.1: 204 and 304 carry no content, whatever the application produced.
_NO_BODY_STATUSES = frozenset({204, 304})


def load_config(cwd: Path | None = None) -> Config:
    """The configuration from the environment and `.env` in `cwd` (environment wins)."""
    env_file = (cwd or Path.cwd()) / ".env"
    dotenv: dict[str, str] = {}
    if env_file.is_file():
        dotenv = parse_dotenv(env_file.read_text(encoding="utf-8"))
    config = Config.from_sources(os.environ, dotenv, {})
    for warning in unknown_settings(os.environ, dotenv):
        log.warning("%s", warning)
    return config


@final
class AsgiApp:
    """An ASGI 3 application serving one project opened by the lifespan protocol."""

    def __init__(self, config_loader: Callable[[], Config] = load_config) -> None:
        self._load_config = config_loader
        self._project: Project | None = None
        self._max_body_bytes: int | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI scope (`lifespan`, `http` or `websocket`)."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise ValueError(f"unsupported ASGI scope type {kind!r}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        # This coroutine is a long-lived task of the ASGI server, so the project's nursery can live
        # inside it from startup to shutdown.
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        started = stopping = False
        try:
            config = self._load_config()
            async with open_project(config) as project:
                self._max_body_bytes = config.http.max_body_bytes
                self._project = project
                started = True
                try:
                    await send({"type": "lifespan.startup.complete"})
                    while (await receive())["type"] != "lifespan.shutdown":
                        pass
                    stopping = True
                finally:
                    self._project = None
        except Exception as err:  # the seam: the ASGI server reports it and stops
            if not started:
                log.exception("MadBase failed to start")
            elif stopping:
                log.exception("MadBase failed to stop cleanly")
            else:
                # e.g. the embedded Postgres exited: stop serving rather than answer 503 forever.
                log.exception("MadBase stopped: the project failed")
            # hypercorn raises from `send` here; that is how it learns the reason and exits.
            phase = "shutdown" if started else "startup"
            await send({"type": f"lifespan.{phase}.failed", "message": _describe(err)})
            return
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = str(scope["method"])
        project = self._project
        if project is None:
            starting = json_response(
                503, {"message": "MadBase is starting"}, (("retry-after", RETRY_AFTER),)
            )
            await _send_response(send, method, starting)
            return
        try:
            body = await _read_body(receive, self._max_body_bytes)
        except _DisconnectedError:
            return
        if body is None:
            await _send_response(send, method, json_response(413, {"message": "Payload Too Large"}))
            return
        request = _to_request(scope, method, body)
        response: Response | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
            response = await project.app.handle(request)
            nursery.cancel_scope.cancel()
        if response is not None:  # else the client went away: no one to answer
            await _send_response(send, method, response)

    async def _websocket(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 1000})


def _describe(err: BaseException) -> str:
    """One line naming every leaf exception (a nursery's group says only how many it holds)."""
    if isinstance(err, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in err.exceptions)
    return f"{type(err).__name__}: {err}"


class _DisconnectedError(Exception):
    """The client went away before its request was complete."""


async def _read_body(receive: Receive, limit: int | None) -> bytes | None:
    """The whole request body, or None once it exceeds `limit` bytes."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _DisconnectedError
        body += message.get("body", b"")
        if limit is not None and len(body) > limit:
            return None
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


async def _send_response(send: Send, method: str, response: Response) -> None:
    status = response.status
    # Framing is the server's, as in runtime/http.py: our own content-length, never `connection`.
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers
        if name not in ("content-length", "connection")
    ]
    body = response.body
    if status >= 200 and status not in _NO_BODY_STATUSES:
        headers.append((b"content-length", str(len(body)).encode("ascii")))
    if method == "HEAD" or status in _NO_BODY_STATUSES or status < 200:
        body = b""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


app = AsgiApp()
