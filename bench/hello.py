"""A hello-world server on our own HTTP stack (trio `HttpServer`), as the bench's baseline.

Every request gets the same small JSON body: no gateway, no database. What MadBase's routed paths
reach is read against this figure from the same run. The HTTP parser is chosen as `madbase serve`
chooses it: `MADBASE_HTTP_PARSER` (auto, h11, httptools) from the environment.

    python bench/hello.py --port 0    # prints "hello ready at http://127.0.0.1:PORT"

`--workers N` serves from N processes sharing the listening socket exactly as `madbase serve
--workers N` does (the same `Workers` supervisor: inherited descriptors, ready lines, SIGTERM),
so the baseline runs with as many processes as the server it is compared with.
"""

from __future__ import annotations

import argparse
import os
import pickle
import signal
import socket
import sys
from pathlib import Path

# Measure this checkout, not a copy `pip install .` put in site-packages earlier.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import attrs
import trio

from madbase.config import Config
from madbase.protocol.http import Request, Response, json_response
from madbase.runtime.http import HttpServer, WebSocket
from madbase.runtime.supervisor import READY, Workers, WorkerSpec


class Hello:
    """The smallest `Application`."""

    async def handle(self, request: Request) -> Response:
        return json_response(200, {"hello": "world"})

    async def websocket_check(self, request: Request) -> Response | None:
        return json_response(404, {"message": "no websockets here"})

    async def websocket(self, request: Request, ws: WebSocket) -> None:
        raise AssertionError("never accepted")


async def serve(port: int, workers: int) -> None:
    config = Config.from_sources(os.environ, {}, {})
    server = HttpServer(Hello(), config.http)
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    bound = listeners[0].socket.getsockname()[1]
    supervisor = Workers(
        attrs.evolve(config, workers=workers),
        "",  # no database
        [listener.socket.fileno() for listener in listeners],
        command=(sys.executable, __file__, "--child"),
    )
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listeners)
            await nursery.start(supervisor.run)
            print(
                f"hello ready at http://127.0.0.1:{bound} ({server.parser}, {workers} processes)",
                flush=True,
            )
            async for _ in signals:
                server.begin_shutdown()
                supervisor.begin_shutdown()
                break


async def serve_child() -> None:
    """A worker process: the spec on stdin names the inherited listening sockets."""
    spec = pickle.loads(sys.stdin.buffer.read())  # from our parent, through a pipe
    assert isinstance(spec, WorkerSpec)
    server = HttpServer(Hello(), spec.config.http)
    listeners = [
        trio.SocketListener(trio.socket.from_stdlib_socket(socket.socket(fileno=fd)))
        for fd in spec.fds
    ]
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listeners)
            os.write(sys.stdout.fileno(), READY)
            async for _ in signals:
                server.begin_shutdown()
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        trio.run(serve_child)
    else:
        trio.run(serve, args.port, args.workers)


if __name__ == "__main__":
    main()
