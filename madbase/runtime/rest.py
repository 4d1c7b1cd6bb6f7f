"""The `/rest/v1` service: PostgREST's pipeline with the protocol deciding and the runtime doing I/O.

    admitted identity -> parse_request -> plan_request (schema snapshot) -> one pipelined
    transaction -> respond

(the middle two through `PlanCache`, which remembers the plans of repeated reads). The bearer
token was verified by the gateway (`Dispatch.identity`); a refused one is answered here with
PostgREST's 401 PGRST301/PGRST303.

Everything but the transaction is `madbase.protocol.rest`; this module supplies the clock, the
current schema snapshot and the pool, and turns an unreachable database into PostgREST's
PGRST000/PGRST003 answers (never 503 for anything permanent: postgrest-js retries 503s).
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, final

from madbase.protocol.http import Dispatch, Mount, Request, Response, Service
from madbase.protocol.identity import BearerError, headers_json
from madbase.protocol.rest import (
    DatabaseConnectionError,
    PlanCache,
    PoolTimeout,
    RestError,
    RestLimits,
    SchemaCacheNotLoaded,
    render_rest_error,
    render_rest_refusal,
    respond,
    token_error,
)
from madbase.runtime import service
from madbase.runtime.db import DbTimeout, DbUnavailable, Pool
from madbase.runtime.schema_cache import SchemaCache

if TYPE_CHECKING:
    from madbase.runtime.project import Project

__all__ = ["SERVICE", "RestService"]

log = logging.getLogger(__name__)


@final
class RestService:
    """Answers `/rest/v1` requests for one project."""

    def __init__(
        self,
        *,
        pool: Pool,
        cache: SchemaCache,
        limits: RestLimits,
        schemas: tuple[str, ...],
    ) -> None:
        self._pool = pool
        self._cache = cache
        self._limits = limits
        self._schemas = schemas
        self._plans = PlanCache(limits, schemas)

    async def __call__(self, request: Request, dispatch: Dispatch) -> Response:
        """Answer one request routed to `/rest/v1`, as the identity the gateway admitted."""
        auth = dispatch.identity
        assert auth is not None, "dispatched without admission"
        if isinstance(auth, BearerError):
            return render_rest_error(token_error(auth))
        snapshot = self._cache.current
        if snapshot is None:
            return render_rest_error(SchemaCacheNotLoaded())
        try:
            plan = self._plans.plan(
                request,
                dispatch.subpath,
                snapshot,
                auth,
                headers_json=headers_json(request.headers),
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


def build(project: Project) -> service.Built:
    """The `/rest/v1` service of `project`, and the schema watcher that keeps its cache."""
    config = project.config
    rest = RestService(
        pool=project.data_pool,
        cache=project.schema_cache,
        limits=RestLimits(
            plan_enabled=config.db_plan_enabled,
            max_rows=config.db_max_rows,
            openapi_enabled=config.openapi_mode != "disabled",
            openapi_ignore_privileges=config.openapi_mode == "ignore-privileges",
        ),
        schemas=config.db_schemas,
    )
    watch = functools.partial(
        project.schema_cache.watch, project.data_pool, project.conninfo, config.db_schemas
    )
    return service.Built(handle=rest, tasks=(watch,))


SERVICE = service.Service(
    mount=Mount("/rest/v1", Service.REST, own_methods=True),
    render_refusal=render_rest_refusal,
    build=build,
)
