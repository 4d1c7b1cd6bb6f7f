"""The application: the gateway in front of a project's services, one JSON log line per request.

Decisions (routing, admission, statuses, error bodies) are the protocol's and the services';
this module supplies what the protocol may not touch (the clock, random request ids, the
database), hands each refusal to the addressed service's renderer, and keeps every failure of
ours from reaching the client as anything but a 500 with a request id. It knows no service by
name: the mounts and their envelopes come from the `Service` values it is given.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import final

from madbase.protocol.http import (
    Dispatch,
    Health,
    Refusal,
    Refused,
    Request,
    Response,
    admit,
    finish,
    health_response,
    json_response,
    pick_request_id,
    route_not_found,
)
from madbase.protocol.identity import DEFAULT_TOKEN_ROLES, Verifier
from madbase.runtime.db import DbTimeout, DbUnavailable, Pool
from madbase.runtime.http import WebSocket
from madbase.runtime.secrets import ProjectSecrets
from madbase.runtime.service import (
    Built,
    RefusalRenderer,
    Service,
    ServiceHandler,
    WebSocketHandler,
)
from madbase.runtime.services import DEFAULT_SERVICES

__all__ = ["App", "ServiceHandler", "WebSocketHandler"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("madbase.access")
# Request ids are labels for logs, not secrets: a generator seeded once per process from the OS
# spares a getrandom system call per request.
_ids = random.Random(os.urandom(32))  # noqa: S311 - not used for anything secret


@final
class App:
    """Serves one project: gateway, health, and the services registered on it.

    `services` are mounted (routes, error envelopes); a mounted service answers once its handler
    is registered (`register`, or `services[name]`), else 404 in its envelope. `verifier` is the
    project's one verifier; without one, one for the project's secret, where `roles` are the
    roles a token (API key included) may name and `audience` the one its `aud` must list (see
    `madbase.protocol.identity.claims`).
    """

    def __init__(
        self,
        secrets_: ProjectSecrets,
        pool: Pool,
        *,
        verifier: Verifier | None = None,
        roles: frozenset[str] = DEFAULT_TOKEN_ROLES,
        audience: str | None = None,
        services: Sequence[Service] = DEFAULT_SERVICES,
    ) -> None:
        self.secrets = secrets_
        self.pool = pool
        self.verifier = verifier or Verifier(secrets_.jwt_secret, roles=roles, audience=audience)
        self._mounts = tuple(service.mount for service in services)
        self._renderers: dict[str, RefusalRenderer] = {
            service.name: service.render_refusal for service in services
        }
        self.services: dict[str, ServiceHandler] = {}
        # Websocket endpoints by (service, subpath), e.g. (REALTIME, "/websocket").
        self.websockets: dict[tuple[str, str], WebSocketHandler] = {}

    def register(self, name: str, built: Built) -> None:
        """Answer the mounted service `name`'s requests and websockets with `built`."""
        assert name in self._renderers, f"service {name!r} is not mounted"
        self.services[name] = built.handle
        for subpath, handler in built.websockets.items():
            self.websockets[(name, subpath)] = handler

    async def handle(self, request: Request) -> Response:
        """Answer one request (never raises but trio's cancellation)."""
        started = time.perf_counter()
        request_id = pick_request_id(request, f"{_ids.getrandbits(128):032x}")
        try:
            response = await self._route(request, request_id)
        except Refusal as refusal:
            # A streamed body the client got wrong (too large, too slow): the front answers it.
            _log_access(request, request_id, started, refusal.status, None, 0)
            raise
        except Exception:
            log.exception("request failed", extra={"request_id": request_id})
            response = json_response(
                500, {"message": "Internal server error", "request_id": request_id}
            )
        except BaseException:
            # Cancelled: the client went away before the answer (or shutdown ran out of time).
            # Logged as nginx does such a request, 499, and nothing is sent.
            _log_access(request, request_id, started, 499, None, 0)
            raise
        response = finish(response, request, request_id=request_id)
        _log_access(
            request, request_id, started, response.status, response.error_code, len(response.body)
        )
        return response

    def _admit(
        self, request: Request, request_id: str | None = None
    ) -> Response | Dispatch | Refused | Health:
        return admit(
            request,
            verifier=self.verifier,
            mounts=self._mounts,
            now=datetime.now(UTC),
            request_id=request_id,
        )

    def _refuse(self, refused: Refused, request: Request) -> Response:
        return self._renderers[refused.mount.service](refused.error, request)

    def _not_found(self, request: Request, service: str) -> Response:
        return self._renderers[service](route_not_found(request), request)

    async def _route(self, request: Request, request_id: str) -> Response:
        decision = self._admit(request, request_id)
        if isinstance(decision, Response):
            return decision
        if isinstance(decision, Refused):
            return self._refuse(decision, request)
        if isinstance(decision, Health):
            return health_response(await self.pool.ping())
        handler = self.services.get(decision.service)
        if handler is None:
            return self._not_found(request, decision.service)
        try:
            return await handler(request, decision)
        except (DbUnavailable, DbTimeout) as err:
            log.warning("database unavailable: %s", err)
            return json_response(503, {"message": "The database is unavailable, try again"})

    async def websocket_check(self, request: Request) -> Response | None:
        """Refuse an upgrade unless its key is valid and a websocket endpoint serves its path."""
        decision = self._admit(request)
        if isinstance(decision, Response):
            return decision
        if isinstance(decision, Refused):
            return self._refuse(decision, request)
        if isinstance(decision, Health):
            return json_response(404, {"message": "no Route matched with those values"})
        if (decision.service, decision.subpath) not in self.websockets:
            return self._not_found(request, decision.service)
        return None

    async def websocket(self, request: Request, ws: WebSocket) -> None:
        """Serve an accepted websocket with its endpoint's handler."""
        decision = self._admit(request)
        assert isinstance(decision, Dispatch)
        await self.websockets[(decision.service, decision.subpath)](request, decision, ws)


def _log_access(
    request: Request,
    request_id: str,
    started: float,
    status: int,
    error_code: str | None,
    size: int,
) -> None:
    """One JSON line for the access log: what was asked and how it was answered, no secrets."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            json.dumps(
                {
                    "request_id": request_id,
                    "method": request.method,
                    # the path only: query strings may carry an apikey
                    "path": request.path,
                    "status": status,
                    # the code the answer's body carries (PGRST202, 42501, weak_password, ...)
                    "error_code": error_code,
                    "bytes": size,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "client": request.client,
                },
                separators=(",", ":"),
            )
        )
