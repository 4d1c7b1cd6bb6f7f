"""Bootstrap migrations: apply `madbase/sql/migrations/*.sql` in order, each once, under a lock.

Applied versions are recorded in `madbase.schema_migrations`; a session-level advisory lock lets
several MadBase processes start against one database at once. Each file runs in its own
transaction together with its bookkeeping row, so a failed migration leaves nothing behind.
"""

from __future__ import annotations

import importlib.resources
import logging
from typing import Final, final

import attrs

from madbase.protocol.sql import Statement, Transaction, quote_literal
from madbase.runtime.db import Connection, DbError, Pool

__all__ = ["Migration", "MigrationError", "load_migrations", "migrate"]

log = logging.getLogger(__name__)

# pg_advisory_lock key: "madbase" in ASCII, as a bigint.
_LOCK_KEY: Final = 0x6D6164626173
_BOOKKEEPING: Final = """
create schema if not exists madbase;
create table if not exists madbase.schema_migrations (
  version text primary key,
  applied_at timestamptz not null default now()
);
"""


class MigrationError(RuntimeError):
    """A migration failed; the message names it and carries Postgres's error."""


@final
@attrs.frozen
class Migration:
    """One migration file: `version` is its name without `.sql`."""

    version: str
    sql: str


def load_migrations() -> tuple[Migration, ...]:
    """The packaged migrations, in version order."""
    root = importlib.resources.files("madbase.sql").joinpath("migrations")
    found = [
        Migration(entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"))
        for entry in root.iterdir()
        if entry.name.endswith(".sql")
    ]
    return tuple(sorted(found, key=lambda m: m.version))


async def migrate(pool: Pool, migrations: tuple[Migration, ...] | None = None) -> list[str]:
    """Apply the migrations not yet applied; return the versions applied now."""
    todo = load_migrations() if migrations is None else migrations
    async with pool.connection() as conn:
        await _script(conn, f"select pg_advisory_lock({_LOCK_KEY})", "lock")
        try:
            await _script(conn, _BOOKKEEPING, "bookkeeping")
            result = await conn.run(
                Transaction(
                    statements=(Statement("select version from madbase.schema_migrations"),)
                )
            )
            if isinstance(result, DbError):
                raise MigrationError(f"reading applied migrations failed: {result.message}")
            done = {row[0].decode() for row in result[0].rows if row[0] is not None}
            applied = []
            for migration in todo:
                if migration.version in done:
                    continue
                log.info("applying migration %s", migration.version)
                await _script(  # the version goes through quote_literal; scripts take no parameters
                    conn,
                    "begin;\n"  # noqa: S608
                    + migration.sql
                    + "\n;insert into madbase.schema_migrations (version) values ("
                    + quote_literal(migration.version)
                    + ");\ncommit;",
                    migration.version,
                )
                applied.append(migration.version)
            return applied
        finally:
            await _script(conn, f"select pg_advisory_unlock({_LOCK_KEY})", "unlock")


async def _script(conn: Connection, sql: str, name: str) -> None:
    error = await conn.execute_script(sql)
    if error is not None:
        await conn.execute_script("rollback")
        raise MigrationError(
            f"migration {name} failed: {error.message} (SQLSTATE {error.sqlstate})"
        )
