"""Access-token claims, the user JSON and the session object, as GoTrue renders them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import jwt
import pytest

from madbase.protocol.auth import AuthLimits
from madbase.protocol.auth.errors import WeakPassword
from madbase.protocol.auth.tokens import (
    Aal,
    AmrClaim,
    Factor,
    Identity,
    Session,
    User,
    access_token_claims,
    format_timestamp,
    issue_access_token,
    render_factor,
    render_identity,
    render_user,
    session_response,
)

SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
T0 = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
NOW = datetime(2024, 6, 1, 13, 0, 0, 500000, tzinfo=UTC)
NOW_TS = 1717246800
LIMITS = AuthLimits(issuer="https://ref.example.com/auth/v1")
USER_ID = "11111111-1111-4111-8111-111111111111"
SESSION_ID = "22222222-2222-4222-8222-222222222222"


def identity(provider: str = "email", **overrides: object) -> Identity:
    values: dict[str, object] = {
        "id": "33333333-3333-4333-8333-333333333333",
        "provider_id": USER_ID,
        "user_id": USER_ID,
        "provider": provider,
        "identity_data": {"sub": USER_ID, "email": "ann@example.com", "email_verified": True},
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(overrides)
    return Identity(**values)  # type: ignore[arg-type]


def user(**overrides: object) -> User:
    values: dict[str, object] = {
        "id": USER_ID,
        "email": "ann@example.com",
        "email_confirmed_at": T0,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {"name": "Ann"},
        "identities": (identity(),),
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(overrides)
    return User(**values)  # type: ignore[arg-type]


def session(*claims: AmrClaim, **overrides: object) -> Session:
    values: dict[str, object] = {
        "id": SESSION_ID,
        "user_id": USER_ID,
        "created_at": T0,
        "updated_at": T0,
        "amr_claims": claims,
    }
    values.update(overrides)
    return Session(**values)  # type: ignore[arg-type]


def decode(token: str) -> dict[str, object]:
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_aud": False}
    )
    assert isinstance(claims, dict)
    return claims


def test_tokens_claims_match_gotrue() -> None:
    amr = AmrClaim(method="password", updated_at=T0)
    token = issue_access_token(user(), session(amr), limits=LIMITS, secret=SECRET, now=NOW)
    assert token.expires_at == NOW_TS + 3600
    assert decode(token.token) == {
        "iss": "https://ref.example.com/auth/v1",
        "sub": USER_ID,
        "aud": "authenticated",
        "exp": NOW_TS + 3600,
        "iat": NOW_TS,
        "email": "ann@example.com",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {"name": "Ann"},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": 1717243200}],
        "session_id": SESSION_ID,
        "is_anonymous": False,
    }
    assert decode(token.token) == token.claims
    assert list(token.claims) == [
        "iss", "sub", "aud", "exp", "iat", "email", "phone", "app_metadata", "user_metadata",
        "role", "aal", "amr", "session_id", "is_anonymous",
    ]  # fmt: skip
    assert jwt.get_unverified_header(token.token) == {"alg": "HS256", "typ": "JWT"}
    assert "token" not in repr(token).replace("AccessToken", "")


def test_tokens_kid_header() -> None:
    token = issue_access_token(
        user(), session(), limits=LIMITS, secret=SECRET, now=NOW, kid="key-1"
    )
    assert jwt.get_unverified_header(token.token)["kid"] == "key-1"


def test_tokens_aud_is_a_plain_string() -> None:
    token = issue_access_token(user(), session(), limits=LIMITS, secret=SECRET, now=NOW)
    payload = json.loads(jwt.utils.base64url_decode(token.token.split(".")[1]))
    assert payload["aud"] == "authenticated"


def test_tokens_empty_amr_is_omitted_and_anonymous_flag() -> None:
    anon = user(email=None, identities=(), app_metadata={}, is_anonymous=True)
    claims = access_token_claims(anon, session(), limits=LIMITS, now=NOW)
    assert "amr" not in claims
    assert claims["email"] == ""
    assert claims["is_anonymous"] is True


def test_tokens_amr_newest_first_and_aal2_after_totp() -> None:
    claims = access_token_claims(
        user(),
        session(
            AmrClaim(method="password", updated_at=T0),
            AmrClaim(method="totp", updated_at=T0 + timedelta(minutes=5)),
        ),
        limits=LIMITS,
        now=NOW,
    )
    assert claims["aal"] == "aal2"
    assert claims["amr"] == [
        {"method": "totp", "timestamp": 1717243500},
        {"method": "password", "timestamp": 1717243200},
    ]


@pytest.mark.parametrize("method", ["totp", "mfa/phone", "mfa/webauthn"])
def test_tokens_aal2_methods(method: str) -> None:
    claims = access_token_claims(
        user(), session(AmrClaim(method=method, updated_at=T0)), limits=LIMITS, now=NOW
    )
    assert claims["aal"] == "aal2"


def test_tokens_sso_amr_names_provider() -> None:
    sso_user = user(identities=(identity("sso:abc-provider"),))
    claims = access_token_claims(
        sso_user, session(AmrClaim(method="sso/saml", updated_at=T0)), limits=LIMITS, now=NOW
    )
    assert claims["amr"] == [
        {"method": "sso/saml", "timestamp": 1717243200, "provider": "abc-provider"}
    ]
    plain = access_token_claims(
        user(), session(AmrClaim(method="sso/saml", updated_at=T0)), limits=LIMITS, now=NOW
    )
    assert plain["amr"] == [{"method": "sso/saml", "timestamp": 1717243200}]


def test_tokens_low_aal_session_expires_early() -> None:
    verified = Factor(id="f1", factor_type="totp", status="verified", created_at=T0, updated_at=T0)
    mfa_user = user(factors=(verified,))
    assert mfa_user.highest_possible_aal is Aal.AAL2
    limits = AuthLimits(session_allow_low_aal=timedelta(minutes=90))
    claims = access_token_claims(mfa_user, session(), limits=limits, now=NOW)
    assert claims["exp"] == int((T0 + timedelta(minutes=90)).timestamp())
    # Without a verified factor aal1 is the highest level: the full lifetime applies.
    assert access_token_claims(user(), session(), limits=limits, now=NOW)["exp"] == NOW_TS + 3600
    # A window later than the normal expiry changes nothing.
    late = AuthLimits(session_allow_low_aal=timedelta(days=1))
    assert access_token_claims(mfa_user, session(), limits=late, now=NOW)["exp"] == NOW_TS + 3600


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 100, tzinfo=UTC), "2024-01-02T03:04:05.0001Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), "2024-01-02T03:04:05.123456Z"),
        (
            datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-02T03:04:05Z",
        ),
        (datetime(2024, 1, 2, 3, 4, 5, 500000), "2024-01-02T03:04:05.5Z"),  # noqa: DTZ001
    ],
)
def test_tokens_format_timestamp(value: datetime, text: str) -> None:
    assert format_timestamp(value) == text


def test_tokens_user_json_minimal_keys_in_gotrue_order() -> None:
    rendered = render_user(user())
    assert list(rendered) == [
        "id", "aud", "role", "email", "email_confirmed_at", "phone", "confirmed_at",
        "app_metadata", "user_metadata", "identities", "created_at", "updated_at", "is_anonymous",
    ]  # fmt: skip
    assert rendered["email_confirmed_at"] == "2024-06-01T12:00:00.123456Z"
    assert rendered["confirmed_at"] == rendered["email_confirmed_at"]
    assert rendered["phone"] == ""
    assert rendered["is_anonymous"] is False
    assert "factors" not in rendered


def test_tokens_user_json_every_field() -> None:
    later = T0 + timedelta(hours=1)
    factor = Factor(
        id="f1",
        factor_type="totp",
        status="unverified",
        created_at=T0,
        updated_at=T0,
        friendly_name="phone app",
    )
    full = user(
        phone="15550100",
        phone_confirmed_at=T0 - timedelta(days=1),
        invited_at=T0,
        confirmation_sent_at=T0,
        recovery_sent_at=T0,
        email_change="new@example.com",
        email_change_sent_at=T0,
        phone_change="15550199",
        phone_change_sent_at=T0,
        reauthentication_sent_at=T0,
        last_sign_in_at=later,
        banned_until=later,
        deleted_at=later,
        factors=(factor,),
    )
    rendered = render_user(full)
    assert list(rendered) == [
        "id", "aud", "role", "email", "email_confirmed_at", "invited_at", "phone",
        "phone_confirmed_at", "confirmation_sent_at", "confirmed_at", "recovery_sent_at",
        "new_email", "email_change_sent_at", "new_phone", "phone_change_sent_at",
        "reauthentication_sent_at", "last_sign_in_at", "app_metadata", "user_metadata",
        "factors", "identities", "created_at", "updated_at", "banned_until", "deleted_at",
        "is_anonymous",
    ]  # fmt: skip
    assert rendered["confirmed_at"] == "2024-05-31T12:00:00.123456Z"  # the earlier one
    assert rendered["new_email"] == "new@example.com"
    assert rendered["factors"] == [render_factor(factor)]


def test_tokens_identity_and_factor_json() -> None:
    ident = identity(last_sign_in_at=T0, email="ann@example.com")
    assert render_identity(ident) == {
        "identity_id": "33333333-3333-4333-8333-333333333333",
        "id": USER_ID,
        "user_id": USER_ID,
        "identity_data": {"sub": USER_ID, "email": "ann@example.com", "email_verified": True},
        "provider": "email",
        "last_sign_in_at": "2024-06-01T12:00:00.123456Z",
        "created_at": "2024-06-01T12:00:00.123456Z",
        "updated_at": "2024-06-01T12:00:00.123456Z",
        "email": "ann@example.com",
    }
    bare = render_identity(identity(identity_data={}))
    assert bare["identity_data"] == {}
    assert "email" not in bare
    assert "last_sign_in_at" not in bare
    factor = Factor(id="f", factor_type="phone", status="verified", created_at=T0, updated_at=T0)
    assert render_factor(factor) == {
        "id": "f",
        "created_at": "2024-06-01T12:00:00.123456Z",
        "updated_at": "2024-06-01T12:00:00.123456Z",
        "status": "verified",
        "factor_type": "phone",
        "phone": "",
        "last_challenged_at": None,
    }


def test_tokens_banned_until() -> None:
    assert not user().is_banned(now=NOW)
    assert user(banned_until=NOW + timedelta(seconds=1)).is_banned(now=NOW)
    assert not user(banned_until=NOW).is_banned(now=NOW)
    assert user(phone_confirmed_at=None, email_confirmed_at=None).confirmed_at is None


def test_tokens_session_response() -> None:
    u = user()
    token = issue_access_token(u, session(), limits=LIMITS, secret=SECRET, now=NOW)
    body = session_response(u, token, "abcdefghijkl", now=NOW)
    assert body == {
        "access_token": token.token,
        "token_type": "bearer",
        "expires_in": 3600,
        "expires_at": NOW_TS + 3600,
        "refresh_token": "abcdefghijkl",
        "user": render_user(u),
    }
    json.dumps(body)  # serialisable as is


def test_tokens_session_response_optional_fields() -> None:
    u = user()
    token = issue_access_token(u, session(), limits=LIMITS, secret=SECRET, now=NOW)
    weak = WeakPassword("Password should be at least 6 characters.", reasons=("length",))
    body = session_response(
        u,
        token,
        "r",
        now=NOW + timedelta(seconds=100),
        weak_password=weak,
        provider_token="pt",
        provider_refresh_token="prt",
    )
    assert body["expires_in"] == 3500
    assert body["provider_token"] == "pt"
    assert body["provider_refresh_token"] == "prt"
    assert body["weak_password"] == {
        "message": "Password should be at least 6 characters.",
        "reasons": ["length"],
    }
    empty = session_response(u, token, "r", now=NOW, weak_password=WeakPassword(""))
    assert empty["weak_password"] == {}
