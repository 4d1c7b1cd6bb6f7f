"""Fuzz the `select` grammar alone: a tuple of items or `QueryParamError`, and a faithful render.

Input layout: the bytes, decoded as UTF-8 with `surrogateescape` (a query value is percent-decoded
bytes that may not be UTF-8), are one `select` value. An accepted value must render
(`render_select`) to text that parses to the same items.

    pip install atheris
    python fuzz/fuzz_rest_select.py fuzz/corpus/rest_select
"""

from __future__ import annotations

import sys

from madbase.protocol.rest import QueryParamError, parse_select, render_select


def test_one_input(data: bytes) -> None:
    """Parse `data` as a select list; fail on any other exception or a broken round trip."""
    text = data.decode("utf-8", "surrogateescape")
    try:
        items = parse_select(text, max_depth=8)
    except QueryParamError:
        return
    assert parse_select(render_select(items), max_depth=8) == items, (text, render_select(items))


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
