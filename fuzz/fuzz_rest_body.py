"""Fuzz `/rest/v1` write bodies: JSON, CSV and form bodies through the whole write planner.

Input layout: byte 0 picks the method (POST, PATCH, PUT) and byte 1 the `Content-Type` (JSON,
CSV, form, text/plain, absent); the rest is the body. `compile_request` must return a transaction
or raise `RestError`; a parsed payload's bound JSON text must be valid, storable JSON naming only
columns the table has.

    pip install atheris
    python fuzz/fuzz_rest_body.py fuzz/corpus/rest_body
"""

from __future__ import annotations

import json
import sys

from madbase.protocol.rest import RestError, SchemaSnapshot
from madbase.protocol.rest.compile import compile_request
from madbase.protocol.rest.schema import Column, QualifiedName, Relation, RelationKind

COLUMNS = ("id", "name", "qty")
ITEMS = Relation(
    name=QualifiedName("public", "items"),
    kind=RelationKind.TABLE,
    columns=tuple(
        Column(name=c, position=i + 1, type="integer", base_type="integer")
        for i, c in enumerate(COLUMNS)
    ),
    primary_key=("id",),
    insertable=True,
    updatable=True,
    deletable=True,
)
SNAPSHOT = SchemaSnapshot.build(schemas=("public",), relations=(ITEMS,))
METHODS = (("POST", "/items", ""), ("PATCH", "/items", "id=eq.1"), ("PUT", "/items", "id=eq.1"))
TYPES = ("application/json", "text/csv", "application/x-www-form-urlencoded", "text/plain", None)


def test_one_input(data: bytes) -> None:
    """Plan a write of `data`; fail on any exception but `RestError`."""
    method, path, query = METHODS[data[0] % len(METHODS)] if data else METHODS[0]
    content_type = TYPES[data[1] % len(TYPES)] if len(data) > 1 else TYPES[0]
    headers = {} if content_type is None else {"content-type": content_type}
    refused: RestError | None = None
    try:
        tx = compile_request(method, path, query, headers, data[2:], SNAPSHOT)
    except RestError as err:
        refused = err
    if refused is not None:
        assert 400 <= refused.status < 600, refused
        return
    params = tx.statements[0].params
    if not params:
        return  # PATCH of `{}` (or an empty form): nothing to write, no body bound
    payload = params[0]
    assert payload is not None
    value = json.loads(payload)
    payload.encode("utf-8")  # storable: no lone surrogates
    rows = value if isinstance(value, list) else [value]
    assert all(isinstance(row, dict) and set(row) <= set(COLUMNS) for row in rows)


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
