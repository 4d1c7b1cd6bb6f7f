"""The project's schema cache: the current `SchemaSnapshot`, reloaded when the schema changes.

`SchemaCache.watch` is a long-running task (one per project, in the project's nursery):

    cache = SchemaCache()
    await nursery.start(cache.watch, pool, conninfo, ("public", "graphql_public"))
    ...
    snapshot = cache.current          # each request reads it once and keeps it

It keeps one dedicated `db.Connection` (not from the pool: it sits idle in LISTEN) on channel
`pgrst`, as PostgREST does. `NOTIFY pgrst, 'reload schema'` (sent by the event triggers of
migration 0002 after DDL, or by hand) reloads the snapshot; `'reload config'` is ignored for now.
A burst of notifications (a migration runs many statements) costs one reload: after the first
one the watcher waits `debounce` seconds, swallowing the rest. If the listening connection drops
it reconnects with exponential backoff and reloads, since notifications sent meanwhile are lost.
A failed reload keeps the previous snapshot and is retried with backoff.

The snapshot is immutable and replaced by a single assignment, so a request in flight keeps the
snapshot it started with.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Final, final

import attrs
import trio

from madbase.protocol.http import JsonValue
from madbase.protocol.rest import (
    SchemaPayloadError,
    SchemaSnapshot,
    introspection_transaction,
    snapshot_from_json,
)
from madbase.runtime.db import Connection, DbError, DbTimeout, DbUnavailable, Pool

__all__ = ["SchemaCache", "SchemaCacheStatistics", "SchemaLoadError"]

log = logging.getLogger(__name__)

CHANNEL: Final = "pgrst"  # PostgREST's default db-channel; Supabase's event triggers notify it
_RELOAD_SCHEMA: Final = "reload schema"
_RELOAD_CONFIG: Final = "reload config"


class SchemaLoadError(Exception):
    """The snapshot could not be loaded (the REST API answers 503 PGRST002 until it is)."""


@final
@attrs.frozen(kw_only=True)
class SchemaCacheStatistics:
    """Counters for metrics and tests."""

    loads: int
    failures: int
    reconnects: int
    listening: bool


@final
class SchemaCache:
    """Owns the current snapshot of one project's exposed schemas."""

    def __init__(
        self,
        *,
        debounce: float = 0.1,
        connect_timeout: float = 5.0,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        self._current: SchemaSnapshot | None = None
        self._lock = trio.Lock()
        self._debounce = debounce
        self._connect_timeout = connect_timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._loads = 0
        self._failures = 0
        self._reconnects = 0
        self._listening = False

    @property
    def current(self) -> SchemaSnapshot | None:
        """The latest snapshot, or None before the first successful load."""
        return self._current

    def statistics(self) -> SchemaCacheStatistics:
        """How many loads, failed loads and reconnects so far; whether LISTEN is active."""
        return SchemaCacheStatistics(
            loads=self._loads,
            failures=self._failures,
            reconnects=self._reconnects,
            listening=self._listening,
        )

    async def load(self, pool: Pool, schemas: tuple[str, ...]) -> SchemaSnapshot:
        """Introspect `schemas` now and make the result current.

        Raises:
            SchemaLoadError: the query failed or returned something unexpected (the previous
                snapshot stays current).
        """
        async with self._lock:
            try:
                snapshot = await self._introspect(pool, schemas)
            except SchemaLoadError:
                self._failures += 1
                raise
            self._current = snapshot
            self._loads += 1
            return snapshot

    async def _introspect(self, pool: Pool, schemas: tuple[str, ...]) -> SchemaSnapshot:
        try:
            result = await pool.run(introspection_transaction(schemas))
        except (DbUnavailable, DbTimeout) as err:
            raise SchemaLoadError(f"could not query the schema: {err}") from err
        if isinstance(result, DbError):
            raise SchemaLoadError(f"schema query failed: {result.message} ({result.sqlstate})")
        rows = result[0].rows
        if len(rows) != 1 or rows[0][0] is None:
            raise SchemaLoadError("schema query returned no value")
        try:
            payload: JsonValue = json.loads(rows[0][0])
            return snapshot_from_json(payload, schemas)
        except (ValueError, SchemaPayloadError) as err:
            raise SchemaLoadError(f"schema query returned an unusable value: {err}") from err

    async def watch(
        self,
        pool: Pool,
        conninfo: str,
        schemas: tuple[str, ...],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on `pgrst` and reload on demand, forever; started once the first load is done.

        LISTEN is issued before the first load, so no change between the two is missed.

        Raises:
            SchemaLoadError: the first load failed (nothing to serve yet; the caller restarts).
            DbUnavailable: the first connection could not be made.
        """
        listener = await _Listener.connect(conninfo, timeout=self._connect_timeout)
        try:
            self._listening = True
            await self.load(pool, schemas)
            task_status.started()
            while True:
                await self._serve(listener, pool, schemas)
                # The connection broke: notifications may have been lost meanwhile.
                self._listening = False
                listener.close()
                listener = await self._reconnect(conninfo)
                self._listening = True
                await self._reload_or_retry(listener, pool, schemas)
        finally:
            self._listening = False
            listener.close()

    async def _serve(self, listener: _Listener, pool: Pool, schemas: tuple[str, ...]) -> None:
        """Handle notifications until the connection breaks."""
        deadline = math.inf  # when the pending reload runs; inf: none pending
        backoff = self._min_backoff
        while True:
            with trio.move_on_at(deadline):
                try:
                    messages = await listener.receive()
                except _ListenerBroken as err:
                    log.warning("schema listener connection lost: %s", err)
                    return
                for message in messages:
                    if message == _RELOAD_SCHEMA and deadline == math.inf:
                        deadline = trio.current_time() + self._debounce
                    elif message not in (_RELOAD_SCHEMA, _RELOAD_CONFIG):
                        log.info("ignoring notification %r on channel %s", message, CHANNEL)
                continue
            try:
                await self.load(pool, schemas)
            except SchemaLoadError as err:
                log.warning("schema reload failed, retrying in %.1fs: %s", backoff, err)
                deadline = trio.current_time() + backoff
                backoff = min(backoff * 2, self._max_backoff)
            else:
                deadline = math.inf
                backoff = self._min_backoff

    async def _reload_or_retry(
        self, listener: _Listener, pool: Pool, schemas: tuple[str, ...]
    ) -> None:
        try:
            await self.load(pool, schemas)
        except SchemaLoadError as err:
            # _serve retries once a notification arrives; the next reconnect retries too.
            log.warning("schema reload after reconnect failed: %s", err)
            listener.pending_reload = True

    async def _reconnect(self, conninfo: str) -> _Listener:
        backoff = self._min_backoff
        while True:
            await trio.sleep(backoff)
            self._reconnects += 1
            try:
                return await _Listener.connect(conninfo, timeout=self._connect_timeout)
            except DbUnavailable as err:
                log.warning("schema listener cannot reconnect, retrying in %.1fs: %s", backoff, err)
                backoff = min(backoff * 2, self._max_backoff)


class _ListenerBroken(Exception):
    """The listening connection is gone."""


@final
class _Listener:
    """A `db.Connection` of its own (not from the pool: it sits idle) in LISTEN on `pgrst`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        # A reload that failed right after reconnecting: report it as a message.
        self.pending_reload = False

    @classmethod
    async def connect(cls, conninfo: str, *, timeout: float) -> _Listener:  # noqa: ASYNC109 - configured connect timeout
        """Connect and LISTEN; raise `DbUnavailable` if that fails."""
        conn = await Connection.connect(conninfo, timeout=timeout, prepare=False)
        try:
            error = await conn.execute_script(f"LISTEN {CHANNEL}")
        except BaseException:
            conn.close()
            raise
        if error is not None:
            conn.close()
            raise DbUnavailable(f"LISTEN {CHANNEL} failed: {error.message}")
        return cls(conn)

    async def receive(self) -> list[str]:
        """Wait for the next notifications on the channel; their payloads.

        Raises:
            _ListenerBroken: the connection is gone.
        """
        if self.pending_reload:
            self.pending_reload = False
            return [_RELOAD_SCHEMA]
        while True:
            try:
                found = await self._conn.wait_notifications()
            except DbUnavailable as err:
                raise _ListenerBroken(str(err)) from err
            messages = [payload for channel, payload in found if channel == CHANNEL]
            if messages:
                return messages

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()
