"""Request and Response values: path/query split, header and query-parameter lookup, JSON bodies."""

from __future__ import annotations

import json

import attrs
import pytest

from madbase.protocol.http import Request, Response, json_response


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/", "/", ""),
        ("/rest/v1/todos", "/rest/v1/todos", ""),
        ("/rest/v1/todos?select=*", "/rest/v1/todos", "select=*"),
        ("/x?", "/x", ""),
        ("/x?a=1?b=2", "/x", "a=1?b=2"),
        ("/a%20b?c=%3F", "/a%20b", "c=%3F"),
        ("", "", ""),
        ("?only=query", "", "only=query"),
    ],
)
def test_request_splits_target_into_path_and_query(target: str, path: str, query: str) -> None:
    request = Request(method="GET", target=target)
    assert request.path == path
    assert request.query == query


def test_request_header_returns_first_value() -> None:
    request = Request(method="GET", target="/", headers=(("x-a", "1"), ("x-b", "2"), ("x-a", "3")))
    assert request.header("x-a") == "1"
    assert request.header("x-b") == "2"


def test_request_header_is_exact_match_on_lower_case_names() -> None:
    request = Request(method="GET", target="/", headers=(("apikey", "k"),))
    assert request.header("missing") is None
    # Header names arrive lower-cased; lookups use lower-case names too.
    assert request.header("ApiKey") is None


@pytest.mark.parametrize(
    ("target", "name", "expected"),
    [
        ("/x?apikey=abc", "apikey", "abc"),
        ("/x?a=1&apikey=a%2Bb+c", "apikey", "a+b c"),
        ("/x?apikey=first&apikey=second", "apikey", "first"),
        ("/x?apikey=", "apikey", ""),
        ("/x?apikey", "apikey", ""),
        ("/x?other=1", "apikey", None),
        ("/x", "apikey", None),
        ("/x?k=%E2%82%AC", "k", "€"),
        ("/x?k=%FF", "k", "\ufffd"),  # invalid UTF-8 is replaced, never raised
        ("/x?k=%zz", "k", "%zz"),
    ],
)
def test_request_query_param_form_decodes(target: str, name: str, expected: str | None) -> None:
    assert Request(method="GET", target=target).query_param(name) == expected


def test_request_defaults_are_empty() -> None:
    request = Request(method="GET", target="/")
    assert request.headers == ()
    assert request.body == b""
    assert request.client is None


def test_request_is_frozen() -> None:
    request = Request(method="GET", target="/")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.method = "POST"  # type: ignore[misc]


def test_response_with_headers_appends_and_keeps_original() -> None:
    original = Response(status=204, headers=(("a", "1"),))
    extended = original.with_headers((("b", "2"), ("a", "3")))
    assert extended.headers == (("a", "1"), ("b", "2"), ("a", "3"))
    assert extended.status == 204
    assert original.headers == (("a", "1"),)


def test_response_header_returns_first_value_or_none() -> None:
    response = Response(status=200, headers=(("x", "1"), ("x", "2")))
    assert response.header("x") == "1"
    assert response.header("y") is None


@pytest.mark.parametrize(
    ("value", "body"),
    [
        ({"a": 1}, b'{"a":1}'),
        ([1, "two", None, True], b'[1,"two",null,true]'),
        (None, b"null"),
        ({"msg": "café €"}, '{"msg":"café €"}'.encode()),
        ({"nested": {"x": [1.5]}}, b'{"nested":{"x":[1.5]}}'),
    ],
)
def test_json_response_encodes_compact_utf8(value: object, body: bytes) -> None:
    response = json_response(200, value)  # type: ignore[arg-type]
    assert response.body == body
    assert json.loads(response.body) == value


def test_json_response_sets_content_type_first_then_extra_headers() -> None:
    response = json_response(418, {}, (("x-extra", "1"),))
    assert response.status == 418
    assert response.headers == (
        ("content-type", "application/json; charset=utf-8"),
        ("x-extra", "1"),
    )


def test_request_repr_redacts_credentials() -> None:
    request = Request(
        method="POST",
        target="/rest/v1/t?select=*&apikey=secret-key&token=tok-value",
        headers=(
            ("apikey", "secret-key"),
            ("authorization", "Bearer secret-jwt"),
            ("accept", "*/*"),
        ),
        body=b"password=hunter2",
    )
    text = repr(request)
    for secret in ("secret-key", "secret-jwt", "tok-value", "hunter2"):
        assert secret not in text
    assert "('accept', '*/*')" in text
    assert "select=*" in text
    assert "<16 bytes>" in text
