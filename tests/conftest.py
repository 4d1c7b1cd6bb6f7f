"""Shared fixtures: one embedded PostgreSQL server per test session, started as `madbase serve` does.

The server runs in its own thread with its own trio loop (pytest-trio fixtures live for one test),
in a temporary directory, with fsync off. If it cannot start the session fails: nothing skips.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import trio

from madbase.runtime.embedded import EmbeddedPostgres

# Subprocesses the tests start (`madbase serve` and its workers, hypercorn) import madbase from
# this checkout, like the tests themselves, not from a copy `pip install .` made earlier.
_ROOT = str(Path(__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p
)


class PgServer:
    """The session's embedded server, with helpers to make throwaway databases."""

    def __init__(self, pg: EmbeddedPostgres) -> None:
        self.pg = pg
        self._counter = 0

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.pg.socket_dir} port=5432 user=postgres dbname={dbname}"

    def url(self, dbname: str) -> str:
        return self.pg.url.replace("/postgres?", f"/{dbname}?")

    def create_database(self) -> str:
        """A new empty database; its name."""
        self._counter += 1
        name = f"test_{self._counter}"
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f"drop database if exists {name}")
            conn.execute(f"create database {name}")
        return name


def _run_in_thread(pg: EmbeddedPostgres) -> tuple[threading.Thread, threading.Event]:
    started = threading.Event()
    stop = threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(pg.run)
            started.set()
            await trio.to_thread.run_sync(stop.wait)
            nursery.cancel_scope.cancel()

    def target() -> None:
        try:
            trio.run(main)
        except BaseException as err:  # noqa: BLE001 - reported by the fixture
            failure.append(err)
            started.set()

    thread = threading.Thread(target=target, name="embedded-postgres", daemon=True)
    thread.start()
    started.wait(120)
    if failure:
        raise RuntimeError(f"embedded PostgreSQL did not start: {failure[0]!r}") from failure[0]
    return thread, stop


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    data_dir: Path = tmp_path_factory.mktemp("pg")
    pg = EmbeddedPostgres(data_dir, fsync=False)
    thread, stop = _run_in_thread(pg)
    try:
        yield PgServer(pg)
    finally:
        stop.set()
        thread.join(120)


@pytest.fixture
def database(pg_server: PgServer) -> str:
    """A fresh database on the session server; its libpq conninfo."""
    return pg_server.conninfo(pg_server.create_database())
