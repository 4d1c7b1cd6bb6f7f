"""Our trio server: framing, keep-alive, pipelining, limits, timeouts, shutdown, websockets.

Every test runs once per parser (h11 and httptools), through the `settings` fixture.
"""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing
import trio_websocket

from madbase.config import HttpSettings
from madbase.protocol.http import Request, Response, json_response
from madbase.runtime.http import _DISCONNECT_CHECK, HttpServer, WebSocket


class EchoApp:
    """Answers with the request it saw; `/slow` waits; `/boom` is a bug of ours."""

    def __init__(self) -> None:
        self.seen: list[Request] = []
        self.accept_websockets = True

    async def handle(self, request: Request) -> Response:
        self.seen.append(request)
        if request.path == "/slow":
            await trio.sleep(1)
        return json_response(
            200,
            {"method": request.method, "target": request.target, "body": request.body.decode()},
            (("x-test", "1"),),
        )

    async def websocket_check(self, request: Request) -> Response | None:
        if not self.accept_websockets:
            return json_response(401, {"error": "API key is missing"})
        return None

    async def websocket(self, request: Request, ws: WebSocket) -> None:
        while True:
            try:
                message = await ws.get_message()
            except trio_websocket.ConnectionClosed:
                return
            await ws.send_message(f"echo {request.path}: {message}")


SETTINGS = HttpSettings(
    max_head_bytes=8 * 1024,
    max_request_line_bytes=4 * 1024,
    max_body_bytes=1024,
    read_timeout=5.0,
    keepalive_timeout=10.0,
    shutdown_timeout=5.0,
)


@pytest.fixture(params=["h11", "httptools"])
def settings(request: pytest.FixtureRequest) -> HttpSettings:
    """SETTINGS with one parser; the server reports the parser it uses."""
    chosen = attrs.evolve(SETTINGS, parser=request.param)
    assert HttpServer(EchoApp(), chosen).parser == request.param
    return chosen


@attrs.frozen
class Reply:
    status_code: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]


class Client:
    """A raw HTTP/1.1 client over a stream; our server always frames bodies with Content-Length."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError("connection closed")
        self.buffer += data

    async def response(self, *, head: bool = False) -> tuple[Reply, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            await self._fill()
        raw_head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = raw_head.split(b"\r\n")
        version, code, reason = status_line.split(b" ", 2)
        assert version == b"HTTP/1.1"
        headers = [tuple(x.strip() for x in line.split(b":", 1)) for line in lines]
        reply = Reply(int(code), reason, [(k.lower(), v) for k, v in headers])
        length = 0 if head else int(header(reply, b"content-length") or 0)
        while len(self.buffer) < length:
            await self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return reply, body

    async def closed(self) -> bool:
        """True if the server closed the connection (reads EOF)."""
        with trio.move_on_after(30):
            return await self.stream.receive_some(1) == b""
        return False


def header(response: Reply, name: bytes) -> bytes | None:
    for key, value in response.headers:
        if key == name:
            return value
    return None


async def serve(
    nursery: trio.Nursery, app: EchoApp, settings: HttpSettings = SETTINGS
) -> tuple[HttpServer, Client]:
    server = HttpServer(app, settings)
    client_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(server.serve_stream, server_stream, "127.0.0.1")
    return server, Client(client_stream)


def get(target: str, *extra: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: test", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_http_answers_with_framing_headers(settings: HttpSettings) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        _, client = await serve(nursery, app, settings)
        await client.send_raw(get("/a?b=c%20d", "X-Thing: Value"))
        response, body = await client.response()
        assert response.status_code == 200
        assert response.reason == b"OK"
        assert header(response, b"content-length") == str(len(body)).encode()
        assert header(response, b"date") is not None
        assert header(response, b"x-test") == b"1"
        assert b'"target":"/a?b=c%20d"' in body
        assert app.seen[0].header("x-thing") == "Value"
        assert app.seen[0].client == "127.0.0.1"
        nursery.cancel_scope.cancel()


async def test_http_keeps_connection_alive_between_requests(settings: HttpSettings) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        _, client = await serve(nursery, app, settings)
        for i in range(3):
            await client.send_raw(
                f"POST /p{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nh{i}".encode()
            )
            response, body = await client.response()
            assert response.status_code == 200
            assert f'"body":"h{i}"'.encode() in body
            assert header(response, b"connection") is None
        assert [r.path for r in app.seen] == ["/p0", "/p1", "/p2"]
        nursery.cancel_scope.cancel()


async def test_http_answers_pipelined_requests_in_order(
    autojump_clock: trio.testing.MockClock, settings: HttpSettings
) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        _, client = await serve(nursery, app, settings)
        await client.send_raw(get("/slow") + get("/fast") + get("/third"))
        targets = []
        for _ in range(3):
            _, body = await client.response()
            targets.append(body.split(b'"target":"')[1].split(b'"')[0])
        assert targets == [b"/slow", b"/fast", b"/third"]
        nursery.cancel_scope.cancel()


async def test_http_reads_chunked_bodies(settings: HttpSettings) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        _, client = await serve(nursery, app, settings)
        await client.send_raw(
            b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        _, body = await client.response()
        assert b'"body":"abcde"' in body
        nursery.cancel_scope.cancel()


async def test_http_head_has_length_but_no_body(settings: HttpSettings) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        _, client = await serve(nursery, app, settings)
        await client.send_raw(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n" + get("/after"))
        response, body = await client.response(head=True)
        assert response.status_code == 200
        assert body == b""
        assert int(header(response, b"content-length") or 0) > 0
        response, body = await client.response()
        assert b"/after" in body
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        pytest.param(b"NOT HTTP AT ALL\r\n\r\n", 400, id="garbage"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n", 400, id="header-without-colon"
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", 400, id="bad-length"
        ),
        pytest.param(
            b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, id="long-target"
        ),
        pytest.param(b"GET /" + b"a" * 9000, 414, id="long-line-unfinished"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Big: " + b"b" * 9000 + b"\r\n\r\n",
            431,
            id="big-headers",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n",
            413,
            id="declared-body-too-large",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"400\r\n"
            + b"x" * 1024
            + b"\r\n"
            + b"10\r\n"
            + b"y" * 16
            + b"\r\n0\r\n\r\n",
            413,
            id="chunked-body-too-large",
        ),
    ],
)
async def test_http_refuses_bad_requests_and_closes(
    raw: bytes, status: int, settings: HttpSettings
) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        _, client = await serve(nursery, app, settings)
        await client.send_raw(raw)
        response, body = await client.response()
        assert response.status_code == status
        assert body.startswith(b'{"message":')
        assert header(response, b"connection") == b"close"
        assert await client.closed()
        assert app.seen == []


async def test_http_times_out_a_slow_request(
    autojump_clock: trio.testing.MockClock, settings: HttpSettings
) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        _, client = await serve(nursery, app, settings)
        await client.send_raw(b"GET / HTTP/1.1\r\nHost: a\r\n")  # never finishes the head
        response, _ = await client.response()
        assert response.status_code == 408
        assert trio.current_time() >= SETTINGS.read_timeout
        assert await client.closed()


async def test_http_closes_idle_keepalive_connection_silently(
    autojump_clock: trio.testing.MockClock, settings: HttpSettings
) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        _, client = await serve(nursery, app, settings)
        await client.send_raw(get("/one"))
        await client.response()
        started = trio.current_time()
        assert await client.stream.receive_some(1) == b""
        assert trio.current_time() - started >= SETTINGS.keepalive_timeout


async def test_http_peer_closing_is_not_an_error(settings: HttpSettings) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        server, client = await serve(nursery, app, settings)
        await client.send_raw(b"GET / HTTP/1.1\r\nHo")
        await client.stream.aclose()
    assert server.connections == 0
    assert app.seen == []


async def test_http_shutdown_finishes_in_flight_request_and_closes(
    autojump_clock: trio.testing.MockClock, settings: HttpSettings
) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        server, busy = await serve(nursery, app, settings)
        idle_stream, idle_server_stream = trio.testing.memory_stream_pair()
        nursery.start_soon(server.serve_stream, idle_server_stream, None)
        await busy.send_raw(get("/slow"))
        await trio.sleep(0.1)  # the request is in flight
        server.begin_shutdown()
        response, body = await busy.response()
        assert response.status_code == 200
        assert b"/slow" in body
        assert header(response, b"connection") == b"close"
        assert await busy.closed()
        assert await idle_stream.receive_some(1) == b""  # idle connection closed at once
    assert server.connections == 0


async def test_http_serves_tcp_and_stops_accepting_on_shutdown(settings: HttpSettings) -> None:
    app = EchoApp()
    server = HttpServer(app, settings)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, listeners)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        client = Client(stream)
        await client.send_raw(get("/tcp"))
        response, _ = await client.response()
        assert response.status_code == 200
        server.begin_shutdown()
        assert await client.closed()
        await stream.aclose()
    with pytest.raises(OSError, match="connect"):
        await trio.open_tcp_stream("127.0.0.1", port)


async def test_http_upgrades_to_websocket_and_echoes(settings: HttpSettings) -> None:
    app = EchoApp()
    server = HttpServer(app, settings)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, listeners)
        async with trio_websocket.open_websocket(
            "127.0.0.1", port, "/realtime/v1/websocket?vsn=1.0.0", use_ssl=False
        ) as ws:
            await ws.send_message("hello")
            assert await ws.get_message() == "echo /realtime/v1/websocket: hello"
            await ws.send_message(b"bytes")
            assert await ws.get_message() == "echo /realtime/v1/websocket: b'bytes'"
        server.begin_shutdown()


async def test_http_websocket_refusal_is_a_plain_response(settings: HttpSettings) -> None:
    app = EchoApp()
    app.accept_websockets = False
    async with trio.open_nursery() as nursery:
        _, client = await serve(nursery, app, settings)
        await client.send_raw(
            get(
                "/realtime/v1/websocket",
                "Upgrade: websocket",
                "Connection: Upgrade",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version: 13",
            )
        )
        response, body = await client.response()
        assert response.status_code == 401
        assert body == b'{"error":"API key is missing"}'
        assert await client.closed()


async def test_http_limits_concurrent_connections(settings: HttpSettings) -> None:
    app = EchoApp()
    server = HttpServer(app, attrs.evolve(settings, max_connections=1))
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, listeners)
        first = Client(await trio.open_tcp_stream("127.0.0.1", port))
        await first.send_raw(get("/first"))
        await first.response()
        second = Client(await trio.open_tcp_stream("127.0.0.1", port))
        await second.send_raw(get("/second"))
        with trio.move_on_after(0.3) as waited:
            await second.response()
        assert waited.cancelled_caught  # not served while the first holds the only slot
        await first.stream.aclose()
        response, _ = await second.response()
        assert response.status_code == 200
        await second.stream.aclose()
        server.begin_shutdown()


# --- the socket path (accepted TCP connections: `SocketIo`, not trio streams) ------------------

BIG = 16 * 1024 * 1024


class BigApp(EchoApp):
    """`/big` answers 16 MiB, more than the kernel's socket buffers take at once."""

    async def handle(self, request: Request) -> Response:
        if request.path == "/big":
            return Response(status=200, headers=(("content-type", "text/plain"),), body=b"x" * BIG)
        return await super().handle(request)


async def tcp_server(
    nursery: trio.Nursery, app: EchoApp, settings: HttpSettings
) -> tuple[HttpServer, int]:
    server = HttpServer(app, settings)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    await nursery.start(server.serve, listeners)
    return server, listeners[0].socket.getsockname()[1]


async def test_tcp_times_out_a_slow_request_with_408(settings: HttpSettings) -> None:
    quick = attrs.evolve(settings, read_timeout=0.3, keepalive_timeout=5.0)
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        server, port = await tcp_server(nursery, app, quick)
        client = Client(await trio.open_tcp_stream("127.0.0.1", port))
        started = trio.current_time()
        await client.send_raw(b"GET / HTTP/1.1\r\nHost: a\r\n")  # never finishes the head
        response, _ = await client.response()
        assert response.status_code == 408
        assert 0.3 <= trio.current_time() - started < 3
        assert await client.closed()
        assert app.seen == []
        await client.stream.aclose()
        server.begin_shutdown()


async def test_tcp_closes_idle_keepalive_connection(settings: HttpSettings) -> None:
    quick = attrs.evolve(settings, read_timeout=5.0, keepalive_timeout=0.3)
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        server, port = await tcp_server(nursery, app, quick)
        client = Client(await trio.open_tcp_stream("127.0.0.1", port))
        for path in ("/one", "/two"):  # each request restarts the idle clock
            await client.send_raw(get(path))
            response, body = await client.response()
            assert response.status_code == 200
            assert path.encode() in body
        started = trio.current_time()
        assert await client.closed()
        assert 0.3 <= trio.current_time() - started < 3
        assert server.connections == 0
        await client.stream.aclose()
        server.begin_shutdown()


async def test_tcp_sends_a_response_larger_than_the_socket_buffer(settings: HttpSettings) -> None:
    async with trio.open_nursery() as nursery:
        server, port = await tcp_server(nursery, BigApp(), settings)
        client = Client(await trio.open_tcp_stream("127.0.0.1", port))
        for _ in range(2):  # the connection stays usable after a response sent in parts
            await client.send_raw(get("/big"))
            await trio.sleep(0.2)  # let the server fill the buffers and wait to write
            response, body = await client.response()
            assert response.status_code == 200
            assert body == b"x" * BIG
        await client.send_raw(get("/after"))
        response, body = await client.response()
        assert b"/after" in body
        await client.stream.aclose()
        server.begin_shutdown()


async def test_tcp_drops_a_peer_that_does_not_read_its_response(settings: HttpSettings) -> None:
    quick = attrs.evolve(settings, read_timeout=0.3)
    async with trio.open_nursery() as nursery:
        server, port = await tcp_server(nursery, BigApp(), quick)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        stream.socket.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
        await stream.send_all(get("/big"))
        with trio.fail_after(5):
            while server.connections:  # the server gives up on the send and closes
                await trio.sleep(0.05)
        await stream.aclose()
        server.begin_shutdown()


async def test_tcp_answers_pipelined_requests_in_order_while_serving_others(
    settings: HttpSettings,
) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        server, port = await tcp_server(nursery, app, settings)
        flood = Client(await trio.open_tcp_stream("127.0.0.1", port))
        other = Client(await trio.open_tcp_stream("127.0.0.1", port))
        await flood.send_raw(b"".join(get(f"/p{i}") for i in range(100)))
        await other.send_raw(get("/other"))
        response, body = await other.response()
        assert b"/other" in body
        for i in range(100):
            response, body = await flood.response()
            assert response.status_code == 200
            assert f'"/p{i}"'.encode() in body
        await flood.stream.aclose()
        await other.stream.aclose()
        server.begin_shutdown()


# --- Expect: 100-continue ------------------------------------------------------------------------


def post_head(length: int, *extra: str) -> bytes:
    lines = ["POST /upload HTTP/1.1", "Host: test", f"Content-Length: {length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_http_answers_100_continue_before_the_body(settings: HttpSettings) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        _, client = await serve(nursery, app, settings)
        for _ in range(2):  # once per request, on a kept-alive connection too
            await client.send_raw(post_head(5, "Expect: 100-continue"))
            interim, _ = await client.response()
            assert interim.status_code == 100
            await client.send_raw(b"hello")
            response, body = await client.response()
            assert response.status_code == 200
            assert b'"body":"hello"' in body
        assert len(app.seen) == 2
        await client.stream.aclose()


async def test_http_sends_no_100_when_the_body_came_with_the_head(settings: HttpSettings) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        _, client = await serve(nursery, app, settings)
        await client.send_raw(post_head(5, "Expect: 100-continue") + b"hello")
        response, body = await client.response()
        assert response.status_code == 200
        assert b'"body":"hello"' in body
        # Nothing else is queued: the next answer is the next request's.
        await client.send_raw(get("/next"))
        response, body = await client.response()
        assert response.status_code == 200
        assert b"/next" in body
        await client.stream.aclose()


async def test_http_refuses_a_too_large_body_instead_of_continuing(
    settings: HttpSettings,
) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        _, client = await serve(nursery, app, settings)
        await client.send_raw(post_head(SETTINGS.max_body_bytes + 1, "Expect: 100-continue"))
        response, _ = await client.response()
        assert response.status_code == 413
        assert await client.closed()
        assert app.seen == []


async def test_http_ignores_expect_on_http_10(settings: HttpSettings) -> None:
    app = EchoApp()
    async with trio.open_nursery() as nursery:
        _, client = await serve(nursery, app, settings)
        head = post_head(5, "Expect: 100-continue").replace(b"HTTP/1.1", b"HTTP/1.0", 1)
        await client.send_raw(head)
        with trio.move_on_after(0.2) as waited:
            await client.response()
        assert waited.cancelled_caught  # no interim answer to a 1.0 client
        await client.send_raw(b"hello")
        response, body = await client.response()
        assert response.status_code == 200
        assert b'"body":"hello"' in body


# --- shutdown and clients that go away, over TCP ------------------------------------------------


class GateApp(EchoApp):
    """`/gate` waits until `opened` is set; `cancelled` lists the requests cancelled meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = trio.Event()
        self.cancelled: list[str] = []

    async def handle(self, request: Request) -> Response:
        if request.path == "/gate":
            try:
                await self.opened.wait()
            except trio.Cancelled:
                self.cancelled.append(request.target)
                raise
        return await super().handle(request)


async def wait_for(server: HttpServer, **counts: int) -> None:
    """Until the server's statistics show `counts` (a guard, not a timing: 10 s at most)."""
    with trio.fail_after(10):
        while any(getattr(server.statistics(), k) != v for k, v in counts.items()):
            await trio.sleep(0.01)


async def test_tcp_shutdown_waits_only_for_requests_being_handled(settings: HttpSettings) -> None:
    # Read timeout and drain far longer than the guard below: closing must not wait for them.
    patient = attrs.evolve(settings, read_timeout=120.0, keepalive_timeout=120.0)
    app = GateApp()
    async with trio.open_nursery() as nursery:
        server, port = await tcp_server(nursery, app, patient)
        partial = Client(await trio.open_tcp_stream("127.0.0.1", port))
        await partial.send_raw(b"GET / HTTP/1.1\r\nHost: a\r\n")  # the head, cut short
        idle = Client(await trio.open_tcp_stream("127.0.0.1", port))
        await idle.send_raw(get("/first"))
        await idle.response()
        handled = Client(await trio.open_tcp_stream("127.0.0.1", port))
        await handled.send_raw(get("/gate"))
        uploading = Client(await trio.open_tcp_stream("127.0.0.1", port))
        await uploading.send_raw(post_head(10) + b"12345")  # head complete, body under way
        await wait_for(server, idle=1, reading=2, answering=1)
        server.begin_shutdown()
        with trio.fail_after(10):
            # Closed at once, without a 408: no request of theirs is being handled.
            assert await partial.stream.receive_some(1) == b""
            assert await idle.stream.receive_some(1) == b""
        await uploading.send_raw(b"67890")
        response, body = await uploading.response()
        assert response.status_code == 200
        assert b'"body":"1234567890"' in body
        assert header(response, b"connection") == b"close"
        app.opened.set()
        response, body = await handled.response()
        assert response.status_code == 200
        assert header(response, b"connection") == b"close"
        for client in (partial, idle, handled, uploading):
            await client.stream.aclose()
    assert app.cancelled == []
    assert server.connections == 0


async def test_tcp_cancels_the_request_of_a_client_that_went_away(settings: HttpSettings) -> None:
    app = GateApp()
    async with trio.open_nursery() as nursery:
        server, port = await tcp_server(nursery, app, settings)
        client = Client(await trio.open_tcp_stream("127.0.0.1", port))
        await client.send_raw(get("/gate?who=gone"))
        await wait_for(server, answering=1)
        await client.stream.aclose()
        await wait_for(server, abandoned=1, connections=0)
        assert app.cancelled == ["/gate?who=gone"]
        # The server goes on serving.
        other = Client(await trio.open_tcp_stream("127.0.0.1", port))
        await other.send_raw(get("/after"))
        response, _ = await other.response()
        assert response.status_code == 200
        await other.stream.aclose()
        server.begin_shutdown()


async def test_tcp_pipelined_requests_then_end_of_stream_are_all_answered(
    settings: HttpSettings,
) -> None:
    # Bytes after a complete request are a pipelined request, not a disconnect; nor is the end of
    # the stream behind requests still to answer (a client half-closing after its last request).
    app = GateApp()
    async with trio.open_nursery() as nursery:
        server, port = await tcp_server(nursery, app, settings)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        client = Client(stream)
        await client.send_raw(get("/gate") + get("/second"))
        await wait_for(server, answering=1)
        await trio.sleep(2 * _DISCONNECT_CHECK)  # the watcher looks at it meanwhile
        await stream.send_eof()
        await trio.sleep(2 * _DISCONNECT_CHECK)
        app.opened.set()
        for path in (b"/gate", b"/second"):
            response, body = await client.response()
            assert response.status_code == 200
            assert path in body
        assert await client.closed()
        assert server.statistics().abandoned == 0
        assert app.cancelled == []
        await stream.aclose()
        server.begin_shutdown()
