"""CPU time per request of each HTTP parser: parse a supabase-js GET, serialize a JSON answer.

No sockets, no trio, no application: only what `MADBASE_HTTP_PARSER` changes. CPU time of this
process (`time.process_time`), so other load on the machine disturbs it less than wrk's req/s.

    .venv/bin/python bench/http_parsers.py [--requests 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Measure this checkout, not a copy `pip install .` put in site-packages earlier.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from madbase.protocol.http import HttpLimits, json_response
from madbase.runtime.http.h11_parser import H11Parser
from madbase.runtime.http.httptools_parser import HttptoolsParser
from madbase.runtime.http.parser import RequestParser

_JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + "a" * 150 + "." + "b" * 43
# The headers supabase-js 2 sends with a table read (API key, bearer token, profile, client info).
REQUEST = (
    "GET /rest/v1/items?select=*&id=eq.42 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    f"apikey: {_JWT}\r\nAuthorization: Bearer {_JWT}\r\nAccept: application/json\r\n"
    "Accept-Profile: public\r\nX-Client-Info: supabase-js-node/2.119.0\r\nUser-Agent: node\r\n"
    "Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n"
).encode()
RESPONSE = json_response(
    200,
    [{"id": 42, "name": "item 42", "price": 42.99, "tags": ["tag0"]}],
    (("content-range", "0-0/*"),),
)
DATE = "Tue, 01 Dec 2026 04:00:00 GMT"


def per_request_us(parser: RequestParser, requests: int) -> float:
    """CPU µs per request for `requests` keep-alive cycles on one connection."""
    started = time.process_time()
    for _ in range(requests):
        parser.receive_data(REQUEST)
        parsed = parser.next_request()
        assert parsed is not None
        parser.response(parsed.request.method, RESPONSE, keep_alive=True, date=DATE)
    return (time.process_time() - started) / requests * 1e6


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--requests", type=int, default=20000)
    args.add_argument("--rounds", type=int, default=3)
    options = args.parse_args()
    settings = HttpLimits()
    for name, cls in (("h11", H11Parser), ("httptools", HttptoolsParser)):
        rounds = [
            per_request_us(cls(settings, "127.0.0.1"), options.requests)
            for _ in range(options.rounds)
        ]
        print(f"{name:<10} {min(rounds):6.1f} µs/request (best of {options.rounds})")


if __name__ == "__main__":
    main()
