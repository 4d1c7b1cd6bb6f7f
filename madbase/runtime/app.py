"""The application: the gateway in front of the services, one JSON log line per request.

Decisions (routing, statuses, error bodies) are the protocol's; this module supplies what the
protocol may not touch (the clock, random request ids, the database) and keeps every failure of
ours from reaching the client as anything but a 500 with a request id.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeAlias, final

from madbase.protocol.auth import DEFAULT_TOKEN_ROLES, ApiKeyVerifier
from madbase.protocol.http import (
    Dispatch,
    Health,
    Refusal,
    Request,
    Response,
    Service,
    admit,
    finish,
    health_response,
    json_response,
    not_found,
    pick_request_id,
)
from madbase.runtime.db import DbTimeout, DbUnavailable, Pool
from madbase.runtime.http import WebSocket
from madbase.runtime.secrets import ProjectSecrets

__all__ = ["App", "ServiceHandler", "WebSocketHandler"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("madbase.access")
# Request ids are labels for logs, not secrets: a generator seeded once per process from the OS
# spares a getrandom system call per request.
_ids = random.Random(os.urandom(32))  # noqa: S311 - not used for anything secret

ServiceHandler: TypeAlias = Callable[[Request, Dispatch], Awaitable[Response]]
WebSocketHandler: TypeAlias = Callable[[Request, Dispatch, WebSocket], Awaitable[None]]


@final
class App:
    """Serves one project: gateway, health, and the services registered on it.

    `roles` are the roles a token (API key included) may name, `audience` the one its `aud` must
    list (see `madbase.protocol.auth.claims`).
    """

    def __init__(
        self,
        secrets_: ProjectSecrets,
        pool: Pool,
        *,
        roles: frozenset[str] = DEFAULT_TOKEN_ROLES,
        audience: str | None = None,
    ) -> None:
        self.secrets = secrets_
        self.pool = pool
        self._keys = ApiKeyVerifier(secrets_.jwt_secret, roles=roles, audience=audience)
        self.services: dict[Service, ServiceHandler] = {}
        # Websocket endpoints by (service, subpath), e.g. (REALTIME, "/websocket").
        self.websockets: dict[tuple[Service, str], WebSocketHandler] = {}

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

    async def _route(self, request: Request, request_id: str) -> Response:
        decision = admit(request, keys=self._keys, now=datetime.now(UTC), request_id=request_id)
        if isinstance(decision, Response):
            return decision
        if isinstance(decision, Health):
            return health_response(await self.pool.ping())
        handler = self.services.get(decision.service)
        if handler is None:
            return not_found(request, decision.service)
        try:
            return await handler(request, decision)
        except (DbUnavailable, DbTimeout) as err:
            log.warning("database unavailable: %s", err)
            return json_response(503, {"message": "The database is unavailable, try again"})

    async def websocket_check(self, request: Request) -> Response | None:
        """Refuse an upgrade unless its key is valid and a websocket endpoint serves its path."""
        decision = admit(request, keys=self._keys, now=datetime.now(UTC))
        if isinstance(decision, Response):
            return decision
        if (
            isinstance(decision, Health)
            or (decision.service, decision.subpath) not in self.websockets
        ):
            service = decision.service if isinstance(decision, Dispatch) else Service.REALTIME
            return not_found(request, service)
        return None

    async def websocket(self, request: Request, ws: WebSocket) -> None:
        """Serve an accepted websocket with its endpoint's handler."""
        decision = admit(request, keys=self._keys, now=datetime.now(UTC))
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
