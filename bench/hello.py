"""A hello-world server on our own HTTP stack (trio `HttpServer`), as the bench's baseline.

Every request gets the same small JSON body: no gateway, no database. What MadBase's routed paths
reach is read against this figure from the same run. The HTTP parser is chosen as `madbase serve`
chooses it: `MADBASE_HTTP_PARSER` (auto, h11, httptools) from the environment.

    python bench/hello.py --port 0    # prints "hello ready at http://127.0.0.1:PORT"
"""

from __future__ import annotations

import argparse
import os
import signal

import trio

from madbase.config import Config
from madbase.protocol.http import Request, Response, json_response
from madbase.runtime.http import HttpServer, WebSocket


class Hello:
    """The smallest `Application`."""

    async def handle(self, request: Request) -> Response:
        return json_response(200, {"hello": "world"})

    async def websocket_check(self, request: Request) -> Response | None:
        return json_response(404, {"message": "no websockets here"})

    async def websocket(self, request: Request, ws: WebSocket) -> None:
        raise AssertionError("never accepted")


async def serve(port: int) -> None:
    settings = Config.from_sources(os.environ, {}, {}).http
    server = HttpServer(Hello(), settings)
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    bound = listeners[0].socket.getsockname()[1]
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listeners)
            print(f"hello ready at http://127.0.0.1:{bound} ({server.parser})", flush=True)
            async for _ in signals:
                server.begin_shutdown()
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    trio.run(serve, parser.parse_args().port)


if __name__ == "__main__":
    main()
