"""The embedded PostgreSQL server: lifetime, leftovers, locking, configuration."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psycopg
import pytest
import trio

from madbase.runtime.embedded import EmbeddedPostgres, EmbeddedPostgresError, binaries_dir

pytestmark = pytest.mark.pg


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


async def test_embedded_outlives_trio_worker_threads(tmp_path: Path) -> None:
    # Regression: the server was forked from a trio worker thread with PR_SET_PDEATHSIG, so it
    # got a shutdown signal when that thread retired after 10 s idle.
    pg = EmbeddedPostgres(tmp_path, fsync=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(pg.run)
        pid = pg.pid
        assert pid is not None
        await trio.sleep(12)
        assert alive(pid)
        with psycopg.connect(pg.conninfo) as conn:
            assert conn.execute("show wal_level").fetchone() == ("logical",)
        nursery.cancel_scope.cancel()
    assert not alive(pid)


async def test_embedded_stops_a_leftover_server_of_a_killed_madbase(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pg = EmbeddedPostgres(data_dir, fsync=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(pg.run)
        nursery.cancel_scope.cancel()
    # a server started by hand on the same cluster plays the orphan
    orphan = subprocess.Popen(
        [
            str(binaries_dir() / "postgres"),
            "-D",
            str(data_dir / "pg"),
            "-c",
            "listen_addresses=",
            "-c",
            f"unix_socket_directories={pg.socket_dir}",
        ],
        user="madbase" if os.geteuid() == 0 else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if (data_dir / "pg" / "postmaster.pid").exists():
                break
            await trio.sleep(0.05)
        again = EmbeddedPostgres(data_dir, fsync=False)
        async with trio.open_nursery() as nursery:
            await nursery.start(again.run)
            assert orphan.poll() is not None  # stopped for us
            with psycopg.connect(again.conninfo) as conn:
                assert conn.execute("select 1").fetchone() == (1,)
            nursery.cancel_scope.cancel()
    finally:
        if orphan.poll() is None:
            orphan.send_signal(signal.SIGINT)
        orphan.wait(30)


async def test_embedded_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "something.txt").write_text("not a cluster")
    pg = EmbeddedPostgres(tmp_path, fsync=False)
    with pytest.RaisesGroup(
        pytest.RaisesExc(EmbeddedPostgresError, match="neither empty"), flatten_subgroups=True
    ):
        async with trio.open_nursery() as nursery:
            await nursery.start(pg.run)


def test_embedded_uses_a_short_socket_path_for_deep_directories(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    pg = EmbeddedPostgres(deep)
    assert len(str(pg.socket_dir)) < 100
    assert pg.socket_dir != deep / "run"
    assert f"host={pg.socket_dir}" in pg.conninfo
    assert EmbeddedPostgres(deep).socket_dir == pg.socket_dir  # stable per data directory
