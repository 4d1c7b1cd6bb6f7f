"""Token grants, logout scope and MFA factor bodies."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.auth import AuthError, AuthLimits
from madbase.protocol.auth.error_response import render_auth_error
from madbase.protocol.auth.errors import OAuthRequestError
from madbase.protocol.auth.session.grants import (
    ChallengeFactorRequest,
    EnrollFactorRequest,
    IdTokenGrant,
    LogoutScope,
    PasswordGrant,
    PkceGrant,
    RefreshTokenGrant,
    VerifyFactorRequest,
    parse_challenge_factor,
    parse_enroll_factor,
    parse_logout_scope,
    parse_token_request,
    parse_verify_factor,
)

LIMITS = AuthLimits()
OPEN = AuthLimits(
    phone_enabled=True, mfa_phone_enroll_enabled=True, mfa_webauthn_enroll_enabled=True
)
CHALLENGE_ID = "44444444-4444-4444-8444-444444444444"


def j(value: object) -> bytes:
    return json.dumps(value).encode()


def error_of(call: object) -> AuthError:
    assert callable(call)
    with pytest.raises(AuthError) as info:
        call()
    return info.value


def test_grants_password() -> None:
    assert parse_token_request("password", j({"email": "A@b.co", "password": "pw"}), LIMITS) == (
        PasswordGrant(email="a@b.co", phone=None, password="pw")
    )
    assert parse_token_request("password", j({"phone": "+1 555", "password": ""}), OPEN) == (
        PasswordGrant(email=None, phone="1555", password="")
    )


@pytest.mark.parametrize(
    ("body", "limits", "code", "status", "message"),
    [
        (
            {"email": "a@b.co", "phone": "1"},
            LIMITS,
            "validation_failed",
            400,
            "Only an email address or phone number should be provided on login.",
        ),
        ({"password": "x"}, LIMITS, "validation_failed", 400, "missing email or phone"),
        (
            {"email": "a@b.co"},
            AuthLimits(email_enabled=False),
            "email_provider_disabled",
            422,
            "Email logins are disabled",
        ),
        ({"phone": "1555"}, LIMITS, "phone_provider_disabled", 422, "Phone logins are disabled"),
    ],
)
def test_grants_password_errors(
    body: dict[str, object], limits: AuthLimits, code: str, status: int, message: str
) -> None:
    err = error_of(lambda: parse_token_request("password", j(body), limits))
    assert (err.error_code, err.http_status, err.message) == (code, status, message)


@pytest.mark.parametrize("token", ["abcdefghij12", "a" * 40])
def test_grants_refresh_token(token: str) -> None:
    request = parse_token_request("refresh_token", j({"refresh_token": token}), LIMITS)
    assert request == RefreshTokenGrant(refresh_token=token)
    assert token not in repr(request)


@pytest.mark.parametrize("token", ["", "short", "ABCDEFGHIJKL", "abcdefghij1!"])
def test_grants_refresh_token_invalid(token: str) -> None:
    err = error_of(
        lambda: parse_token_request("refresh_token", j({"refresh_token": token}), LIMITS)
    )
    assert (err.error_code, err.message) == ("validation_failed", "Refresh token is not valid")


def test_grants_pkce() -> None:
    body = j({"auth_code": "code", "code_verifier": "verifier"})
    assert parse_token_request("pkce", body, LIMITS) == PkceGrant(
        auth_code="code", code_verifier="verifier"
    )
    err = error_of(lambda: parse_token_request("pkce", j({"auth_code": "code"}), LIMITS))
    assert err.message == "invalid request: both auth code and code verifier should be non-empty"


def test_grants_id_token() -> None:
    body = j({"provider": "google", "id_token": "jwt", "nonce": "n", "link_identity": True})
    assert parse_token_request("id_token", body, LIMITS) == IdTokenGrant(
        id_token="jwt", provider="google", nonce="n", link_identity=True
    )
    by_issuer = j({"id_token": "jwt", "client_id": "c", "issuer": "https://i"})
    assert parse_token_request("id_token", by_issuer, LIMITS).issuer == "https://i"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "description"),
    [
        ({"provider": "google"}, "id_token required"),
        ({"id_token": "jwt"}, "provider or client_id and issuer required"),
        ({"id_token": "jwt", "client_id": "c"}, "provider or client_id and issuer required"),
    ],
)
def test_grants_id_token_oauth_errors(body: dict[str, object], description: str) -> None:
    err = error_of(lambda: parse_token_request("id_token", j(body), LIMITS))
    assert isinstance(err, OAuthRequestError)
    response = render_auth_error(err, api_version="2024-01-01")
    assert json.loads(response.body) == {
        "error": "invalid request",
        "error_description": description,
    }


@pytest.mark.parametrize(
    ("grant_type", "code", "status", "message"),
    [
        (None, "invalid_credentials", 400, "unsupported_grant_type"),
        ("client_credentials", "invalid_credentials", 400, "unsupported_grant_type"),
        ("web3", "web3_provider_disabled", 422, "Web3 provider is disabled"),
    ],
)
def test_grants_unsupported(grant_type: str | None, code: str, status: int, message: str) -> None:
    err = error_of(lambda: parse_token_request(grant_type, b"{}", LIMITS))
    assert (err.error_code, err.http_status, err.message) == (code, status, message)


@pytest.mark.parametrize("grant_type", ["password", "refresh_token", "pkce", "id_token"])
def test_grants_bad_json(grant_type: str) -> None:
    assert error_of(lambda: parse_token_request(grant_type, b"{", LIMITS)).error_code == "bad_json"


@given(
    st.sampled_from(["password", "refresh_token", "pkce", "id_token", "web3", "x"]),
    st.binary(max_size=200),
)
def test_grants_any_bytes_give_request_or_auth_error(grant_type: str, body: bytes) -> None:
    with contextlib.suppress(AuthError):
        parse_token_request(grant_type, body, OPEN)


@pytest.mark.parametrize(
    ("value", "scope"),
    [(None, LogoutScope.GLOBAL), ("", LogoutScope.GLOBAL), ("global", LogoutScope.GLOBAL),
     ("local", LogoutScope.LOCAL), ("others", LogoutScope.OTHERS)],
)  # fmt: skip
def test_grants_logout_scope(value: str | None, scope: LogoutScope) -> None:
    assert parse_logout_scope(value) is scope


def test_grants_logout_scope_unsupported() -> None:
    err = error_of(lambda: parse_logout_scope("Global"))
    assert (err.error_code, err.message) == (
        "validation_failed",
        'Unsupported logout scope "Global"',
    )


def test_grants_enroll_factor() -> None:
    totp = parse_enroll_factor(
        j({"factor_type": "totp", "friendly_name": "app", "issuer": "me"}), LIMITS
    )
    assert totp == EnrollFactorRequest(factor_type="totp", friendly_name="app", issuer="me")
    phone = parse_enroll_factor(j({"factor_type": "phone", "phone": "+1 555 0100"}), OPEN)
    assert phone == EnrollFactorRequest(factor_type="phone", phone="15550100")
    webauthn = parse_enroll_factor(j({"factor_type": "webauthn"}), OPEN)
    assert webauthn == EnrollFactorRequest(factor_type="webauthn")


@pytest.mark.parametrize(
    ("body", "limits", "code", "message"),
    [
        (
            {"factor_type": "sms"},
            LIMITS,
            "validation_failed",
            "factor_type needs to be totp, phone, or webauthn",
        ),
        (
            {"factor_type": "totp"},
            AuthLimits(mfa_totp_enroll_enabled=False),
            "mfa_totp_enroll_not_enabled",
            "MFA enroll is disabled for TOTP",
        ),
        (
            {"factor_type": "phone", "phone": "15550100"},
            LIMITS,
            "mfa_phone_enroll_not_enabled",
            "MFA enroll is disabled for Phone",
        ),
        (
            {"factor_type": "webauthn"},
            LIMITS,
            "mfa_webauthn_enroll_not_enabled",
            "MFA enroll is disabled for WebAuthn",
        ),
        (
            {"factor_type": "phone"},
            OPEN,
            "validation_failed",
            "Phone number required to enroll Phone factor",
        ),
        (
            {"factor_type": "phone", "phone": "x"},
            OPEN,
            "validation_failed",
            "Invalid phone number format (E.164 required)",
        ),
    ],
)
def test_grants_enroll_factor_errors(
    body: dict[str, object], limits: AuthLimits, code: str, message: str
) -> None:
    err = error_of(lambda: parse_enroll_factor(j(body), limits))
    assert (err.error_code, err.message) == (code, message)


def test_grants_challenge_factor() -> None:
    assert parse_challenge_factor(b"{}", LIMITS, factor_type="totp") == ChallengeFactorRequest()
    assert (
        parse_challenge_factor(j({"channel": "fax"}), LIMITS, factor_type="totp").channel == "fax"
    )
    err = error_of(
        lambda: parse_challenge_factor(j({"channel": "fax"}), LIMITS, factor_type="phone")
    )
    assert err.error_code == "validation_failed"


def test_grants_verify_factor() -> None:
    body = j({"challenge_id": CHALLENGE_ID.upper(), "code": "123456"})
    request = parse_verify_factor(body, LIMITS, factor_type="totp")
    assert request == VerifyFactorRequest(challenge_id=CHALLENGE_ID, code="123456")
    assert "123456" not in repr(request)
    webauthn = parse_verify_factor(b"{}", LIMITS, factor_type="webauthn")
    assert webauthn.challenge_id == "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"challenge_id": CHALLENGE_ID}, "validation_failed", "Code needs to be non-empty"),
        (
            {"challenge_id": "nope", "code": "1"},
            "bad_json",
            "uuid: incorrect UUID format in VerifyFactorParams.challenge_id",
        ),
        ({"challenge_id": 1, "code": "1"}, "bad_json", "of type uuid.UUID"),
    ],
)
def test_grants_verify_factor_errors(body: dict[str, object], code: str, message: str) -> None:
    err = error_of(lambda: parse_verify_factor(j(body), LIMITS, factor_type="totp"))
    assert err.error_code == code
    assert message in err.message
