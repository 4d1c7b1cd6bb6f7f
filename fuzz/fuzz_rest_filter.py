"""Fuzz horizontal filters and logic trees: `key=value` as one filter or one `and`/`or` tree.

Input layout: the bytes, decoded as UTF-8 with `surrogateescape`, are split at the first `=` into
the parameter's key and value (no `=`: the whole input is the value of key `col`). A key whose
last word is `and`/`or` is parsed as a logic tree (nesting capped at 16 levels), anything else as
a filter. Only `QueryParamError` may escape; an accepted item must render back to itself.

    pip install atheris
    python fuzz/fuzz_rest_filter.py fuzz/corpus/rest_filter
"""

from __future__ import annotations

import sys

from madbase.protocol.rest import (
    QueryParamError,
    parse_filter,
    parse_logic,
    render_filter,
    render_logic,
)


def test_one_input(data: bytes) -> None:
    """Parse one filter or logic parameter; fail on any other exception or a broken round trip."""
    text = data.decode("utf-8", "surrogateescape")
    key, sep, value = text.partition("=")
    if not sep:
        key, value = "col", text
    try:
        if key.rsplit(".", 1)[-1] in ("and", "or"):
            logic = parse_logic(key, value, max_depth=16)
            assert parse_logic(*render_logic(logic), max_depth=16) == logic, text
        else:
            item = parse_filter(key, value)
            assert parse_filter(*render_filter(item)) == item, text
    except QueryParamError:
        return


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
