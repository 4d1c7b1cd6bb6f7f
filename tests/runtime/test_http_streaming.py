"""Streamed bodies through one `Application` on every front: our server with each parser, and
the ASGI front under hypercorn. Uploads are pulled as they arrive and held to the size limit
while read; downloads are pulled as the client reads; a client gone mid-body cancels its
handler; bytes bodies are unchanged."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from functools import partial

import attrs
import h11
import hypercorn.config
import hypercorn.trio
import pytest
import trio

from madbase.config import HttpSettings
from madbase.protocol.http import Request, Response, json_response
from madbase.runtime.http import HttpServer, WebSocket, http_limits
from madbase.runtime.http.asgi import AsgiFront

FRONTS = ["h11", "httptools", "hypercorn"]
MiB = 1024 * 1024
LIMIT = 8 * MiB
SETTINGS = HttpSettings(max_body_bytes=LIMIT, read_timeout=30.0)
PIECE = 64 * 1024


@attrs.define
class StreamApp:
    """`/upload` hashes a streamed body; `/download?n=` streams n bytes; else echoes."""

    received: int = 0
    produced: int = 0
    first_piece: trio.Event = attrs.field(factory=trio.Event)
    cancelled: trio.Event = attrs.field(factory=trio.Event)
    finished: trio.Event = attrs.field(factory=trio.Event)

    def streams_body(self, request: Request) -> bool:
        return request.path == "/upload"

    async def handle(self, request: Request) -> Response:
        if request.path == "/upload":
            return await self._upload(request)
        if request.path == "/download":
            total = int(request.query.split("=", 1)[1])
            return Response(status=200, stream=self._produce(total))
        if request.path == "/download-sized":
            total = int(request.query.split("=", 1)[1])
            return Response(
                status=200, headers=(("content-length", str(total)),), stream=self._produce(total)
            )
        return json_response(200, {"streamed": request.stream is not None, "n": len(request.body)})

    async def _upload(self, request: Request) -> Response:
        assert request.stream is not None or request.body
        digest = hashlib.sha256(request.body)
        self.received = len(request.body)
        try:
            if request.stream is not None:
                while piece := await request.stream.receive():
                    self.received += len(piece)
                    digest.update(piece)
                    self.first_piece.set()
        except trio.Cancelled:
            self.cancelled.set()
            raise
        self.finished.set()
        return json_response(200, {"bytes": self.received, "sha256": digest.hexdigest()})

    async def _produce(self, total: int) -> AsyncIterator[bytes]:
        piece = b"x" * PIECE
        while self.produced < total:
            size = min(PIECE, total - self.produced)
            self.produced += size
            yield piece[:size]

    async def websocket_check(self, request: Request) -> Response | None:
        return json_response(404, {"message": "no websockets here"})

    async def websocket(self, request: Request, ws: WebSocket) -> None:
        raise AssertionError("refused")


@contextlib.asynccontextmanager
async def serving(
    front: str, app: StreamApp, settings: HttpSettings = SETTINGS
) -> AsyncIterator[int]:
    """`app` on `front` on a free port; the port."""
    async with trio.open_nursery() as nursery:
        if front == "hypercorn":
            config = hypercorn.config.Config()
            config.bind = ["127.0.0.1:0"]
            stop = trio.Event()
            binds = await nursery.start(
                partial(
                    hypercorn.trio.serve,
                    AsgiFront(app, http_limits(settings)),  # type: ignore[arg-type]
                    config,
                    shutdown_trigger=stop.wait,
                )
            )
            try:
                yield int(binds[0].rsplit(":", 1)[1])
            finally:
                stop.set()
            return
        server = HttpServer(app, attrs.evolve(settings, parser=front))
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        await nursery.start(server.serve, listeners)
        try:
            yield listeners[0].socket.getsockname()[1]
        finally:
            server.begin_shutdown()


def head(method: str, target: str, *extra: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: test", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def read_response(stream: trio.SocketStream) -> tuple[h11.Response, bytes]:
    """One response read with h11 as a client would (chunked or with Content-Length)."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "test")]))
    conn.send(h11.EndOfMessage())
    response: h11.Response | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(PIECE))
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert response is not None
            return response, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            raise EOFError("closed before the response ended")


@pytest.mark.parametrize("front", FRONTS)
async def test_upload_is_pulled_by_the_handler_as_it_arrives(front: str) -> None:
    app = StreamApp()
    data = bytes(range(256)) * (4 * MiB // 256)
    async with serving(front, app) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(head("POST", "/upload", f"Content-Length: {len(data)}"))
        await stream.send_all(data[:MiB])
        # The handler holds the first bytes while the rest is still unsent: nothing buffered
        # the whole body before the handler ran.
        await app.first_piece.wait()
        assert not app.finished.is_set()
        await stream.send_all(data[MiB:])
        response, body = await read_response(stream)
        await stream.aclose()
    assert response.status_code == 200
    assert json.loads(body) == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("front", FRONTS)
async def test_chunked_upload_is_streamed_too(front: str) -> None:
    app = StreamApp()
    pieces = [bytes([n]) * 300_000 for n in range(10)]
    async with serving(front, app) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(head("POST", "/upload", "Transfer-Encoding: chunked"))
        await stream.send_all(chunked(pieces[0]))
        await app.first_piece.wait()
        await stream.send_all(b"".join(chunked(p) for p in pieces[1:]) + b"0\r\n\r\n")
        response, body = await read_response(stream)
        await stream.aclose()
    whole = b"".join(pieces)
    assert response.status_code == 200
    assert json.loads(body) == {"bytes": len(whole), "sha256": hashlib.sha256(whole).hexdigest()}


@pytest.mark.parametrize("front", FRONTS)
async def test_upload_past_the_limit_is_refused_while_it_is_read(front: str) -> None:
    app = StreamApp()
    async with serving(front, app) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        # Chunked: no length announces it, the limit is found while reading.
        await stream.send_all(head("POST", "/upload", "Transfer-Encoding: chunked"))
        piece = chunked(b"y" * MiB)
        with contextlib.suppress(trio.BrokenResourceError):
            for _ in range(LIMIT // MiB + 1):
                await stream.send_all(piece)
        response, body = await read_response(stream)
        await stream.aclose()
    assert response.status_code == 413
    assert json.loads(body) == {"message": "Payload Too Large"}
    # The handler got no byte past the limit.
    assert app.received <= LIMIT
    assert not app.finished.is_set()


@pytest.mark.parametrize("front", FRONTS)
async def test_client_gone_mid_body_cancels_the_handler(front: str) -> None:
    app = StreamApp()
    async with serving(front, app) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(head("POST", "/upload", f"Content-Length: {4 * MiB}"))
        await stream.send_all(b"z" * MiB)
        await app.first_piece.wait()
        await stream.aclose()
        await app.cancelled.wait()
    assert not app.finished.is_set()


@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize("path", ["/download", "/download-sized"])
async def test_download_is_pulled_as_the_client_reads(front: str, path: str) -> None:
    app = StreamApp()
    total = 256 * MiB
    async with serving(front, app) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(head("GET", f"{path}?n={total}"))
        first = await stream.receive_some(PIECE)
        assert first.startswith(b"HTTP/1.1 200")
        # The client reads nothing more: the producer stops once the socket buffers are full.
        produced = -1
        while produced != app.produced:
            produced = app.produced
            await trio.sleep(0.3)
        assert produced < 32 * MiB
        # Then it reads everything, framed as announced.
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("host", "test")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(first)
        received = 0
        framing: list[tuple[bytes, bytes]] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(MiB))
            elif isinstance(event, h11.Response):
                framing = [
                    (k, v)
                    for k, v in event.headers
                    if k in (b"content-length", b"transfer-encoding")
                ]
            elif isinstance(event, h11.Data):
                received += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
        await stream.aclose()
    assert received == total
    if path == "/download-sized":
        assert framing == [(b"content-length", str(total).encode())]
    else:
        assert framing == [(b"transfer-encoding", b"chunked")]


@pytest.mark.parametrize("front", FRONTS)
async def test_small_bodies_still_arrive_whole(front: str) -> None:
    app = StreamApp()
    async with serving(front, app) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(head("POST", "/echo", "Content-Length: 5") + b"hello")
        response, body = await read_response(stream)
        await stream.aclose()
    assert response.status_code == 200
    assert json.loads(body) == {"streamed": False, "n": 5}
