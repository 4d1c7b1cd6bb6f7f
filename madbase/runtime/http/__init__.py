"""The runtime's HTTP fronts behind one interface: our HTTP/1.1 server and the ASGI front.

Both serve an `Application` (`server.py`): a `protocol.http.Request` in, a `Response` out, bodies
as bytes or streams, framing and limits from `madbase.protocol.http`.

- `server.py`: the native trio server, one task per connection; `parser.py` is its seam with the
  two request parsers, `h11_parser.py` (pure Python) and `httptools_parser.py` (llhttp), and
  `io.py` its socket reads and writes.
- `asgi.py`: the same `Application` as an ASGI 3 callable (`madbase.asgi:app` under hypercorn).
"""

from __future__ import annotations

from madbase.runtime.http.server import (
    Application,
    HttpServer,
    HttpStatistics,
    WebSocket,
    http_limits,
)

__all__ = ["Application", "HttpServer", "HttpStatistics", "WebSocket", "http_limits"]
