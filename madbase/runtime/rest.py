"""The `/rest/v1` service: PostgREST's pipeline with the protocol deciding and the runtime doing I/O.

    bearer token -> parse_request -> plan_request (schema snapshot) -> one pipelined transaction
    -> respond

(the middle two through `PlanCache`, which remembers the plans of repeated reads).

Everything but the transaction is `madbase.protocol.rest`; this module supplies the clock, the
current schema snapshot and the pool, and turns an unreachable database into PostgREST's
PGRST000/PGRST003 answers (never 503 for anything permanent: postgrest-js retries 503s).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import final

from madbase.protocol.auth import BearerError, BearerVerifier
from madbase.protocol.http import Dispatch, Request, Response
from madbase.protocol.rest import (
    DatabaseConnectionError,
    JwtClaimsError,
    JwtDecodeError,
    PlanCache,
    PoolTimeout,
    RestError,
    RestLimits,
    SchemaCacheNotLoaded,
    render_rest_error,
    respond,
)
from madbase.runtime.db import DbTimeout, DbUnavailable, Pool
from madbase.runtime.schema_cache import SchemaCache

__all__ = ["RestService"]

log = logging.getLogger(__name__)


@final
class RestService:
    """Answers `/rest/v1` requests for one project."""

    def __init__(
        self,
        *,
        pool: Pool,
        cache: SchemaCache,
        bearer: BearerVerifier,
        limits: RestLimits,
        schemas: tuple[str, ...],
    ) -> None:
        self._pool = pool
        self._cache = cache
        self._bearer = bearer
        self._limits = limits
        self._schemas = schemas
        self._plans = PlanCache(limits, schemas)

    async def __call__(self, request: Request, dispatch: Dispatch) -> Response:
        """Answer one request routed to `/rest/v1`."""
        try:
            auth = self._bearer.verify(request.header("authorization"), now=datetime.now(UTC))
        except BearerError as err:
            error_class = JwtClaimsError if err.code == "PGRST303" else JwtDecodeError
            return render_rest_error(error_class(err.message))
        snapshot = self._cache.current
        if snapshot is None:
            return render_rest_error(SchemaCacheNotLoaded())
        try:
            plan = self._plans.plan(
                request, dispatch.subpath, snapshot, auth, headers_json=_headers_json(request)
            )
        except RestError as err:
            return render_rest_error(err)
        if plan.allow is not None:  # OPTIONS needs no database
            return respond(plan, [])
        try:
            result = await self._pool.run(plan.transaction)
        except DbUnavailable as err:
            log.warning("database unavailable: %s", err)
            if "timed out waiting" in str(err):
                return render_rest_error(PoolTimeout())
            return render_rest_error(DatabaseConnectionError())
        except DbTimeout:
            return render_rest_error(PoolTimeout("Timed out waiting for the database"))
        return respond(plan, result)


def _headers_json(request: Request) -> str:
    """`request.headers` as PostgREST sets it: a JSON object, names lower-case, last value wins."""
    return json.dumps(dict(request.headers), separators=(",", ":"), ensure_ascii=False)
