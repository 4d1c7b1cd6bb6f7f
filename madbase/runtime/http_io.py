"""How the HTTP server reads and writes a connection: a socket without trio's per-call overhead.

trio's `SocketStream` makes every `receive_some`/`send_all` a checkpoint (a trip through the
scheduler even when the kernel had the bytes ready) behind a conflict detector: ~6 µs more per
call than the plain socket call on our machine. The server's hot loop instead tries the
non-blocking socket call first and waits for readiness (`trio.lowlevel.wait_readable` /
`wait_writable`, cancellable) only when the kernel has nothing to give or no room to take; under
load the next request is usually there already (strace: next to no epoll calls on that path). The connection loop checkpoints on its own every
few requests, so a peer pipelining requests that need no waiting cannot starve the others.

`StreamIo` serves any `trio.abc.Stream` the same way (in-memory streams in tests; websocket
upgrades go back to a trio stream either way).
"""

from __future__ import annotations

import socket
from typing import Final, final

import trio

__all__ = ["ConnectionIo", "SocketIo", "StreamIo", "accept_socket"]

_READ_SIZE: Final = 64 * 1024


class ConnectionIo:
    """Bytes in and out of one connection."""

    def receive_now(self) -> bytes | None:
        """Bytes the kernel has now (b"" at end of stream), or None if reading would wait."""
        return None

    async def receive(self) -> bytes:
        """Wait for bytes (b"" at end of stream); raises trio.BrokenResourceError."""
        raise NotImplementedError

    def send_now(self, data: bytes | memoryview) -> memoryview:
        """Send what the kernel takes now; the rest (empty when everything went)."""
        return memoryview(data)

    def peer_closed(self) -> bool:
        """The peer closed or reset the connection and sent nothing before that (the bytes
        waiting are left for the next read); False when that cannot be known without reading."""
        return False

    async def send_rest(self, rest: memoryview) -> None:
        """Wait until all of `rest` is sent; raises trio.BrokenResourceError."""
        raise NotImplementedError

    def stream(self) -> trio.abc.Stream:
        """The connection as a trio stream (for a websocket upgrade); this object is done then."""
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


@final
class SocketIo(ConnectionIo):
    """A connected non-blocking stdlib socket, waited on through trio's I/O manager."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._stream: trio.SocketStream | None = None

    def receive_now(self) -> bytes | None:
        try:
            return self._sock.recv(_READ_SIZE)
        except BlockingIOError:
            return None
        except OSError as err:
            raise trio.BrokenResourceError(str(err)) from err

    async def receive(self) -> bytes:
        while True:
            await trio.lowlevel.wait_readable(self._sock)
            data = self.receive_now()
            if data is not None:
                return data

    def peer_closed(self) -> bool:
        if self._stream is not None:
            return False  # a websocket's now: its own reader sees the end
        try:
            waiting = self._sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True  # reset
        return not waiting

    def send_now(self, data: bytes | memoryview) -> memoryview:
        view = memoryview(data)
        while view:
            try:
                sent = self._sock.send(view)
            except BlockingIOError:
                break
            except OSError as err:
                raise trio.BrokenResourceError(str(err)) from err
            view = view[sent:]
        return view

    async def send_rest(self, rest: memoryview) -> None:
        while rest:
            await trio.lowlevel.wait_writable(self._sock)
            rest = self.send_now(rest)

    def stream(self) -> trio.abc.Stream:
        if self._stream is None:
            self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(self._sock))
        return self._stream

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
            return
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()
        await trio.lowlevel.checkpoint()


@final
class StreamIo(ConnectionIo):
    """Any trio stream (every call a checkpoint, as trio streams are)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream

    async def receive(self) -> bytes:
        return bytes(await self._stream.receive_some(_READ_SIZE))

    async def send_rest(self, rest: memoryview) -> None:
        await self._stream.send_all(rest)

    def stream(self) -> trio.abc.Stream:
        return self._stream

    async def aclose(self) -> None:
        await self._stream.aclose()


async def accept_socket(listener: trio.SocketListener) -> tuple[socket.socket, str | None]:
    """The next connection of `listener` as a non-blocking stdlib socket, and the peer's address.

    Raises OSError as `accept` does (the caller logs it and goes on).
    """
    conn, address = await listener.socket.accept()
    sock = socket.socket(conn.family, conn.type, conn.proto, fileno=conn.detach())
    sock.setblocking(False)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        # One `send` per response: do not hold its last segment back for an ACK (trio does this
        # for its own streams too).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = str(address[0]) if isinstance(address, tuple) else None
    return sock, client
