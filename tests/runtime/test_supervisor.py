"""Worker supervision with stand-in worker processes: readiness, restarts, the give-up rule, stop."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from madbase.config import Config
from madbase.runtime.supervisor import Workers, WorkersFailed, application_name

# A stand-in for `python -m madbase.runtime.worker`: reads its spec as the real one does, then
# behaves as `mode` says. SIGTERM's default action ends it, as a real worker ends on SIGTERM.
FAKE_WORKER = """
import os, pickle, signal, sys, time
mode, index = sys.argv[1], int(sys.argv[2])
spec = pickle.loads(sys.stdin.buffer.read())
assert spec.index == index and spec.database == "postgresql:///fake", spec
if mode == "fail":  # a worker that dies at start, for the restart and give-up tests
    sys.exit(3)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
for fd in spec.fds:
    os.fstat(fd)  # the listening sockets were inherited
if mode == "silent":
    sys.stdout.write("hello\\n")
    sys.stdout.flush()
else:
    sys.stdout.write("ready\\n")
    sys.stdout.flush()
time.sleep(600)
"""


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def workers(sock: socket.socket, mode: str, count: int = 3, **kwargs: float) -> Workers:
    return Workers(
        Config(workers=count),
        "postgresql:///fake",
        [sock.fileno()],
        command=(sys.executable, "-c", FAKE_WORKER, mode),
        **kwargs,  # type: ignore[arg-type]
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_application_name_keeps_madbase_for_the_main_process() -> None:
    assert application_name(0) == "madbase"
    assert application_name(1) == "madbase/worker-1"
    assert application_name(12) == "madbase/worker-12"


async def test_workers_ready_then_stop_on_begin_shutdown(listening: socket.socket) -> None:
    supervisor = workers(listening, "serve")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            pids = supervisor.pids()
            assert sorted(pids) == [1, 2]
            assert all(alive(pid) for pid in pids.values())
            assert os.getpid() not in pids.values()
            supervisor.begin_shutdown()
    # run returned: every worker exited and was reaped
    assert supervisor.pids() == {}
    assert not any(alive(pid) for pid in pids.values())
    assert supervisor.restarts == 0


async def test_workers_killed_worker_is_restarted(listening: socket.socket) -> None:
    supervisor = workers(listening, "serve", count=2, restart_delay=0.01)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            first = supervisor.pids()[1]
            os.kill(first, 9)
            while supervisor.pids().get(1, first) == first:
                await trio.sleep(0.02)
            second = supervisor.pids()[1]
            assert alive(second)
            assert supervisor.restarts == 1
            supervisor.begin_shutdown()
    assert not alive(second)


@pytest.mark.parametrize("mode", ["fail", "silent"])
async def test_workers_that_keep_failing_stop_the_server(
    listening: socket.socket, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor = workers(listening, mode, count=2, restart_delay=0.01, max_exits=2)
    with trio.fail_after(30), pytest.RaisesGroup(WorkersFailed, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
    assert supervisor.restarts == 2
    assert supervisor.pids() == {}
    assert "exited unexpectedly 3 times within 60 s; stopping the server" in caplog.text


async def test_workers_stubborn_worker_is_killed_at_the_deadline(
    listening: socket.socket,
) -> None:
    supervisor = workers(listening, "stubborn", count=2)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            pid = supervisor.pids()[1]
            supervisor.begin_shutdown()
            nursery.cancel_scope.deadline = trio.current_time() + 0.5
    assert not alive(pid)
    assert supervisor.restarts == 0
