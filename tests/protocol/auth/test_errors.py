"""GoTrue error classes and the three error body shapes (spec/auth.md §6)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import madbase.protocol.auth as auth
from madbase.protocol.auth import (
    AuthError,
    OAuthRequestError,
    SessionExpired,
    UnexpectedFailure,
    ValidationFailed,
    WeakPassword,
    auth_api_version,
    auth_error_class,
    render_auth_error,
)
from madbase.protocol.http import ProtocolError

# spec/auth.md §6: code -> usual status.
SPEC_CODES = {
    "provider_email_needs_verification": 422,
    "validation_failed": 400,
    "bad_json": 400,
    "invalid_credentials": 400,
    "email_not_confirmed": 400,
    "phone_not_confirmed": 400,
    "user_already_exists": 422,
    "email_exists": 422,
    "phone_exists": 422,
    "weak_password": 422,
    "signup_disabled": 422,
    "email_provider_disabled": 422,
    "phone_provider_disabled": 422,
    "anonymous_provider_disabled": 422,
    "otp_disabled": 422,
    "otp_expired": 403,
    "no_authorization": 401,
    "bad_jwt": 403,
    "not_admin": 403,
    "user_not_found": 404,
    "session_not_found": 403,
    "session_expired": 400,
    "refresh_token_not_found": 400,
    "refresh_token_already_used": 400,
    "user_banned": 400,
    "flow_state_not_found": 404,
    "flow_state_expired": 422,
    "bad_code_verifier": 400,
    "same_password": 422,
    "reauthentication_needed": 400,
    "reauthentication_not_valid": 422,
    "current_password_required": 400,
    "current_password_invalid": 400,
    "insufficient_aal": 403,
    "mfa_factor_not_found": 404,
    "mfa_challenge_expired": 422,
    "mfa_verification_failed": 422,
    "too_many_enrolled_mfa_factors": 422,
    "mfa_factor_name_conflict": 422,
    "mfa_totp_enroll_not_enabled": 422,
    "identity_not_found": 422,
    "identity_already_exists": 422,
    "single_identity_not_deletable": 422,
    "manual_linking_disabled": 404,
    "sso_provider_not_found": 404,
    "saml_provider_disabled": 404,
    "provider_disabled": 400,
    "oauth_provider_not_supported": 400,
    "bad_oauth_state": 400,
    "bad_oauth_callback": 400,
    "over_request_rate_limit": 429,
    "over_email_send_rate_limit": 429,
    "over_sms_send_rate_limit": 429,
    "email_address_invalid": 400,
    "email_address_not_authorized": 400,
    "conflict": 409,
    "unexpected_failure": 500,
}

ALL_CLASSES = sorted(
    (
        value
        for value in vars(auth).values()
        if isinstance(value, type) and issubclass(value, AuthError) and value.error_code
    ),
    key=lambda cls: cls.error_code,
)
VERSIONS = ["2024-01-01", "2025-06-30"]
LEGACY = [None, "", "2023-12-31", "2024-1-1", "garbage", "2024-02-30", "2024-01-01x"]


def body(err: AuthError, version: str | None) -> dict[str, object]:
    result = json.loads(render_auth_error(err, api_version=version).body)
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize(("code", "status"), sorted(SPEC_CODES.items()))
def test_errors_spec_code_has_class_with_status(code: str, status: int) -> None:
    cls = auth_error_class(code)
    assert cls.error_code == code
    assert cls.status == status
    assert issubclass(cls, ProtocolError)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.error_code)
def test_errors_each_class_renders_both_shapes(cls: type[AuthError]) -> None:
    err = cls()
    assert err.message == cls.default_message
    assert err.http_status == cls.status
    assert str(err) == cls.default_message
    versioned = render_auth_error(err, api_version="2024-01-01")
    assert versioned.status == cls.status
    assert versioned.header("x-supabase-api-version") == "2024-01-01"
    assert versioned.header("x-sb-error-code") == cls.error_code
    assert versioned.error_code == cls.error_code  # for the access log
    assert json.loads(versioned.body)["code"] == cls.error_code
    assert json.loads(versioned.body)["message"] == cls.default_message
    legacy = render_auth_error(err, api_version=None)
    assert legacy.header("x-supabase-api-version") is None
    assert legacy.header("x-sb-error-code") == cls.error_code
    assert json.loads(legacy.body) | {"weak_password": None} == {
        "code": cls.status,
        "error_code": cls.error_code,
        "msg": cls.default_message,
        "weak_password": None,
    }


def test_errors_codes_are_unique() -> None:
    codes = [cls.error_code for cls in ALL_CLASSES]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("version", VERSIONS)
def test_errors_versioned_shape(version: str) -> None:
    response = render_auth_error(SessionExpired("gone"), api_version=version)
    assert response.status == 400
    assert response.body == b'{"code":"session_expired","message":"gone"}'
    assert response.header("content-type") == "application/json; charset=utf-8"


@pytest.mark.parametrize("version", LEGACY)
def test_errors_legacy_shape(version: str | None) -> None:
    response = render_auth_error(SessionExpired("gone"), api_version=version)
    assert response.body == b'{"code":400,"error_code":"session_expired","msg":"gone"}'
    assert response.header("x-supabase-api-version") is None


def test_errors_instance_status_overrides_class_status() -> None:
    err = ValidationFailed("Invalid email format", status=422)
    assert err.http_status == 422
    assert ValidationFailed.status == 400
    assert render_auth_error(err, api_version=None).status == 422
    assert body(err, None)["code"] == 422
    assert repr(err) == "ValidationFailed('Invalid email format', status=422)"


@pytest.mark.parametrize(
    ("status", "code"), [(500, "unexpected_failure"), (400, "unknown"), (503, "unknown")]
)
def test_errors_without_code_get_fallback_code(status: int, code: str) -> None:
    err = AuthError("boom", status=status)
    for version in ("2024-01-01", None):
        response = render_auth_error(err, api_version=version)
        assert response.status == status
        assert response.header("x-sb-error-code") is None
    assert body(err, "2024-01-01") == {"code": code, "message": "boom"}
    assert body(err, None) == {"code": status, "error_code": code, "msg": "boom"}


def test_errors_legacy_5xx_carries_error_id() -> None:
    err = UnexpectedFailure()
    legacy = json.loads(render_auth_error(err, api_version=None, request_id="req-1").body)
    assert legacy["error_id"] == "req-1"
    versioned = json.loads(render_auth_error(err, api_version="2024-01-01", request_id="r").body)
    assert "error_id" not in versioned
    small = json.loads(render_auth_error(SessionExpired(), api_version=None, request_id="r").body)
    assert "error_id" not in small


def test_errors_weak_password_shapes() -> None:
    err = WeakPassword("Password should be at least 6 characters.", reasons=("length",))
    assert err.reasons == ("length",)
    assert body(err, "2024-01-01") == {
        "code": "weak_password",
        "message": "Password should be at least 6 characters.",
        "weak_password": {"reasons": ["length"]},
    }
    assert body(err, None) == {
        "code": 422,
        "error_code": "weak_password",
        "msg": "Password should be at least 6 characters.",
        "weak_password": {"reasons": ["length"]},
    }
    assert body(WeakPassword(), None)["weak_password"] == {}


def test_errors_oauth_shape() -> None:
    err = OAuthRequestError("invalid request", "id_token required")
    assert str(err) == "invalid request: id_token required"
    response = render_auth_error(err, api_version=None)
    assert response.status == 400
    assert response.body == b'{"error":"invalid request","error_description":"id_token required"}'
    assert response.header("x-sb-error-code") is None
    versioned = render_auth_error(OAuthRequestError("invalid_grant"), api_version="2024-01-01")
    assert versioned.body == b'{"error":"invalid_grant"}'
    assert versioned.header("x-supabase-api-version") == "2024-01-01"


def test_errors_unknown_code_maps_to_base_class() -> None:
    assert auth_error_class("nope") is AuthError
    assert auth_error_class("") is AuthError


@pytest.mark.parametrize(
    ("header", "expected"),
    [("2024-01-01", "2024-01-01"), ("2099-12-31", "2024-01-01")]
    + [(value, None) for value in LEGACY],
)
def test_errors_api_version(header: str | None, expected: str | None) -> None:
    assert auth_api_version(header) == expected


@given(st.text(max_size=20))
def test_errors_api_version_total(header: str) -> None:
    assert auth_api_version(header) in (None, "2024-01-01")
    response = render_auth_error(ValidationFailed(header), api_version=header)
    assert json.loads(response.body)
