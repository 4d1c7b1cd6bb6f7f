"""The worker processes of `madbase serve` with `workers` > 1: started, watched, restarted, stopped.

Theory of operation. The main process has bound the listening sockets, started the database and
applied the migrations; it serves on those sockets itself and runs `Workers.run`, which starts
`workers - 1` processes (`python -m madbase.runtime.worker`). Each child inherits the listening
sockets' descriptors (`pass_fds`) and accepts on the very same sockets: one accept queue, so a
connection waits in it whichever process takes it, and a worker that dies loses none that are
queued. (SO_REUSEPORT, a socket per process, measured no better balanced here, resets the
connections queued on a dying worker's socket and lets any process of the same user join the
port.) The child learns everything else from a `WorkerSpec` pickled on its stdin, opens the
project against the running database (no second Postgres, no migrations), and writes `ready` on
its stdout once it serves.

Children are spawned from the event loop's thread (not a worker thread, as trio's `open_process`
would): the kernel's parent-death signal, which each child asks for first thing, fires when the
thread that forked it exits. They run in a session of their own, so a terminal's Ctrl-C reaches
only the main process, which stops them in order.

A child that exits unexpectedly is logged and started again after `restart_delay`; more than
`max_exits` unexpected exits within `exit_window` seconds (a worker that cannot start, say) stop
the whole server with `WorkersFailed`. `begin_shutdown` sends SIGTERM to every child: each one
stops accepting and finishes its requests in flight, as the main process does. A child still
running when the caller's deadline cancels `run` is killed.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Final, final

import attrs
import trio

from madbase.config import Config
from madbase.runtime.embedded import wait_exit

__all__ = ["READY", "WORKER_COMMAND", "WorkerSpec", "Workers", "WorkersFailed", "application_name"]

log = logging.getLogger(__name__)

# What a child writes on its stdout once it serves.
READY: Final = b"ready\n"
WORKER_COMMAND: Final = (sys.executable, "-m", "madbase.runtime.worker")
# A worker imports MadBase, connects and loads the schema cache: seconds, not minutes.
_START_TIMEOUT: Final = 60.0


class WorkersFailed(RuntimeError):
    """Worker processes keep exiting; the server stops rather than restart them forever."""


def application_name(index: int) -> str:
    """The `application_name` of process `index`'s connections (0: the main process).

    The main process keeps plain `madbase`, whatever the number of workers.
    """
    return "madbase" if index == 0 else f"madbase/worker-{index}"


@final
@attrs.frozen(kw_only=True)
class WorkerSpec:
    """What worker process `index` needs, sent pickled on its stdin by its parent."""

    index: int
    config: Config = attrs.field(repr=False)
    # libpq URL of the database the main process started and migrated.
    database: str = attrs.field(repr=False)
    # The inherited listening sockets.
    fds: tuple[int, ...]
    parent_pid: int


@final
class Workers:
    """Worker processes 1 to `config.workers - 1`, serving on `listeners`' sockets."""

    def __init__(
        self,
        config: Config,
        database: str,
        fds: Sequence[int],
        *,
        command: Sequence[str] = WORKER_COMMAND,
        restart_delay: float = 0.5,
        max_exits: int = 5,
        exit_window: float = 60.0,
    ) -> None:
        self._config = config
        self._database = database
        self._fds = tuple(fds)
        self._command = tuple(command)
        self._restart_delay = restart_delay
        self._max_exits = max_exits
        self._exit_window = exit_window
        self._stopping = False
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._exits: collections.deque[float] = collections.deque()
        self.restarts = 0

    @property
    def stopping(self) -> bool:
        """True once `begin_shutdown` was called."""
        return self._stopping

    def pids(self) -> dict[int, int]:
        """Running worker processes: index -> pid."""
        return {i: p.pid for i, p in self._processes.items() if p.returncode is None}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the workers, report once each serves, keep them running until they stop.

        Returns once `begin_shutdown` was called and every worker exited.

        Raises:
            WorkersFailed: too many unexpected exits (before or after all were ready).
        """
        indexes = range(1, self._config.workers)
        ready = {index: trio.Event() for index in indexes}
        async with trio.open_nursery() as nursery:
            for index in indexes:
                nursery.start_soon(self._keep_running, index, ready[index])
            for event in ready.values():
                await event.wait()
            log.info("all %d workers ready", len(ready))
            task_status.started()

    def begin_shutdown(self) -> None:
        """Ask every worker to stop (SIGTERM); none is restarted from now on."""
        self._stopping = True
        for process in self._processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)

    async def _keep_running(self, index: int, ready: trio.Event) -> None:
        while not self._stopping:
            process, spec_stream, ready_stream = self._spawn(index)
            try:
                if await self._start(index, process, spec_stream, ready_stream):
                    ready.set()
                else:
                    process.kill()  # silent or gone: make sure, then count it as an exit
                code = await wait_exit(process)
            finally:
                del self._processes[index]
                with trio.CancelScope(shield=True):
                    await ready_stream.aclose()
                    if process.returncode is None:  # cancelled: the stop deadline passed
                        log.warning("worker %d (pid %d) did not stop in time", index, process.pid)
                        process.kill()
                        await wait_exit(process)
            if self.stopping:
                if code != 0:
                    log.warning(
                        "worker %d (pid %d) stopped with status %d", index, process.pid, code
                    )
                return
            log.error(
                "worker %d (pid %d) exited unexpectedly with status %d; restarting it",
                index,
                process.pid,
                code,
            )
            self._count_exit()
            self.restarts += 1
            await trio.sleep(self._restart_delay)

    def _spawn(
        self, index: int
    ) -> tuple[subprocess.Popen[bytes], trio.lowlevel.FdStream, trio.lowlevel.FdStream]:
        spec_read, spec_write = os.pipe()
        ready_read, ready_write = os.pipe()
        try:
            # From this (the event loop's) thread: see the module docstring.
            process = subprocess.Popen(
                [*self._command, str(index)],
                stdin=spec_read,
                stdout=ready_write,
                pass_fds=self._fds,
                start_new_session=True,
            )
        except BaseException:
            for fd in (spec_write, ready_read):
                os.close(fd)
            raise
        finally:
            os.close(spec_read)
            os.close(ready_write)
        self._processes[index] = process
        log.info("worker %d started (pid %d)", index, process.pid)
        return process, trio.lowlevel.FdStream(spec_write), trio.lowlevel.FdStream(ready_read)

    async def _start(
        self,
        index: int,
        process: subprocess.Popen[bytes],
        spec_stream: trio.lowlevel.FdStream,
        ready_stream: trio.lowlevel.FdStream,
    ) -> bool:
        """Send the spec, wait for `ready`; False if the worker died or stayed silent."""
        spec = WorkerSpec(
            index=index,
            config=self._config,
            database=self._database,
            fds=self._fds,
            parent_pid=os.getpid(),
        )
        async with spec_stream:
            try:
                await spec_stream.send_all(pickle.dumps(spec))
            except trio.BrokenResourceError:
                return False  # it died already; its exit status tells
        answer = b""
        with trio.move_on_after(_START_TIMEOUT):
            while not answer.endswith(b"\n"):
                chunk = await ready_stream.receive_some(64)
                if not chunk:
                    return False
                answer += chunk
            if answer == READY:
                log.info("worker %d ready (pid %d)", index, process.pid)
                return True
            log.error("worker %d (pid %d) said %r instead of ready", index, process.pid, answer)
            return False
        log.error(
            "worker %d (pid %d) was not ready within %g s", index, process.pid, _START_TIMEOUT
        )
        return False

    def _count_exit(self) -> None:
        now = trio.current_time()
        self._exits.append(now)
        while self._exits[0] < now - self._exit_window:
            self._exits.popleft()
        if len(self._exits) > self._max_exits:
            message = (
                f"worker processes exited unexpectedly {len(self._exits)} times within "
                f"{self._exit_window:g} s; stopping the server"
            )
            log.error("%s", message)
            raise WorkersFailed(message)
