"""The `Service` interface: what a service declares, and what a built one does for a project.

A service is one module that defines a `Service` value:

- `mount`: its path prefix, name and the paths it answers without an API key (the gateway routes
  by it; see `madbase.protocol.http.Mount`);
- `render_refusal`: its error envelope for the gateway's refusals (no or a bad API key, two
  credentials, an unknown path), so the gateway knows no service's codes;
- `build`: how it is built from the project (its config slice, pools, verifier, schema cache),
  giving a `Built`: the request handler, websocket handlers by subpath, background tasks the
  project starts in its nursery (REST's schema watcher), and what to close at the end.
  None: mounted but not built yet (Storage, Realtime): its paths answer 404 in its envelope.

`madbase.runtime.services.DEFAULT_SERVICES` lists the services a project runs; adding one means
a new module and a line there, nothing in the gateway or `App`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias, final

import attrs

from madbase.protocol.http import Dispatch, GatewayError, Mount, Request, Response

if TYPE_CHECKING:
    from madbase.runtime.http import WebSocket
    from madbase.runtime.project import Project

__all__ = [
    "BackgroundTask",
    "Built",
    "RefusalRenderer",
    "Service",
    "ServiceHandler",
    "WebSocketHandler",
]

ServiceHandler: TypeAlias = Callable[[Request, Dispatch], Awaitable[Response]]
WebSocketHandler: TypeAlias = Callable[[Request, Dispatch, "WebSocket"], Awaitable[None]]
RefusalRenderer: TypeAlias = Callable[[GatewayError, Request], Response]
# Started with `await nursery.start(task)` in the project's nursery: reports readiness with
# `task_status.started()`, runs until the project closes (cancelled then).
BackgroundTask: TypeAlias = Callable[..., Awaitable[Any]]


async def _nothing_to_close() -> None:
    return None


@final
@attrs.frozen(kw_only=True)
class Built:
    """A service built for one project."""

    handle: ServiceHandler
    websockets: Mapping[str, WebSocketHandler] = attrs.field(factory=lambda: MappingProxyType({}))
    tasks: tuple[BackgroundTask, ...] = ()
    aclose: Callable[[], Awaitable[None]] = _nothing_to_close


@final
@attrs.frozen(kw_only=True)
class Service:
    """A service: where it is mounted, its error envelope, how a project builds it."""

    mount: Mount
    render_refusal: RefusalRenderer
    build: Callable[[Project], Built] | None = None

    @property
    def name(self) -> str:
        """The mount's service name (`Dispatch.service`)."""
        return self.mount.service
