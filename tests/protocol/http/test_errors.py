"""Gateway errors rendered in each service's own error shape, as the official clients read them.

Each service owns its renderer (`render_rest_refusal`, `render_auth_refusal`, ...); the gateway
renders only outside every service (`render_refusal`).
"""

from __future__ import annotations

import json

import pytest

from madbase.protocol.auth import render_auth_refusal
from madbase.protocol.http import (
    AmbiguousCredentials,
    GatewayError,
    InvalidApiKey,
    MissingApiKey,
    ProtocolError,
    Request,
    Response,
    RouteNotFound,
    Service,
    render_refusal,
)
from madbase.protocol.http.errors import MethodNotAllowed, NotAProxy
from madbase.protocol.realtime import render_realtime_refusal
from madbase.protocol.rest import render_rest_refusal
from madbase.protocol.storage import render_storage_refusal

JSON = ("content-type", "application/json; charset=utf-8")


def render(service: Service | None, err: GatewayError) -> Response:
    """`err` in `service`'s envelope (None: the gateway's own)."""
    match service:
        case Service.REST:
            return render_rest_refusal(err, asked())
        case Service.AUTH:
            return render_auth_refusal(err, asked())
        case Service.STORAGE:
            return render_storage_refusal(err, asked())
        case Service.REALTIME:
            return render_realtime_refusal(err, asked())
    return render_refusal(err)


def asked(version: str | None = None) -> Request:
    headers = () if version is None else (("x-supabase-api-version", version),)
    return Request(method="GET", target="/", headers=headers)


@pytest.mark.parametrize(
    ("err", "body"),
    [
        (
            MissingApiKey(),
            {
                "code": "PGRST302",
                "message": "No API key found in request",
                "details": None,
                "hint": "No `apikey` request header or url param was found.",
            },
        ),
        (
            InvalidApiKey(),
            {
                "code": "PGRST301",
                "message": "Invalid API key",
                "details": None,
                "hint": "Double check your Supabase `anon` or `service_role` API key.",
            },
        ),
        (
            RouteNotFound("gone"),
            {"code": "PGRST125", "message": "gone", "details": None, "hint": None},
        ),
    ],
)
def test_render_error_rest_shape(err: GatewayError, body: object) -> None:
    response = render_rest_refusal(err, asked())
    assert response.status == err.status
    assert response.headers == (JSON,)
    assert json.loads(response.body) == body


@pytest.mark.parametrize(
    ("err", "status", "code", "message"),
    [
        (MissingApiKey(), 401, "no_authorization", "No API key found in request"),
        (InvalidApiKey(), 401, "bad_jwt", "Invalid API key"),
        (RouteNotFound(), 404, "not_found", "Not found"),
    ],
)
@pytest.mark.parametrize("version", [None, "2023-12-31", ""])
def test_render_error_auth_legacy_shape(
    err: GatewayError, status: int, code: str, message: str, version: str | None
) -> None:
    response = render_auth_refusal(err, asked(version))
    assert response.status == status
    assert json.loads(response.body) == {"code": status, "error_code": code, "msg": message}
    assert response.header("x-sb-error-code") == code
    assert response.header("x-supabase-api-version") is None


@pytest.mark.parametrize(
    ("err", "status", "code", "message"),
    [
        (MissingApiKey(), 401, "no_authorization", "No API key found in request"),
        (InvalidApiKey(), 401, "bad_jwt", "Invalid API key"),
        (RouteNotFound(), 404, "not_found", "Not found"),
    ],
)
@pytest.mark.parametrize("version", ["2024-01-01", "2025-06-30"])
def test_render_error_auth_versioned_shape(
    err: GatewayError, status: int, code: str, message: str, version: str
) -> None:
    response = render_auth_refusal(err, asked(version))
    assert response.status == status
    assert json.loads(response.body) == {"code": code, "message": message}
    assert response.headers == (
        JSON,
        ("x-supabase-api-version", "2024-01-01"),
        ("x-sb-error-code", code),
    )


@pytest.mark.parametrize(
    ("err", "body"),
    [
        (
            MissingApiKey(),
            {
                "statusCode": "401",
                "error": "Unauthorized",
                "message": "No API key found in request",
            },
        ),
        (
            InvalidApiKey(),
            {"statusCode": "401", "error": "Unauthorized", "message": "Invalid API key"},
        ),
        (RouteNotFound(), {"statusCode": "404", "error": "not_found", "message": "Not found"}),
    ],
)
def test_render_error_storage_shape(err: GatewayError, body: object) -> None:
    response = render_storage_refusal(err, asked())
    assert response.status == err.status
    assert json.loads(response.body) == body


@pytest.mark.parametrize("err", [MissingApiKey(), InvalidApiKey(), RouteNotFound("nope")])
def test_render_error_realtime_shape(err: GatewayError) -> None:
    response = render_realtime_refusal(err, asked())
    assert response.status == err.status
    assert json.loads(response.body) == {"error": str(err)}


@pytest.mark.parametrize(
    ("err", "body"),
    [
        (
            RouteNotFound("no Route matched with those values"),
            {"message": "no Route matched with those values"},
        ),
        (
            MissingApiKey(),
            {
                "message": "No API key found in request",
                "hint": "No `apikey` request header or url param was found.",
            },
        ),
    ],
)
def test_render_error_outside_services_is_gateway_message(err: GatewayError, body: object) -> None:
    response = render_refusal(err)
    assert response.status == err.status
    assert json.loads(response.body) == body


@pytest.mark.parametrize(
    ("cls", "status"), [(MissingApiKey, 401), (InvalidApiKey, 401), (RouteNotFound, 404)]
)
def test_gateway_error_status_and_hierarchy(cls: type[GatewayError], status: int) -> None:
    err = cls()
    assert err.status == status
    assert isinstance(err, GatewayError)
    assert isinstance(err, ProtocolError)


@pytest.mark.parametrize(
    ("service", "code"),
    [
        (Service.REST, "PGRST301"),
        (Service.AUTH, "bad_jwt"),
        (Service.STORAGE, "Unauthorized"),
        (Service.REALTIME, "bad_jwt"),
        (None, "bad_jwt"),
    ],
)
def test_render_error_names_the_code_it_answers_with(service: Service | None, code: str) -> None:
    # The access log reads it; shapes without a code of their own name the gateway's code.
    assert render(service, InvalidApiKey()).error_code == code


@pytest.mark.parametrize("service", [*Service, None])
def test_render_error_method_not_allowed_lists_allowed_methods(service: Service | None) -> None:
    response = render(service, MethodNotAllowed("TRACE", "GET, POST"))
    assert response.status == 405
    assert response.header("allow") == "GET, POST"
    assert "Unsupported HTTP method: TRACE" in response.body.decode()


def test_render_error_not_a_proxy_is_400_without_allow() -> None:
    response = render(None, NotAProxy())
    assert response.status == 400
    assert response.header("allow") is None
    assert response.error_code == "bad_request"


def test_gateway_error_detail_replaces_default_message() -> None:
    assert str(RouteNotFound()) == "Not found"
    assert RouteNotFound().detail is None
    err = RouteNotFound("Route GET:/x not found")
    assert str(err) == "Route GET:/x not found"
    assert err.detail == "Route GET:/x not found"


def test_protocol_error_defaults_to_bad_request() -> None:
    assert ProtocolError.status == 400


@pytest.mark.parametrize(
    ("service", "value"),
    [
        (Service.REST, "rest"),
        (Service.AUTH, "auth"),
        (Service.STORAGE, "storage"),
        (Service.REALTIME, "realtime"),
    ],
)
def test_service_values_are_mount_names(service: Service, value: str) -> None:
    assert service == value
    assert Service(value) is service


@pytest.mark.parametrize(
    ("version", "versioned"),
    [
        ("2024-01-01", True),
        ("2025-06-30", True),
        ("2023-12-31", False),
        ("zzz", False),
        ("2024-1-1", False),
        ("", False),
    ],
)
def test_render_error_auth_shape_follows_a_valid_api_date(version: str, versioned: bool) -> None:
    response = render_auth_refusal(MissingApiKey(), asked(version))
    body = json.loads(response.body)
    assert (body["code"] == "no_authorization") is versioned
    assert (response.header("x-supabase-api-version") == "2024-01-01") is versioned


# Not a calendar date: GoTrue (`auth_api_version`) answers in the legacy shape, and so does every
# refusal under /auth/v1. The gateway used to check only the digits and answered these in the
# versioned shape, so the same client got two shapes from one server.
@pytest.mark.parametrize("version", ["2024-02-30", "2024-13-01", "2025-06-31"])
@pytest.mark.parametrize(
    ("err", "code"),
    [
        (MissingApiKey(), "no_authorization"),
        (InvalidApiKey(), "bad_jwt"),
        (AmbiguousCredentials(), "validation_failed"),
        (RouteNotFound(), "not_found"),
    ],
)
def test_render_auth_refusal_impossible_date_is_legacy_shape_as_gotrue(
    version: str, err: GatewayError, code: str
) -> None:
    response = render_auth_refusal(err, asked(version))
    assert json.loads(response.body) == {"code": err.status, "error_code": code, "msg": str(err)}
    assert response.header("x-supabase-api-version") is None
