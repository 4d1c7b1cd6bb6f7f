"""A worker process of `madbase serve`: `python -m madbase.runtime.worker INDEX`, started by
`madbase.runtime.supervisor`, never by hand.

Its `WorkerSpec` arrives pickled on stdin from the parent. The worker serves the project on the
inherited listening sockets against the database the parent runs, writes `ready` on stdout once it
accepts, and on SIGTERM (or SIGINT) stops the way the main process does: no more accepting,
requests in flight finish within the shutdown timeout, then the pool closes.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pickle
import signal
import socket
import sys
from typing import Final

import trio

from madbase.runtime.logs import setup_logging
from madbase.runtime.serve import open_project, serve_project
from madbase.runtime.supervisor import READY, WorkerSpec, application_name

__all__ = ["main"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG: Final = 1


def main() -> int:
    """Serve as the worker the spec on stdin describes; return the exit status."""
    # Our parent wrote this into a pipe only it and we hold.
    spec = pickle.loads(sys.stdin.buffer.read())  # noqa: S301
    assert isinstance(spec, WorkerSpec)
    if not _die_with_parent(spec.parent_pid):
        return 1
    setup_logging(spec.config.log_level, process=f"worker-{spec.index}")
    try:
        trio.run(_serve, spec)
    except Exception:
        log.exception("worker %d failed", spec.index)  # the parent restarts it, or gives up
        return 1
    return 0


def _die_with_parent(parent_pid: int) -> bool:
    """Ask for SIGKILL when the parent dies; False if it is gone already.

    PR_SET_PDEATHSIG (Linux) covers a parent killed outright; the parent-pid check covers one
    that died before the request was made.
    """
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return os.getppid() == parent_pid


def _listeners(fds: tuple[int, ...]) -> list[trio.SocketListener]:
    return [
        trio.SocketListener(trio.socket.from_stdlib_socket(socket.socket(fileno=fd))) for fd in fds
    ]


async def _serve(spec: WorkerSpec) -> None:
    stop = trio.Event()
    listeners = _listeners(spec.fds)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signals() -> None:
                async for _ in signals:
                    stop.set()

            nursery.start_soon(on_signals)
            async with (
                open_project(
                    spec.config,
                    database=spec.database,
                    application_name=application_name(spec.index),
                ) as project,
                trio.open_nursery() as server,
            ):
                await server.start(serve_project, spec.config, project, listeners, stop)
                os.write(sys.stdout.fileno(), READY)
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    sys.exit(main())
