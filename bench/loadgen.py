"""A small HTTP/1.1 load generator on trio, for loopback benchmarks when `wrk` is not installed.

Each of `--connections` tasks keeps one connection alive and loops: send a GET, read the whole
response (status line, headers, Content-Length body) with a minimal parser, record the latency.
Requests completed during `--warmup` are not counted; then `--duration` seconds are measured.
The run is bounded: loopback targets only, at most 1024 connections, 600 s and `--max-requests`.

    python bench/loadgen.py --url http://127.0.0.1:8000/health --header 'apikey: ...'

Prints one JSON object: requests, rps, latency percentiles (ms), status counts and errors.
Transport failures (refused, reset, malformed response) count as errors and the connection is
reopened; any status code counts as a response, the caller decides which statuses it expects.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import trio

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_CONNECTIONS: Final = 1024
MAX_SECONDS: Final = 600.0
MAX_HEAD_BYTES: Final = 64 * 1024
# Once the measured window ends, a request still in flight gets this long before it is abandoned.
GRACE_SECONDS: Final = 2.0
# After a transport error, wait this long before reconnecting so a dead server is not spun on.
RECONNECT_DELAY: Final = 0.01


class ProtocolError(Exception):
    """The response could not be parsed (or uses a framing this parser does not support)."""


class Stats:
    """What all connections record (one trio thread: no locking needed)."""

    def __init__(self, measure_from: float, measure_until: float, max_requests: int) -> None:
        self.measure_from = measure_from
        self.measure_until = measure_until
        self.max_requests = max_requests
        self.sent = 0
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()

    def record(self, started: float, finished: float, status: int) -> None:
        if self.measure_from <= finished <= self.measure_until:
            self.latencies.append(finished - started)
            self.statuses[status] += 1

    def error(self, when: float, kind: str) -> None:
        if self.measure_from <= when <= self.measure_until:
            self.errors[kind] += 1


def build_request(url: str, headers: Sequence[str]) -> tuple[str, int, bytes]:
    """Host, port and the bytes of a keep-alive GET for `url`; refuse anything but loopback."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported, got {url!r}")
    host = parts.hostname or ""
    if host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"refusing to load a non-loopback host {host!r} (allowed: 127.0.0.1, localhost, ::1)"
        )
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}"]
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip() or "\r" in header or "\n" in header:
            raise ValueError(f"bad --header {header!r}, expected 'name: value'")
        lines.append(f"{name.strip()}: {value.strip()}")
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_response(stream: trio.abc.Stream, buf: bytearray) -> tuple[int, bool]:
    """Read one response from `stream` (leftover bytes stay in `buf`); return (status, close)."""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        if len(buf) > MAX_HEAD_BYTES:
            raise ProtocolError("response head too large")
        data = await stream.receive_some(65536)
        if not data:
            raise ProtocolError("connection closed before the response head")
        buf += data
    lines = buf[:end].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ProtocolError(f"bad status line {lines[0][:80]!r}")
    status = int(rest[:3])
    close = version == "HTTP/1.0"
    length: int | None = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            raise ProtocolError("chunked responses are not supported")
        elif name == "connection":
            close = "close" in value.lower()
    if length is None:
        if not (status < 200 or status in (204, 304)):
            raise ProtocolError("response without Content-Length")
        length = 0
    need = end + 4 + length
    while len(buf) < need:
        data = await stream.receive_some(max(need - len(buf), 65536))
        if not data:
            raise ProtocolError("connection closed mid-body")
        buf += data
    del buf[:need]
    return status, close


async def connection(host: str, port: int, request: bytes, stats: Stats) -> None:
    """Keep one connection busy until the measured window ends or the request budget is spent."""
    while time.perf_counter() < stats.measure_until and stats.sent < stats.max_requests:
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as err:
            stats.error(time.perf_counter(), f"connect: {type(err).__name__}")
            await trio.sleep(RECONNECT_DELAY)
            continue
        async with stream:
            buf = bytearray()
            try:
                while time.perf_counter() < stats.measure_until and stats.sent < stats.max_requests:
                    stats.sent += 1
                    started = time.perf_counter()
                    await stream.send_all(request)
                    status, close = await read_response(stream, buf)
                    stats.record(started, time.perf_counter(), status)
                    if close:
                        break
            except (OSError, trio.BrokenResourceError, ProtocolError, ValueError) as err:
                stats.error(time.perf_counter(), f"{type(err).__name__}: {err}"[:120])
                await trio.sleep(RECONNECT_DELAY)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def run(args: argparse.Namespace) -> dict[str, object]:
    host, port, request = build_request(args.url, args.header)
    begin = time.perf_counter()
    stats = Stats(begin + args.warmup, begin + args.warmup + args.duration, args.max_requests)
    with trio.move_on_at(trio.current_time() + args.warmup + args.duration + GRACE_SECONDS):
        async with trio.open_nursery() as nursery:
            for _ in range(args.connections):
                nursery.start_soon(connection, host, port, request, stats)
    # The window is shorter than asked when the request budget ran out first.
    window = min(time.perf_counter(), stats.measure_until) - stats.measure_from
    ordered = sorted(stats.latencies)
    return {
        "url": args.url,
        "connections": args.connections,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "requests": len(ordered),
        "errors": sum(stats.errors.values()),
        "error_kinds": dict(stats.errors.most_common(10)),
        "status": {str(code): n for code, n in sorted(stats.statuses.items())},
        "rps": round(len(ordered) / window, 1) if window > 0 else 0.0,
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
        "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 3),
        "mean_ms": round(sum(ordered) / len(ordered) * 1000, 3) if ordered else 0.0,
    }


def _bounded(kind: type[float] | type[int], low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = kind(raw)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low} to {high}, got {raw}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="http:// URL on 127.0.0.1, localhost or ::1")
    parser.add_argument("--connections", type=_bounded(int, 1, MAX_CONNECTIONS), default=32)
    parser.add_argument("--duration", type=_bounded(float, 0.1, MAX_SECONDS), default=10.0)
    parser.add_argument("--warmup", type=_bounded(float, 0, 60), default=2.0)
    parser.add_argument(
        "--max-requests",
        type=_bounded(int, 1, 50_000_000),
        default=10_000_000,
        help="stop after this many requests in all (bounds memory)",
    )
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'")
    args = parser.parse_args(argv)
    try:
        report = trio.run(run, args)
    except ValueError as err:
        print(f"loadgen: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
