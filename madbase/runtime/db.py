"""The Postgres executor: trio-native over psycopg's libpq wrapper, pipeline mode, a bounded pool.

psycopg's async connection is asyncio-only, so we drive `psycopg.pq` ourselves, the way psycopg's
`waiting.py` drives its generators: non-blocking libpq calls, and `trio.lowlevel.wait_readable` /
`wait_writable` on the connection's socket between them. A `Transaction` built by the protocol is
sent as one pipeline (BEGIN, settings, statements, COMMIT, Sync) and costs one round trip.

Failures come back as values or as two exceptions, translated here once:

- `DbError`: the server refused a statement (SQLSTATE, message, detail, hint kept as sent);
- `DbUnavailable`: no connection could be had or it broke (the caller answers 503);
- `DbTimeout`: the transaction did not finish in time (the connection is dropped).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final, final

import attrs
import psycopg
import trio
from psycopg import pq

from madbase.config import DbSettings
from madbase.protocol.sql import DbError, DbResult, Statement, Transaction

__all__ = ["Connection", "DbError", "DbResult", "DbTimeout", "DbUnavailable", "Pool"]

log = logging.getLogger(__name__)

ExecStatus = pq.ExecStatus
_BEGIN: Final = b"BEGIN"
_BEGIN_READ_ONLY: Final = b"BEGIN READ ONLY"
_ROLLBACK: Final = b"ROLLBACK"
# A function may call set_config(..., false): its setting must not reach the next request on this
# connection. The last statements of the same pipeline, they cost no round trip. RESET ALL leaves
# `role` (and `session_authorization`) alone, so the role gets its own reset.
_RESET: Final = b"RESET ALL"
_RESET_ROLE: Final = b"RESET ROLE"
_RESETS: Final[tuple[tuple[bytes, None], ...]] = ((_RESET, None), (_RESET_ROLE, None))
# Prepared statements kept per connection; beyond this, statements run unprepared.
_MAX_PREPARED: Final = 256
# Seconds a cancel request may take (a connection to the server and one packet); past that the
# statement is left to run until Postgres notices its client is gone.
_CANCEL_TIMEOUT: Final = 2.0


class DbUnavailable(Exception):
    """No working connection to Postgres (it is down, restarting, or the pool is exhausted)."""


class DbTimeout(Exception):
    """A transaction took longer than the configured query timeout."""


def _error(res: pq.abc.PGresult, index: int = -1, statements: int = 0) -> DbError:
    """The error fields of a failed result, which is statement `index` of `statements`."""

    def field(code: pq.DiagnosticField) -> str | None:
        value = res.error_field(code)
        return value.decode("utf-8", "replace") if value is not None else None

    return DbError(
        sqlstate=field(pq.DiagnosticField.SQLSTATE) or "XX000",
        message=field(pq.DiagnosticField.MESSAGE_PRIMARY) or "unknown error",
        detail=field(pq.DiagnosticField.MESSAGE_DETAIL),
        hint=field(pq.DiagnosticField.MESSAGE_HINT),
        statement=index if 0 <= index < statements else None,
    )


def _result(res: pq.abc.PGresult) -> DbResult:
    """The rows and command tag of a successful result."""
    ncols = res.nfields
    rows = tuple(tuple(res.get_value(r, c) for c in range(ncols)) for r in range(res.ntuples))
    tag = res.command_status
    return DbResult(rows=rows, command=tag.decode() if tag else "")


@final
class Connection:
    """One libpq connection in non-blocking pipeline mode, used by one task at a time."""

    def __init__(self, pgconn: pq.abc.PGconn, *, prepare: bool = True) -> None:
        self._pg = pgconn
        self.broken = False
        self._closed = False
        # True when the pool handed it out from its idle list rather than freshly connected.
        self.reused = False
        # Server-side prepared statements of this connection: SQL text -> statement name.
        self._prepared: dict[bytes, bytes] = {}
        self._prepare = prepare
        self._names = 0
        # When the transaction under way must have finished (the pool's watchdog enforces it).
        self.deadline = math.inf
        self.timed_out = False

    @classmethod
    async def connect(cls, conninfo: str, *, timeout: float, prepare: bool = True) -> Connection:  # noqa: ASYNC109 - the pool passes its configured connect timeout
        """Open a connection; raise `DbUnavailable` if the server cannot be reached in time."""
        pg = pq.PGconn.connect_start(conninfo.encode())
        try:
            with trio.fail_after(timeout):
                if pg.status == pq.ConnStatus.BAD or not await _polled(
                    pg.connect_poll, lambda: pg.socket
                ):
                    raise DbUnavailable(pg_message(pg))
        except trio.TooSlowError:
            pg.finish()
            raise DbUnavailable("timed out connecting to the database") from None
        except BaseException:
            pg.finish()
            raise
        pg.nonblocking = 1
        pg.notice_handler = _ignore_notice
        return cls(pg, prepare=prepare)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.broken = True
        if not self._closed:
            self._closed = True
            self._pg.finish()

    async def cancel(self) -> bool:
        """Ask the server to cancel the statement under way; True once the request was delivered.

        libpq's cancel request: a new connection to the server carrying this one's cancel key,
        sent without blocking where libpq has PQcancelStart (17+), else PQcancel in a worker
        thread. Waits at most `_CANCEL_TIMEOUT` seconds; never raises for the server's sake.
        """
        if self._closed:
            return False
        with trio.move_on_after(_CANCEL_TIMEOUT):
            try:
                try:
                    request = self._pg.cancel_conn()
                except psycopg.NotSupportedError:
                    blocking = self._pg.get_cancel()
                    await trio.to_thread.run_sync(blocking.cancel, abandon_on_cancel=True)
                    return True
                try:
                    request.start()
                    if not await _polled(request.poll, lambda: request.socket):
                        raise psycopg.OperationalError(request.get_error_message())
                finally:
                    request.finish()
            except psycopg.Error as err:
                log.warning("could not cancel a statement: %s", err)
                return False
            return True
        log.warning("could not cancel a statement: no answer in %s s", _CANCEL_TIMEOUT)
        return False

    def expire(self) -> None:
        """Give up on the transaction under way: its task's wait fails with `DbTimeout`."""
        self.timed_out = True
        if not self._closed:
            trio.lowlevel.notify_closing(self._pg.socket)
        self.close()

    async def run(self, tx: Transaction) -> list[DbResult] | DbError:
        """Run `tx` in one pipelined round trip; the statements' results, or the first error.

        Raises:
            DbUnavailable: the connection broke (it is marked broken).
        """
        # Without `rollback`, no BEGIN/COMMIT: everything up to the pipeline's Sync is one
        # implicit transaction, committed at the Sync or rolled back, with every setting made in
        # it (session-level ones too), at the first error. RESET ALL and RESET ROLE end it, so a
        # function's `set_config(..., false)`, of the role too, is undone before the connection
        # goes back.
        queries: list[tuple[bytes, Sequence[bytes | None] | None]] = []
        settings = list(tx.settings)
        if tx.rollback:
            queries.append((_BEGIN_READ_ONLY if tx.read_only else _BEGIN, None))
        elif tx.read_only:
            settings.insert(0, ("transaction_read_only", "on"))
        if settings:
            params: list[bytes | None] = []
            for name, value in settings:
                params += [name.encode(), value.encode()]
            queries.append((_settings_sql(len(settings)), params))
        first = len(queries)
        queries += [(st.sql.encode(), _encode_params(st)) for st in tx.statements]
        if tx.rollback:
            queries.append((_ROLLBACK, None))
        queries += _RESETS
        results = await self._pipeline(queries)
        failed = _first_error(results)
        if failed is not None and self._prepared and _stale_plan(failed):
            # A statement prepared earlier no longer fits its tables (its result type changed):
            # nothing ran; forget the prepared statements and send the transaction again.
            self._prepared.clear()
            results = await self._pipeline(queries)
            failed = _first_error(results)
        if failed is not None:
            error = _error(failed, results.index(failed) - first, len(tx.statements))
            if self._pg.transaction_status != pq.TransactionStatus.IDLE:
                # An explicit block (tx=rollback) stays open after an error: end it.
                await self._pipeline([(_ROLLBACK, None), *_RESETS])
            return error
        return [_result(res) for res in results[first : first + len(tx.statements)]]

    async def execute_script(self, sql: str) -> DbError | None:
        """Run several `;`-separated statements with the simple query protocol (migrations)."""
        pg = self._pg
        try:
            pg.send_query(sql.encode())
            await self._flush()
            error: DbError | None = None
            while True:
                await self._wait_result()
                res = pg.get_result()
                if res is None:
                    return error
                if res.status == ExecStatus.FATAL_ERROR and error is None:
                    error = _error(res)
        except psycopg.Error as err:
            self.broken = True
            raise DbUnavailable(str(err)) from err

    async def wait_notifications(self) -> list[tuple[str, str]]:
        """Wait until notifications arrive on a channel this connection LISTENs on; their
        (channel, payload) pairs.

        Raises:
            DbUnavailable: the connection broke (it is marked broken).
        """
        pg = self._pg
        while True:
            try:
                await trio.lowlevel.wait_readable(pg.socket)
                pg.consume_input()
            except trio.ClosedResourceError:
                raise self._closed_error() from None
            except (psycopg.Error, OSError) as err:
                self.broken = True
                raise DbUnavailable(str(err)) from err
            if pg.status == pq.ConnStatus.BAD:
                self.broken = True
                raise DbUnavailable(pg_message(pg))
            found: list[tuple[str, str]] = []
            while (notify := pg.notifies()) is not None:
                found.append(
                    (
                        notify.relname.decode("utf-8", "replace"),
                        notify.extra.decode("utf-8", "replace"),
                    )
                )
            # Anything else that arrived (a notice, the server's goodbye) is drained by libpq.
            while not pg.is_busy() and (res := pg.get_result()) is not None:
                if res.status == ExecStatus.FATAL_ERROR:
                    self.broken = True
                    raise DbUnavailable(pg_message(pg))
            if found:
                return found

    async def _pipeline(
        self, queries: Sequence[tuple[bytes, Sequence[bytes | None] | None]]
    ) -> list[pq.abc.PGresult]:
        pg = self._pg
        try:
            pg.enter_pipeline_mode()
            try:
                # Each statement is prepared on first use (in the same pipeline) and executed by
                # name afterwards: Postgres parses and plans it once per connection, not per
                # request. `preparing[i]` is the SQL a command at result index i prepares.
                preparing: dict[int, tuple[bytes, bytes]] = {}
                sent = 0
                for sql, params in queries:
                    name = self._prepared.get(sql)
                    if name is None and self._prepare and len(self._prepared) < _MAX_PREPARED:
                        self._names += 1
                        name = b"madbase_%d" % self._names
                        pg.send_prepare(name, sql)
                        preparing[sent] = (sql, name)
                        sent += 1
                    if name is None:
                        pg.send_query_params(sql, params)
                    else:
                        pg.send_query_prepared(name, params)
                    sent += 1
                pg.pipeline_sync()
                await self._flush()
                results: list[pq.abc.PGresult] = []
                last: pq.abc.PGresult | None = None
                while True:
                    # Most results are already read when asked for: no coroutine for those.
                    if pg.is_busy():
                        await self._wait_result()
                    elif pg.status == pq.ConnStatus.BAD:
                        self.broken = True
                        raise DbUnavailable(pg_message(pg))
                    res = pg.get_result()
                    if res is None:
                        if last is not None:
                            results.append(last)
                            last = None
                        continue
                    if res.status == ExecStatus.PIPELINE_SYNC:
                        break
                    if res.status == ExecStatus.FATAL_ERROR and pg.status == pq.ConnStatus.BAD:
                        raise DbUnavailable(pg_message(pg))
                    last = res
            finally:
                if pg.status == pq.ConnStatus.OK and pg.pipeline_status != pq.PipelineStatus.OFF:
                    with contextlib.suppress(psycopg.Error):
                        pg.exit_pipeline_mode()
        except psycopg.Error as err:
            self.broken = True
            raise DbUnavailable(str(err)) from err
        except BaseException as err:
            # Cancelled or failed half-way: the connection's state is unknown.
            self.broken = True
            if isinstance(err, trio.Cancelled):
                # The caller gave up (its client went away, shutdown): closing the connection
                # does not stop a statement under way until Postgres next writes to it.
                with trio.CancelScope(shield=True):
                    await self.cancel()
            raise
        if not preparing:
            return results
        # A prepare skipped by an earlier error (or failed itself) left no statement behind. A
        # failed prepare (an unknown column, say) is the error of its statement: the execution
        # after it was only skipped.
        answers: list[pq.abc.PGresult] = []
        failed: pq.abc.PGresult | None = None
        for index, res in enumerate(results):
            prepared = preparing.get(index)
            if prepared is not None:  # always followed by the execution of that statement
                if res.status == ExecStatus.COMMAND_OK:
                    self._prepared[prepared[0]] = prepared[1]
                elif res.status == ExecStatus.FATAL_ERROR:
                    failed = res
                continue
            answers.append(failed or res)
            failed = None
        return answers

    async def _flush(self) -> None:
        while self._pg.flush() == 1:
            try:
                await trio.lowlevel.wait_writable(self._pg.socket)
            except trio.ClosedResourceError:
                raise self._closed_error() from None

    async def _wait_result(self) -> None:
        pg = self._pg
        while pg.is_busy():
            try:
                await trio.lowlevel.wait_readable(pg.socket)
            except trio.ClosedResourceError:
                raise self._closed_error() from None
            pg.consume_input()
        if pg.status == pq.ConnStatus.BAD:
            self.broken = True
            raise DbUnavailable(pg_message(pg))

    def _closed_error(self) -> Exception:
        if self.timed_out:
            return DbTimeout("the database did not answer in time")
        return DbUnavailable("the connection was closed")


@final
class Pool:
    """At most `settings.pool_size` connections to one database, opened on demand."""

    def __init__(self, conninfo: str, settings: DbSettings) -> None:
        self._conninfo = conninfo
        self._settings = settings
        # Slots not taken; when none is free, borrowers queue and a returned slot goes to the
        # first of them (the watchdog expires those that wait past `acquire_timeout`).
        self._free = settings.pool_size
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._idle: list[Connection] = []
        self._closed = False
        # Connections running a transaction, for the watchdog that enforces `query_timeout`
        # (cheaper than a cancel scope per transaction); started with the first transaction.
        self._running: set[Connection] = set()
        self._watching = False

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """Borrow a connection; raise `DbUnavailable` if none can be had in time."""
        conn = await self._borrow()
        try:
            yield conn
        finally:
            self._give_back(conn)

    async def _borrow(self) -> Connection:
        """A connection, its slot taken; `_give_back` returns both."""
        if self._closed:
            raise DbUnavailable("the pool is closed")
        if self._free:
            self._free -= 1
        else:
            await self._wait_for_slot()
        try:
            if self._idle:
                conn = self._idle.pop()
                conn.reused = True
                return conn
            return await Connection.connect(
                self._conninfo,
                timeout=self._settings.connect_timeout,
                prepare=self._settings.prepared_statements,
            )
        except BaseException:
            self._release_slot()
            raise

    async def _wait_for_slot(self) -> None:
        self._start_watchdog()
        waiter = _Waiter(trio.current_time() + self._settings.acquire_timeout)
        self._waiters.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self._release_slot()
            elif waiter in self._waiters:  # not yet expired by the watchdog either
                self._waiters.remove(waiter)
            raise
        if not waiter.granted:
            raise DbUnavailable("timed out waiting for a database connection")

    def _release_slot(self) -> None:
        """A slot is free: the first waiter gets it, or it goes back to the free count."""
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.granted = True
            waiter.event.set()
        else:
            self._free += 1

    def _give_back(self, conn: Connection) -> None:
        if conn.broken or self._closed:
            conn.close()
        else:
            self._idle.append(conn)
        self._release_slot()

    def _start_watchdog(self) -> None:
        if not self._watching:
            self._watching = True
            trio.lowlevel.spawn_system_task(self._watch, name="madbase.db.watchdog")

    async def run(self, tx: Transaction) -> list[DbResult] | DbError:
        """Run `tx` on a pooled connection.

        A connection that broke while idle (Postgres restarted) is replaced and the transaction
        sent again once: it cannot have reached the new server.

        Raises:
            DbUnavailable: Postgres cannot be reached.
            DbTimeout: it did not finish within the query timeout.
        """
        self._start_watchdog()
        for attempt in (1, 2):
            # `_borrow`/`_give_back` rather than `connection()`: no context-manager generator on
            # the hot path.
            conn = await self._borrow()
            conn.deadline = trio.current_time() + self._settings.query_timeout
            self._running.add(conn)
            try:
                return await conn.run(tx)
            except DbUnavailable:
                if attempt == 2 or not conn.reused:
                    raise
                self._drop_idle()
            finally:
                self._running.discard(conn)
                self._give_back(conn)
        raise AssertionError("unreachable")

    async def _watch(self) -> None:
        """Expire transactions and waits for a slot past their deadlines, checking a few times
        per timeout."""
        shortest = min(self._settings.query_timeout, self._settings.acquire_timeout)
        tick = min(1.0, max(0.01, shortest / 8))
        while not (self._closed and not self._running and not self._waiters):
            await trio.sleep(tick)
            now = trio.current_time()
            for conn in [c for c in self._running if c.deadline <= now]:
                log.warning("a transaction ran past the query timeout; closing its connection")
                conn.expire()
            # Waiters queue in deadline order (one acquire timeout for all).
            while self._waiters and self._waiters[0].deadline <= now:
                self._waiters.popleft().event.set()  # not granted: it gives up

    async def execute_script(self, sql: str) -> DbError | None:
        """Run a multi-statement script on a pooled connection (migrations)."""
        async with self.connection() as conn:
            return await conn.execute_script(sql)

    async def ping(self) -> bool:
        """True if the database answers `select 1` now."""
        try:
            result = await self.run(
                Transaction(statements=(Statement("select 1"),), read_only=True)
            )
        except (DbUnavailable, DbTimeout):
            return False
        return not isinstance(result, DbError)

    def close(self) -> None:
        """Close idle connections; borrowed ones close when returned."""
        self._closed = True
        self._drop_idle()

    def statistics(self) -> PoolStatistics:
        """Counts for metrics and tests."""
        return PoolStatistics(
            size=self._settings.pool_size,
            idle=len(self._idle),
            borrowed=self._settings.pool_size - self._free,
        )

    def _drop_idle(self) -> None:
        while self._idle:
            self._idle.pop().close()


@final
class _Waiter:
    """A borrower queued for a slot; `granted` once a returned slot is handed to it."""

    __slots__ = ("deadline", "event", "granted")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.event = trio.Event()
        self.granted = False


@final
@attrs.frozen(kw_only=True)
class PoolStatistics:
    """A snapshot of a pool's use."""

    size: int
    idle: int
    borrowed: int


async def _polled(poll: Callable[[], int], socket: Callable[[], int]) -> bool:
    """Drive one of libpq's polled exchanges (connecting, a cancel request) to its end, waiting
    for the socket as each step asks (it may change between steps); False if libpq failed it."""
    while True:
        state = poll()
        if state == pq.PollingStatus.OK:
            return True
        if state == pq.PollingStatus.READING:
            await trio.lowlevel.wait_readable(socket())
        elif state == pq.PollingStatus.WRITING:
            await trio.lowlevel.wait_writable(socket())
        else:
            return False


def _first_error(results: list[pq.abc.PGresult]) -> pq.abc.PGresult | None:
    """The failed result of a pipeline (after it, statements are skipped, not failed)."""
    for res in results:
        if res.status == ExecStatus.FATAL_ERROR:
            return res
    return None


def _stale_plan(res: pq.abc.PGresult) -> bool:
    """The error Postgres gives when a prepared statement's result type changed under it."""
    message = res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b""
    return (
        res.error_field(pq.DiagnosticField.SQLSTATE) == b"0A000"
        and b"cached plan must not change result type" in message
    )


@functools.cache
def _settings_sql(count: int) -> bytes:
    """`select set_config($1, $2, true), ...` for `count` settings."""
    calls = ", ".join(f"set_config(${2 * i + 1}, ${2 * i + 2}, true)" for i in range(count))
    return f"select {calls}".encode()


def _encode_params(st: Statement) -> list[bytes | None] | None:
    if not st.params:
        return None
    return [p.encode() if p is not None else None for p in st.params]


def pg_message(pg: pq.abc.PGconn) -> str:
    """libpq's last error message for `pg`, for exceptions and logs."""
    return pg.error_message.decode("utf-8", "replace").strip() or "connection failed"


def _ignore_notice(res: pq.abc.PGresult) -> None:
    """Server notices (for example ROLLBACK outside a transaction) are not errors."""
