"""The trio executor over psycopg.pq: pipelined transactions, errors as values, pool, reconnects."""

from __future__ import annotations

from pathlib import Path

import attrs
import psycopg
import pytest
import trio

from madbase.config import DbSettings
from madbase.protocol.http import Request
from madbase.protocol.sql import Statement, Transaction
from madbase.runtime.app import App
from madbase.runtime.db import (
    Connection,
    DbError,
    DbTimeout,
    DbUnavailable,
    Pool,
    PoolStatistics,
)
from madbase.runtime.embedded import EmbeddedPostgres
from madbase.runtime.migrate import migrate
from madbase.runtime.secrets import ProjectSecrets

pytestmark = pytest.mark.pg


def tx(*sql: str | Statement, **kwargs: object) -> Transaction:
    statements = tuple(s if isinstance(s, Statement) else Statement(s) for s in sql)
    return Transaction(statements=statements, **kwargs)  # type: ignore[arg-type]


async def test_pool_runs_statements_with_settings_and_params(database: str) -> None:
    pool = Pool(database, DbSettings())
    result = await pool.run(
        Transaction(
            settings=(("request.jwt.claims", '{"sub":"u1"}'), ("request.method", "GET")),
            statements=(
                Statement(
                    "select current_setting('request.jwt.claims'), current_setting('request.method'), $1::int + 1, $2::text is null",
                    ("41", None),
                ),
                Statement("select generate_series(1, 3)"),
            ),
        )
    )
    assert not isinstance(result, DbError)
    assert result[0].rows == ((b'{"sub":"u1"}', b"GET", b"42", b"t"),)
    assert result[1].rows == ((b"1",), (b"2",), (b"3",))
    assert result[1].command == "SELECT 3"
    # settings are local to the transaction
    after = await pool.run(tx("select current_setting('request.method', true)"))
    assert not isinstance(after, DbError)
    assert after[0].rows in (((None,),), ((b"",),))
    pool.close()


async def test_pool_switches_role_for_the_transaction_only(database: str) -> None:
    pool = Pool(database, DbSettings())
    await migrate(pool)
    result = await pool.run(
        Transaction(settings=(("role", "anon"),), statements=(Statement("select current_user"),))
    )
    assert not isinstance(result, DbError)
    assert result[0].rows == ((b"anon",),)
    result = await pool.run(tx("select current_user"))
    assert not isinstance(result, DbError)
    assert result[0].rows == ((b"postgres",),)
    pool.close()


async def test_pool_returns_errors_with_all_fields_and_writes_nothing(database: str) -> None:
    pool = Pool(database, DbSettings(pool_size=1))
    assert await pool.execute_script("create table t (id int primary key)") is None
    failing = """
        do $$ begin
          raise exception 'custom failure' using errcode = 'P0001', detail = 'the detail', hint = 'the hint';
        end $$
    """
    result = await pool.run(tx("insert into t values (1)", failing))
    assert result == DbError(
        sqlstate="P0001",
        message="custom failure",
        detail="the detail",
        hint="the hint",
        statement=1,  # which of the transaction's statements failed
    )
    # the insert before the failure was rolled back, and the same connection works again
    count = await pool.run(tx("select count(*) from t"))
    assert not isinstance(count, DbError)
    assert count[0].rows == ((b"0",),)
    duplicate = await pool.run(tx("insert into t values (2)", "insert into t values (2)"))
    assert isinstance(duplicate, DbError)
    assert duplicate.sqlstate == "23505"
    assert duplicate.detail == "Key (id)=(2) already exists."
    assert duplicate.statement == 1
    for rollback in (False, True):  # with the explicit BEGIN of tx=rollback too
        first = await pool.run(tx("select 1/0", "select 1", rollback=rollback))
        assert isinstance(first, DbError)
        assert first.statement == 0
    pool.close()


async def test_pool_rollback_flag_discards_writes(database: str) -> None:
    pool = Pool(database, DbSettings())
    await pool.execute_script("create table t (id int)")
    result = await pool.run(tx("insert into t values (1) returning id", rollback=True))
    assert not isinstance(result, DbError)
    assert result[0].rows == ((b"1",),)
    count = await pool.run(tx("select count(*) from t"))
    assert not isinstance(count, DbError)
    assert count[0].rows == ((b"0",),)
    pool.close()


async def test_pool_read_only_transaction_refuses_writes(database: str) -> None:
    pool = Pool(database, DbSettings())
    await pool.execute_script("create table t (id int)")
    result = await pool.run(tx("insert into t values (1)", read_only=True))
    assert isinstance(result, DbError)
    assert result.sqlstate == "25006"
    pool.close()


async def test_pool_never_exceeds_its_size(database: str) -> None:
    pool = Pool(database, DbSettings(pool_size=2))
    peak = 0

    async def one() -> None:
        nonlocal peak
        async with pool.connection():
            peak = max(peak, pool.statistics().borrowed)
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(one)
    assert peak == 2
    assert pool.statistics().idle == 2
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    assert row[0] == 2
    pool.close()


async def test_pool_times_out_a_slow_transaction_and_recovers(database: str) -> None:
    pool = Pool(database, DbSettings(pool_size=1, query_timeout=0.2))
    started = trio.current_time()
    with pytest.raises(DbTimeout):
        await pool.run(tx("select pg_sleep(5)"))
    assert 0.2 <= trio.current_time() - started < 2
    result = await pool.run(tx("select 1"))
    assert not isinstance(result, DbError)
    assert result[0].rows == ((b"1",),)
    pool.close()


async def test_pool_times_out_only_the_slow_one_of_concurrent_transactions(database: str) -> None:
    pool = Pool(database, DbSettings(pool_size=3, query_timeout=0.5))
    outcomes: dict[str, object] = {}

    async def run(name: str, sql: str) -> None:
        try:
            outcomes[name] = await pool.run(tx(sql))
        except DbTimeout as err:
            outcomes[name] = err

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "slow", "select pg_sleep(5)")
        nursery.start_soon(run, "quick", "select pg_sleep(0.1), 1")
        nursery.start_soon(run, "later", "select pg_sleep(0.3), 2")
    assert isinstance(outcomes["slow"], DbTimeout)
    for name, value in (("quick", b"1"), ("later", b"2")):
        result = outcomes[name]
        assert isinstance(result, list)
        assert result[0].rows[0][1] == value
    assert pool.statistics().borrowed == 0
    pool.close()


def sleepers(conninfo: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity"
            " where datname = current_database() and wait_event = 'PgSleep'"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_pool_cancelled_transaction_cancels_its_statement(database: str) -> None:
    pool = Pool(database, DbSettings(pool_size=1))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.run, tx("select pg_sleep(60)"))
        with trio.fail_after(10):
            while not await trio.to_thread.run_sync(sleepers, database):
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    # Cancelled server-side, not merely left behind with its connection closed.
    with trio.fail_after(10):  # far below the 60 s the statement would run
        while await trio.to_thread.run_sync(sleepers, database):
            await trio.sleep(0.02)
    assert pool.statistics() == PoolStatistics(size=1, idle=0, borrowed=0)  # not reused
    result = await pool.run(tx("select 1"))
    assert not isinstance(result, DbError)
    pool.close()


class _BlockingCancel:
    def __init__(self) -> None:
        self.sent = 0

    def cancel(self) -> None:
        self.sent += 1


class _OldLibpq:
    """A connection of a libpq without PQcancelStart (before 17)."""

    def __init__(self) -> None:
        self.request = _BlockingCancel()

    def cancel_conn(self) -> object:
        raise psycopg.NotSupportedError("cancel_conn requires libpq 17")

    def get_cancel(self) -> _BlockingCancel:
        return self.request


async def test_connection_cancel_falls_back_to_pqcancel_in_a_thread() -> None:
    old = _OldLibpq()
    conn = Connection(old)  # type: ignore[arg-type]
    assert await conn.cancel()
    assert old.request.sent == 1


async def test_pool_hands_returned_connections_to_waiters_in_order(database: str) -> None:
    pool = Pool(database, DbSettings(pool_size=1))
    order: list[int] = []

    async def run(i: int) -> None:
        result = await pool.run(tx(f"select {i}"))
        assert not isinstance(result, DbError)
        order.append(int(result[0].rows[0][0] or b"0"))

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(run, i)
            await trio.sleep(0)  # queued in this order
    assert order == list(range(20))
    assert pool.statistics().borrowed == 0
    pool.close()


async def test_pool_waiter_cancelled_while_queued_takes_no_slot(database: str) -> None:
    pool = Pool(database, DbSettings(pool_size=1))
    async with pool.connection(), trio.open_nursery() as nursery:
        nursery.start_soon(pool.run, tx("select 1"))
        await trio.sleep(0.05)  # queued behind the borrowed connection
        nursery.cancel_scope.cancel()
    assert pool.statistics().borrowed == 0
    with trio.fail_after(5):
        result = await pool.run(tx("select 2"))
    assert not isinstance(result, DbError)
    assert result[0].rows == ((b"2",),)
    pool.close()


async def test_pool_waiting_for_a_connection_times_out(database: str) -> None:
    pool = Pool(database, DbSettings(pool_size=1, acquire_timeout=0.1))
    async with pool.connection():
        with pytest.raises(DbUnavailable):
            await pool.run(tx("select 1"))
    pool.close()


async def test_pool_unreachable_database_is_unavailable(tmp_path: Path) -> None:
    pool = Pool(f"host={tmp_path} port=5432 user=postgres dbname=x", DbSettings(connect_timeout=1))
    with pytest.raises(DbUnavailable):
        await pool.run(tx("select 1"))
    assert await pool.ping() is False
    pool.close()


async def test_health_follows_a_postgres_restart(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "data", fsync=False)
    settings = DbSettings(connect_timeout=1, acquire_timeout=2)
    pool = Pool(pg.conninfo, settings)
    app = App(ProjectSecrets.load_or_create(tmp_path), pool)
    health = Request(method="GET", target="/health")

    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()
        stopped = trio.Event()

        async def run_pg(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with scope:
                    await pg.run(task_status=task_status)
            finally:
                stopped.set()

        await nursery.start(run_pg)
        assert (await app.handle(health)).status == 200
        await pool.execute_script("create table kept (v text); insert into kept values ('before')")
        scope.cancel()  # stop Postgres (fast shutdown)
        # Stopped, data directory unlocked: on a loaded machine that may take longer than a moment.
        with trio.fail_after(60):
            await stopped.wait()
        stopped = trio.Event()
        down = await app.handle(health)
        assert down.status == 503
        assert b"unreachable" in down.body

        scope = trio.CancelScope()
        await nursery.start(run_pg)
        # the idle connection from before the restart is dead: the pool replaces it
        assert (await app.handle(health)).status == 200
        rows = await pool.run(tx("select v from kept"))
        assert not isinstance(rows, DbError)
        assert rows[0].rows == ((b"before",),)
        scope.cancel()
    pool.close()


async def test_settings_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        DbSettings().pool_size = 3  # type: ignore[misc]


async def test_pool_session_settings_do_not_leak_to_the_next_transaction(database: str) -> None:
    pool = Pool(database, DbSettings(pool_size=1))
    assert (
        await pool.execute_script(
            "create function leak(v text) returns text language sql "
            "as $$ select set_config('app.leak', v, false) $$"
        )
        is None
    )
    assert not isinstance(await pool.run(tx("select leak('first')")), DbError)
    after = await pool.run(tx("select current_setting('app.leak', true)"))
    assert not isinstance(after, DbError)
    assert after[0].rows in (((None,),), ((b"",),))
    # also when the transaction that set it then failed
    failed = await pool.run(tx("select leak('second')", "select 1/0"))
    assert isinstance(failed, DbError)
    # and when it failed at COMMIT (a deferred constraint), after the settings were made
    await pool.execute_script(
        "create table parent (id int primary key);"
        "create table child (pid int references parent deferrable initially deferred)"
    )
    at_commit = await pool.run(tx("select leak('third')", "insert into child values (1)"))
    assert isinstance(at_commit, DbError)
    assert at_commit.sqlstate == "23503"
    after = await pool.run(tx("select current_setting('app.leak', true)"))
    assert not isinstance(after, DbError)
    assert after[0].rows in (((None,),), ((b"",),))
    pool.close()


async def test_pool_rollback_and_read_only_keep_settings_and_recover_from_errors(
    database: str,
) -> None:
    pool = Pool(database, DbSettings(pool_size=1))
    await pool.execute_script(
        "create table t (id int primary key);"
        "create function leak(v text) returns text language sql "
        "as $$ select set_config('app.leak', v, false) $$"
    )
    settings = (("request.method", "GET"),)
    read = await pool.run(
        tx(
            "select current_setting('request.method'), current_setting('transaction_read_only')",
            settings=settings,
            read_only=True,
        )
    )
    assert not isinstance(read, DbError)
    assert read[0].rows == ((b"GET", b"on"),)
    # tx=rollback, failing half-way: the explicit block is ended and nothing leaks or stays.
    failed = await pool.run(
        tx("insert into t values (1)", "select leak('x')", "select 1/0", rollback=True)
    )
    assert isinstance(failed, DbError)
    assert failed.sqlstate == "22012"
    after = await pool.run(
        tx(
            "select count(*), current_setting('app.leak', true), current_setting('transaction_read_only') from t"
        )
    )
    assert not isinstance(after, DbError)
    count, leaked, read_only = after[0].rows[0]
    assert count == b"0"
    assert leaked in (None, b"")
    assert read_only == b"off"
    # Writes commit without an explicit BEGIN/COMMIT.
    wrote = await pool.run(tx("insert into t values (2)", "insert into t values (3)"))
    assert not isinstance(wrote, DbError)
    half = await pool.run(tx("insert into t values (4)", "insert into t values (2)"))
    assert isinstance(half, DbError)
    assert half.sqlstate == "23505"
    rows = await pool.run(tx("select array_agg(id order by id)::text from t"))
    assert not isinstance(rows, DbError)
    assert rows[0].rows == ((b"{2,3}",),)
    pool.close()


async def test_statements_are_prepared_once_per_connection(database: str) -> None:
    pool = Pool(database, DbSettings(pool_size=1))
    await pool.execute_script("create table t (id int primary key, name text)")
    lookup = Statement("select name from t where id = $1", ("1",))
    for _ in range(3):
        assert not isinstance(
            await pool.run(tx("insert into t values (1, 'a') on conflict do nothing")), DbError
        )
        assert not isinstance(await pool.run(Transaction(statements=(lookup,))), DbError)
    count = await pool.run(
        tx(
            "select count(*) from pg_prepared_statements where statement = 'select name from t where id = $1'"
        )
    )
    assert not isinstance(count, DbError)
    assert count[0].rows == ((b"1",),)
    # A statement that fails to prepare reports its own error and prepares nothing.
    bad = await pool.run(tx("select nope from t"))
    assert isinstance(bad, DbError)
    assert bad.sqlstate == "42703"
    again = await pool.run(tx("select nope from t"))
    assert isinstance(again, DbError)
    assert again.sqlstate == "42703"
    # A table whose columns change under a prepared `select *`: sent again, unprepared first.
    star = Statement("select * from t order by id")
    first = await pool.run(Transaction(statements=(star,)))
    assert not isinstance(first, DbError)
    assert first[0].rows == ((b"1", b"a"),)
    await pool.execute_script("alter table t add column extra int default 7")
    after = await pool.run(Transaction(statements=(star,)))
    assert not isinstance(after, DbError)
    assert after[0].rows == ((b"1", b"a", b"7"),)
    pool.close()


async def test_more_statements_than_the_prepared_cap_still_run(database: str) -> None:
    pool = Pool(database, DbSettings(pool_size=1))
    for n in range(300):
        result = await pool.run(tx(f"select {n}"))
        assert not isinstance(result, DbError)
        assert result[0].rows == ((str(n).encode(),),)
    count = await pool.run(tx("select count(*) from pg_prepared_statements"))
    assert not isinstance(count, DbError)
    assert int(count[0].rows[0][0] or b"0") <= 256 + 4
    pool.close()


async def test_prepared_statements_can_be_turned_off(database: str) -> None:
    pool = Pool(database, DbSettings(pool_size=1, prepared_statements=False))
    for _ in range(3):
        result = await pool.run(tx("select 41 + 1"))
        assert not isinstance(result, DbError)
        assert result[0].rows == ((b"42",),)
    count = await pool.run(tx("select count(*) from pg_prepared_statements"))
    assert not isinstance(count, DbError)
    assert count[0].rows == ((b"0",),)
    pool.close()


async def test_connection_waits_for_notifications_and_reports_a_broken_one(database: str) -> None:
    conn = await Connection.connect(database, timeout=5, prepare=False)
    try:
        assert await conn.execute_script("LISTEN one; LISTEN two") is None
        with psycopg.connect(database, autocommit=True) as other:
            other.execute("select pg_notify('one', 'a'), pg_notify('elsewhere', 'b')")
            other.execute("notify two, 'c'")
            received: list[tuple[str, str]] = []
            with trio.fail_after(10):
                while len(received) < 2:
                    received += await conn.wait_notifications()
            assert received == [("one", "a"), ("two", "c")]  # not channels it did not LISTEN on
            pid = conn._pg.backend_pid
            other.execute("select pg_terminate_backend(%s)", (pid,))
        with trio.fail_after(10), pytest.raises(DbUnavailable):
            await conn.wait_notifications()
        assert conn.broken
    finally:
        conn.close()


async def test_pool_query_timeout_cancels_the_statement_in_the_server(database: str) -> None:
    """A transaction past the query timeout fails with DbTimeout at once, and its statement stops
    in Postgres too (a closed socket alone leaves a sleeping backend running to the end)."""
    pool = Pool(database, DbSettings(pool_size=1, query_timeout=0.3))
    try:
        with pytest.raises(DbTimeout):
            await pool.run(tx("select pg_sleep(60) /* timeout-cancel */"))
        with psycopg.connect(database, autocommit=True) as watcher:
            with trio.fail_after(20):
                while watcher.execute(
                    "select count(*) from pg_stat_activity"
                    " where query like '%timeout-cancel%' and pid <> pg_backend_pid()"
                ).fetchone() != (0,):
                    await trio.sleep(0.1)
        result = await pool.run(tx("select 1"))
        assert not isinstance(result, DbError)
    finally:
        pool.close()
