"""Fuzz the `/rest/v1` header parsers: `Prefer`, `Range`, `Accept` (and the profile headers).

Input layout (latin-1, as the HTTP server decodes heads): line 1 is `Prefer`, line 2 `Range`,
line 3 `Accept`, line 4 `Accept-Profile`. Each parser must return a value or raise `RestError`;
the whole request must parse or raise `RestError`. A parsed `Prefer` must render back to itself.

    pip install atheris
    python fuzz/fuzz_rest_prefer.py fuzz/corpus/rest_prefer
"""

from __future__ import annotations

import sys

from madbase.protocol.http import Request
from madbase.protocol.rest import (
    RestError,
    RestLimits,
    parse_accept,
    parse_media_type,
    parse_prefer,
    parse_range,
    parse_request,
    render_prefer,
    to_mime,
)

LIMITS = RestLimits(tx_allow_override=True, plan_enabled=True)
SCHEMAS = ("public", "api")


def test_one_input(data: bytes) -> None:
    """Parse the headers `data` describes; fail on any exception but `RestError`."""
    lines = [*data.decode("latin-1").split("\n"), "", "", "", ""]
    prefer, range_, accept, profile = (line.rstrip("\r") for line in lines[:4])
    prefs = parse_prefer([prefer], tx_allow_override=True)
    if "," not in (prefs.timezone or ""):
        assert parse_prefer([render_prefer(prefs)], tx_allow_override=True) == prefs
    parse_range(range_)
    for media in parse_accept(accept):
        assert parse_media_type(to_mime(media)).kind == media.kind
    headers = (
        ("prefer", prefer),
        ("range", range_),
        ("accept", accept),
        ("accept-profile", profile),
    )
    request = Request(method="GET", target="/rest/v1/t", headers=headers)
    refused: RestError | None = None
    try:
        parse_request(request, "/t", LIMITS, SCHEMAS)
    except RestError as err:
        refused = err
    assert refused is None or 400 <= refused.status < 600, refused


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
