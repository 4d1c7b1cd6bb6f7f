"""The OpenAPI document's pure parts: type mapping, defaults, host, and a document from a snapshot."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.rest.openapi import (
    OpenApiContext,
    parse_default,
    render_openapi,
    swagger_type,
)
from tests.protocol.rest.test_plan import SNAP


@pytest.mark.parametrize(
    ("pg_type", "expected"),
    [
        ("integer", "integer"),
        ("bigint", "integer"),
        ("double precision", "number"),
        ("character varying", "string"),
        ("uuid", "string"),
        ("timestamp with time zone", "string"),
        ("json", None),
        ("jsonb", None),
        ("text[]", "array"),
        ("public.mood", "string"),
    ],
)
def test_swagger_types(pg_type: str, expected: str | None) -> None:
    assert swagger_type(pg_type) == expected


@pytest.mark.parametrize(
    ("pg_type", "default", "expected"),
    [
        ("text", "'abc'::text", "abc"),
        ("character varying", "'x'::character varying", "x"),
        ("integer", "42", 42),
        ("boolean", "false", False),
        ("numeric", "4.5", 4.5),
        ("timestamp with time zone", "now()", "now()"),
        ("integer", "nextval('s'::regclass)", None),
        ("jsonb", "'{}'::jsonb", None),
        ("text[]", "'{}'::text[]", None),
        ("text", "'a\"b'::text", None),
    ],
)
def test_defaults(pg_type: str, default: str, expected: object) -> None:
    assert parse_default(pg_type, default) == expected


@pytest.mark.parametrize(
    ("host", "proto", "expected"),
    [
        ("example.com", None, "example.com:80"),
        ("example.com", "https", "example.com:443"),
        ("example.com:8000", "HTTPS", "example.com:8000"),
        ("[::1]:3000", None, "[::1]:3000"),
        (None, None, "localhost:80"),
        ("a b", None, "localhost:80"),
        ("x/y", None, "localhost:80"),
    ],
)
def test_host(host: str | None, proto: str | None, expected: str) -> None:
    assert OpenApiContext.for_request(SNAP, "public", host, proto).host == expected


def test_document_filters_by_what_the_role_may_see() -> None:
    ctx = OpenApiContext.for_request(SNAP, "public", "h:1", None)
    doc = json.loads(render_openapi(ctx, b'{"relations":["cities"],"functions":[]}'))
    assert sorted(doc["paths"]) == ["/", "/cities"]
    assert list(doc["definitions"]) == ["cities"]
    assert doc["info"]["title"] == "MadBase REST API"
    with pytest.raises(ValueError, match="payload"):
        render_openapi(ctx, b"[]")


@given(st.text())
def test_comments_never_break_the_document(comment: str) -> None:
    ctx = OpenApiContext.for_request(SNAP, "public", None, None)
    access = json.dumps({"relations": ["cities"], "functions": [], "description": comment})
    doc = json.loads(render_openapi(ctx, access.encode("utf-8", "surrogatepass")))
    assert doc["swagger"] == "2.0"
