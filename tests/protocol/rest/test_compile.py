"""`compile_request`: the reusable entry point from a request to SQL."""

from __future__ import annotations

import pytest

from madbase.protocol.identity.bearer import Principal
from madbase.protocol.rest import (
    Column,
    QualifiedName,
    Relation,
    RelationKind,
    RestError,
    SchemaSnapshot,
)
from madbase.protocol.rest.compile import compile_request


def snapshot() -> SchemaSnapshot:
    todos = Relation(
        name=QualifiedName("public", "todos"),
        kind=RelationKind.TABLE,
        columns=tuple(
            Column(name=name, position=i + 1, type=kind, base_type=kind)
            for i, (name, kind) in enumerate(
                (("id", "integer"), ("task", "text"), ("done", "boolean"))
            )
        ),
        primary_key=("id",),
    )
    return SchemaSnapshot.build(schemas=("public",), relations=(todos,))


def test_compile_request_gives_parameterised_sql() -> None:
    tx = compile_request(
        "GET", "/todos", "select=id,task&task=eq.x'; drop table todos;--", {}, b"", snapshot()
    )
    assert tx.read_only
    statement = tx.statements[-1]
    assert '"public"."todos"' in statement.sql
    assert "drop table" not in statement.sql
    assert "x'; drop table todos;--" in statement.params
    settings = dict(tx.settings)
    assert settings["role"] == "anon"
    assert settings["request.method"] == "GET"


def test_compile_request_uses_the_given_identity() -> None:
    auth = Principal(
        role="authenticated", claims_json='{"role":"authenticated","sub":"u1"}', subject="u1"
    )
    tx = compile_request("GET", "/todos", "", {"Prefer": "count=exact"}, b"", snapshot(), auth=auth)
    settings = dict(tx.settings)
    assert settings["role"] == "authenticated"
    assert settings["request.jwt.claims"] == '{"role":"authenticated","sub":"u1"}'
    assert '"prefer":"count=exact"' in settings["request.headers"]


@pytest.mark.parametrize(
    ("path", "query", "code"),
    [
        ("/nope", "", "PGRST205"),
        ("/todos", "select=missing", "42703"),
        ("/todos", "id=zz.1", "PGRST100"),
    ],
)
def test_compile_request_raises_postgrest_errors(path: str, query: str, code: str) -> None:
    with pytest.raises(RestError) as caught:
        compile_request("GET", path, query, {}, b"", snapshot())
    assert caught.value.code == code
