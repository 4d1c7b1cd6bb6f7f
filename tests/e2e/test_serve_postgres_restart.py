"""`madbase serve` keeps its embedded Postgres running: a killed or outside-restarted server comes back.

While the database is down, requests get 503; afterwards exactly one postmaster serves the data
directory, MadBase's own child, and stopping MadBase leaves none.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from madbase.runtime.embedded import SYSTEM_USER, binaries_dir
from tests.e2e.test_serve import Served, postgres_processes, start

pytestmark = pytest.mark.pg

# Generous: a restart after a kill runs crash recovery on a shared, busy machine.
WAIT = 90.0


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def wait_for(served: Served, status: int, path: str = "/health") -> list[int]:
    """Poll `path` until it answers `status`; every status seen on the way."""
    seen: list[int] = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert served.proc.poll() is None, f"madbase exited:\n{served.log_path.read_text()}"
        got = httpx.get(served.url + path, headers={"apikey": served.anon_key}, timeout=30)
        seen.append(got.status_code)
        if got.status_code == status:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{path} never answered {status}; seen {seen}")


def wait_for_own_postmaster(served: Served, data_dir: Path, old: int) -> int:
    """The pid of the one postmaster on `data_dir` once it is a new child of MadBase."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        pids = postgres_processes(data_dir)
        if len(pids) == 1 and pids[0] != old and parent_of(pids[0]) == served.proc.pid:
            return pids[0]
        time.sleep(0.05)
    raise AssertionError(f"postmasters on {data_dir}: {postgres_processes(data_dir)}")


def create_notes(served: Served) -> None:
    """A table anon may read, once /rest/v1 knows it."""
    with psycopg.connect(served.db_url, autocommit=True) as conn:
        conn.execute("create table public.notes (id int primary key, body text)")
        conn.execute("insert into public.notes values (1, 'kept')")
        conn.execute("grant select on public.notes to anon")
        # The tests' servers run with synchronous_commit off (MADBASE_PG_FSYNC=false): write the
        # WAL out, so that killing the server cannot take these commits with it.
        conn.execute("checkpoint")
    wait_for(served, 200, "/rest/v1/notes")


def assert_serves_rest(served: Served) -> None:
    notes = httpx.get(served.url + "/rest/v1/notes", headers={"apikey": served.anon_key})
    assert notes.status_code == 200, notes.text
    assert notes.json() == [{"id": 1, "body": "kept"}]


def test_serve_restarts_a_killed_postgres_and_answers_503_meanwhile(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    served = start(data_dir)
    busy: psycopg.Connection[tuple[object, ...]] | None = None
    try:
        [postmaster] = postgres_processes(data_dir)
        create_notes(served)
        # A backend busy in a loop never notices its postmaster's death and keeps the old shared
        # memory attached; PostgreSQL refuses to start until it is gone. So the outage lasts
        # until this test ends that backend, whatever the machine's speed.
        busy = psycopg.connect(served.db_url, autocommit=True)
        row = busy.execute("select pg_backend_pid()").fetchone()
        assert row is not None
        backend = int(str(row[0]))
        busy.pgconn.send_query(b"do $$ begin loop perform 1; end loop; end $$")
        os.kill(postmaster, signal.SIGKILL)

        wait_for(served, 503)
        outage = httpx.get(served.url + "/rest/v1/notes", headers={"apikey": served.anon_key})
        assert outage.status_code == 503, outage.text
        os.kill(backend, signal.SIGKILL)

        seen = wait_for(served, 200)
        assert set(seen) <= {200, 503}, seen
        wait_for_own_postmaster(served, data_dir, postmaster)
        assert_serves_rest(served)
        assert "restarting it" in served.log_path.read_text()
    finally:
        if busy is not None:
            with contextlib.suppress(psycopg.Error):
                busy.close()
        assert served.stop() == 0
    assert postgres_processes(data_dir) == []


def test_serve_takes_its_cluster_back_after_an_outside_pg_ctl_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    served = start(data_dir)
    try:
        [postmaster] = postgres_processes(data_dir)
        create_notes(served)
        # pg_ctl stops our server and starts one of its own, not MadBase's child; MadBase stops
        # that one and starts its own again (embedded.py, "Supervision"). pg_ctl may then report
        # that its server did not start: that is the point.
        root = os.geteuid() == 0
        pg_ctl_log = tmp_path / "pg_ctl.log"
        with pg_ctl_log.open("wb") as output:
            subprocess.run(
                [
                    str(binaries_dir() / "pg_ctl"),
                    "restart",
                    "--pgdata",
                    str(data_dir / "pg"),
                    "--mode",
                    "fast",
                    "--timeout",
                    "60",
                ],
                # As the cluster's owner: pg_ctl refuses to run as root.
                user=SYSTEM_USER if root else None,
                group=SYSTEM_USER if root else None,
                extra_groups=[] if root else None,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                cwd="/",
                timeout=120,
                check=False,
            )
        wait_for_own_postmaster(served, data_dir, postmaster)
        seen = wait_for(served, 200)
        assert set(seen) <= {200, 503}, seen
        assert_serves_rest(served)
    finally:
        assert served.stop() == 0
    assert postgres_processes(data_dir) == []
