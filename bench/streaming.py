"""Streamed bodies at size: a 1 GiB upload (hashed as it arrives) and a 1 GiB download through
one `Application` on each front, with the server's memory growth and the throughput.

    .venv/bin/python bench/streaming.py [--size-mib 1024] [--fronts h11,httptools,hypercorn]

For each front a server process starts (`--serve FRONT`: our `HttpServer` with that parser, or
hypercorn's trio worker over the ASGI front) with a test service: `POST /upload` hashes the
streamed body with SHA-256, `GET /download?n=` streams n bytes in 64 KiB pieces (chunked). This
process is the client, over a plain socket. The server's peak RSS (VmHWM) minus its RSS once
ready is the growth; throughput is bytes over wall time (client, server and kernel share the
machine's cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

# Measure this checkout, not a copy `pip install .` put in site-packages earlier.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import attrs
import trio

from madbase.config import HttpSettings
from madbase.protocol.http import Request, Response, json_response
from madbase.runtime.http import HttpServer, WebSocket, http_limits
from madbase.runtime.http.asgi import AsgiFront

MiB = 1024 * 1024
PIECE = 64 * 1024
SETTINGS = HttpSettings(max_body_bytes=1 << 40, read_timeout=60.0)


class Hasher:
    """The test service: hashes uploads as they arrive, streams downloads."""

    def streams_body(self, request: Request) -> bool:
        return request.path == "/upload"

    async def handle(self, request: Request) -> Response:
        if request.path == "/upload":
            digest = hashlib.sha256(request.body)
            size = len(request.body)
            if request.stream is not None:
                while piece := await request.stream.receive():
                    digest.update(piece)
                    size += len(piece)
            return json_response(200, {"bytes": size, "sha256": digest.hexdigest()})
        total = int(request.query.split("=", 1)[1])
        return Response(status=200, stream=_produce(total))

    async def websocket_check(self, request: Request) -> Response | None:
        return json_response(404, {"message": "no websockets here"})

    async def websocket(self, request: Request, ws: WebSocket) -> None:
        raise AssertionError("never accepted")


async def _produce(total: int) -> AsyncIterator[bytes]:
    piece = b"x" * PIECE
    sent = 0
    while sent < total:
        size = min(PIECE, total - sent)
        sent += size
        yield piece if size == PIECE else piece[:size]


async def serve(front: str) -> None:
    app = Hasher()
    async with trio.open_nursery() as nursery:
        if front == "hypercorn":
            import hypercorn.config
            import hypercorn.trio

            config = hypercorn.config.Config()
            config.bind = ["127.0.0.1:0"]
            binds = await nursery.start(
                partial(hypercorn.trio.serve, AsgiFront(app, http_limits(SETTINGS)), config)  # type: ignore[arg-type]
            )
            port = int(binds[0].rsplit(":", 1)[1])
        else:
            server = HttpServer(app, attrs.evolve(SETTINGS, parser=front))
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            await nursery.start(server.serve, listeners)
            port = listeners[0].socket.getsockname()[1]
        print(f"ready {port}", flush=True)


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(PIECE)
        if not more:
            raise EOFError
        data += more
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def upload(port: int, size: int) -> tuple[float, dict[str, object]]:
    piece = bytes(range(256)) * (MiB // 256)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: b\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // MiB):
            sock.sendall(piece)
        head, rest = _read_head(sock)
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        while len(rest) < length:
            rest += sock.recv(PIECE)
        return time.perf_counter() - started, json.loads(rest)


def download(port: int, size: int) -> tuple[float, int]:
    """Read a chunked download; the payload bytes received."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        sock.sendall(b"GET /download?n=%d HTTP/1.1\r\nHost: b\r\n\r\n" % size)
        head, buffer = _read_head(sock)
        assert b"transfer-encoding: chunked" in head.lower(), head
        received = 0
        view = bytearray(buffer)
        while True:
            while b"\r\n" not in view:
                view += sock.recv(MiB)
            line, _, _rest = bytes(view[: view.index(b"\r\n") + 2]).partition(b"\r\n")
            length = int(line.split(b";")[0], 16)
            del view[: len(line) + 2]
            while len(view) < length + 2:
                view += sock.recv(MiB)
            del view[: length + 2]
            received += length
            if length == 0:
                return time.perf_counter() - started, received


def measure(front: str, size: int) -> dict[str, object]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", front], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        base = _status(proc.pid, "VmRSS")
        up_seconds, answer = upload(port, size)
        assert answer["bytes"] == size, answer
        down_seconds, received = download(port, size)
        assert received == size
        peak = _status(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(10)
    return {
        "front": front,
        "size_mib": size // MiB,
        "upload_mb_s": round(size / up_seconds / 1e6, 1),
        "download_mb_s": round(size / down_seconds / 1e6, 1),
        "rss_ready_mib": round(base / MiB, 1),
        "rss_growth_mib": round((peak - base) / MiB, 1),
    }


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--serve")
    args.add_argument("--size-mib", type=int, default=1024)
    args.add_argument("--fronts", default="h11,httptools,hypercorn")
    options = args.parse_args()
    if options.serve:
        trio.run(serve, options.serve)
        return
    print(f"{'front':<10} {'up MB/s':>8} {'down MB/s':>9} {'RSS ready':>9} {'RSS growth':>10}")
    for front in options.fronts.split(","):
        row = measure(front, options.size_mib * MiB)
        print(
            f"{front:<10} {row['upload_mb_s']:>8} {row['download_mb_s']:>9} "
            f"{row['rss_ready_mib']:>8}M {row['rss_growth_mib']:>9}M"
        )


if __name__ == "__main__":
    main()
