"""`madbase serve --workers 2`: two processes on one socket, one database, stopped together."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.test_serve import keys_json, postgres_processes, start

pytestmark = pytest.mark.pg

TABLE = """
create table public.items (id int primary key, name text not null);
insert into public.items select i, 'item ' || i from generate_series(1, 50) i;
alter table public.items enable row level security;
create policy readable on public.items for select to anon using (true);
"""


def workers_of(pid: int) -> list[int]:
    """PIDs of the `madbase.runtime.worker` children of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if ppid == pid and b"madbase.runtime.worker" in cmdline:
            found.append(int(entry.name))
    return found


def exists(pid: int) -> bool:
    """`pid` runs (a zombie left to an init that does not reap counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def pool_application_names(db_url: str) -> set[str]:
    """application_name of the MadBase pool connections (not the schema cache's LISTEN one)."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "select application_name from pg_stat_activity"
            " where application_name like 'madbase%' and query not like 'LISTEN%'"
        ).fetchall()
    return {row[0] for row in rows}


def read_items(url: str, key: str, count: int) -> list[int]:
    """`count` REST reads, each on a connection of its own, 16 at a time; their statuses."""

    def one(i: int) -> int:
        response = client.get(f"{url}/rest/v1/items", params={"id": f"eq.{i % 50 + 1}"})
        assert response.status_code != 200 or response.json() == [
            {"id": i % 50 + 1, "name": f"item {i % 50 + 1}"}
        ]
        return response.status_code

    # No keep-alive: a connection per request.
    limits = httpx.Limits(max_keepalive_connections=0)
    with (
        httpx.Client(headers={"apikey": key}, limits=limits) as client,
        ThreadPoolExecutor(16) as pool,
    ):
        return list(pool.map(one, range(count)))


def test_serve_workers_share_the_socket_restart_and_stop_together(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start(data_dir, "--workers", "2")
    try:
        # The banner comes once the worker serves too.
        assert "all 1 workers ready" in server.log_path.read_text()
        (first,) = workers_of(server.proc.pid)
        db_url = keys_json(data_dir)["db_url"]
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(TABLE)
        # Every process reloads its schema cache on the NOTIFY the DDL sent.
        deadline = time.monotonic() + 30
        names: set[str] = set()
        while names != {"madbase", "madbase/worker-1"}:
            assert time.monotonic() < deadline, names
            statuses = read_items(server.url, server.anon_key, 64)
            if all(status == 200 for status in statuses):
                names = pool_application_names(db_url)
            else:
                time.sleep(0.1)  # a process still had the old schema
        assert set(read_items(server.url, server.anon_key, 200)) == {200}

        # A worker killed outright is replaced; the server answers all along.
        server_log = server.log_path.read_text()
        assert "exited unexpectedly" not in server_log
        os.kill(first, signal.SIGKILL)
        assert set(read_items(server.url, server.anon_key, 50)) == {200}
        deadline = time.monotonic() + 30
        while not (replaced := [pid for pid in workers_of(server.proc.pid) if pid != first]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (second,) = replaced
        assert not exists(first)
        assert f"worker 1 (pid {first}) exited unexpectedly with status -9" in (
            server.log_path.read_text()
        )
        while f"worker 1 ready (pid {second})" not in server.log_path.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert set(read_items(server.url, server.anon_key, 100)) == {200}

        # SIGTERM stops every process, Postgres last, with status 0.
        assert server.stop(signal.SIGTERM) == 0
    finally:
        if server.proc.poll() is None:
            server.stop(signal.SIGKILL)
    assert not exists(second)
    assert postgres_processes(data_dir) == []
    assert workers_of(server.proc.pid) == []


def test_serve_workers_killed_main_process_leaves_no_worker_nor_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start(data_dir, "--workers", "2")
    (worker,) = workers_of(server.proc.pid)
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while (exists(worker) or postgres_processes(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not exists(worker)
    assert postgres_processes(data_dir) == []
