"""The ASGI entry point: `app` serves the same application as `madbase serve`, under hypercorn.

    hypercorn --worker-class trio madbase.asgi:app

The project (database, migrations, `App`) is opened when the server sends `lifespan.startup` and
closed on `lifespan.shutdown`, so the ASGI server must speak the lifespan protocol (hypercorn on trio
does). The configuration is read at that moment from `MADBASE_*` variables and the `.env` file in
the current directory, environment first, as the CLI does; the host and port are the ASGI
server's. Requests and websockets go to the ASGI front (`madbase.runtime.http.asgi`), which serves
the project's `App` as our own server does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import final

from madbase.config import Config, parse_dotenv, unknown_settings
from madbase.protocol.http import RETRY_AFTER, json_response
from madbase.runtime.http import http_limits
from madbase.runtime.http.asgi import AsgiFront, Receive, Scope, Send, send_response
from madbase.runtime.project import Project
from madbase.runtime.serve import open_project

__all__ = ["AsgiApp", "app", "load_config"]

log = logging.getLogger(__name__)


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
        self._front: AsgiFront | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI scope (`lifespan`, `http` or `websocket`)."""
        kind = scope["type"]
        if kind == "http":
            front = self._front
            if front is None:
                starting = json_response(
                    503, {"message": "MadBase is starting"}, (("retry-after", RETRY_AFTER),)
                )
                await send_response(send, str(scope["method"]), starting)
                return
            await front.http(scope, receive, send)
        elif kind == "websocket":
            if self._front is None:
                await receive()
                await send({"type": "websocket.close", "code": 1000})
                return
            await self._front.websocket(scope, receive, send)
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
                self._project = project
                self._front = AsgiFront(project.app, http_limits(config.http))
                started = True
                try:
                    await send({"type": "lifespan.startup.complete"})
                    while (await receive())["type"] != "lifespan.shutdown":
                        pass
                    stopping = True
                finally:
                    self._project = None
                    self._front = None
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


def _describe(err: BaseException) -> str:
    """One line naming every leaf exception (a nursery's group says only how many it holds)."""
    if isinstance(err, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in err.exceptions)
    return f"{type(err).__name__}: {err}"


app = AsgiApp()
