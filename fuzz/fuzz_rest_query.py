"""Fuzz the `/rest/v1` request parser with any query string: a value or a `RestError`, nothing else.

Input layout: the bytes are the raw query string (after `?`), decoded as latin-1 as the HTTP server
decodes the request line; the request is a fixed GET on `/rest/v1/todos` (GET/HEAD `/rpc/f` when
the first byte is odd, so RPC argument handling is reached too). An accepted request must render
back (`to_query_string`) to a query string that parses to the same value.

    pip install atheris
    python fuzz/fuzz_rest_query.py fuzz/corpus/rest_query
"""

from __future__ import annotations

import sys

from madbase.protocol.http import Request
from madbase.protocol.rest import RestError, RestLimits, parse_query, parse_request, to_query_string

LIMITS = RestLimits()
SCHEMAS = ("public", "api")


def test_one_input(data: bytes) -> None:
    """Parse the query string `data`; fail on any exception but `RestError` or a broken round trip."""
    query = data.decode("latin-1")
    subpath = "/rpc/f" if data[:1] and data[0] % 2 else "/todos"
    request = Request(method="GET", target=f"/rest/v1{subpath}?{query}")
    try:
        api = parse_request(request, subpath, LIMITS, SCHEMAS)
    except RestError as err:
        refused: RestError | None = err
    else:
        refused = None
        rpc_read = subpath == "/rpc/f"
        assert (
            parse_query(to_query_string(api.query), limits=LIMITS, rpc_read=rpc_read) == api.query
        )
    assert refused is None or 400 <= refused.status < 600, refused


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
