"""Bodies of the token grants, logout and MFA factor endpoints: typed request or `AuthError`.

GoTrue's token.go, token_refresh.go, token_oidc.go, logout.go and mfa.go, with their messages. The
`grant_type` comes from the query string; an unknown one is `invalid_credentials` with the message
`unsupported_grant_type`. The id_token grant answers missing parameters OAuth-style.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from typing import Final, TypeAlias, final

import attrs

from madbase.protocol.auth.body import FieldKind, decode_fields
from madbase.protocol.auth.errors import (
    EmailProviderDisabled,
    InvalidCredentials,
    MfaPhoneEnrollNotEnabled,
    MfaTotpEnrollNotEnabled,
    MfaWebauthnEnrollNotEnabled,
    OAuthRequestError,
    PhoneProviderDisabled,
    ValidationFailed,
    Web3ProviderDisabled,
)
from madbase.protocol.auth.limits import AuthLimits
from madbase.protocol.auth.validate import check_channel, format_phone, validate_phone

__all__ = [
    "ChallengeFactorRequest",
    "EnrollFactorRequest",
    "IdTokenGrant",
    "LogoutScope",
    "PasswordGrant",
    "PkceGrant",
    "RefreshTokenGrant",
    "TokenRequest",
    "VerifyFactorRequest",
    "parse_challenge_factor",
    "parse_enroll_factor",
    "parse_logout_scope",
    "parse_token_request",
    "parse_verify_factor",
]

_LEGACY_REFRESH_TOKEN: Final = re.compile(r"[a-z0-9]{12}")
_S: Final = FieldKind.STRING


@final
@attrs.frozen(kw_only=True)
class PasswordGrant:
    """POST /token?grant_type=password; exactly one of `email` (lower-cased) and `phone`."""

    email: str | None
    phone: str | None
    password: str = attrs.field(repr=False)


@final
@attrs.frozen(kw_only=True)
class RefreshTokenGrant:
    """POST /token?grant_type=refresh_token."""

    refresh_token: str = attrs.field(repr=False)


@final
@attrs.frozen(kw_only=True)
class PkceGrant:
    """POST /token?grant_type=pkce."""

    auth_code: str = attrs.field(repr=False)
    code_verifier: str = attrs.field(repr=False)


@final
@attrs.frozen(kw_only=True)
class IdTokenGrant:
    """POST /token?grant_type=id_token (an OIDC id_token from a provider)."""

    id_token: str = attrs.field(repr=False)
    provider: str
    access_token: str = attrs.field(default="", repr=False)
    nonce: str = attrs.field(default="", repr=False)
    client_id: str = ""
    issuer: str = ""
    link_identity: bool = False


TokenRequest: TypeAlias = PasswordGrant | RefreshTokenGrant | PkceGrant | IdTokenGrant


def parse_token_request(grant_type: str | None, body: bytes, limits: AuthLimits) -> TokenRequest:
    """Validate POST /token for `grant_type` (the query parameter) and its body.

    Raises:
        AuthError: invalid_credentials (`unsupported_grant_type`), web3_provider_disabled,
            bad_json, validation_failed, email_provider_disabled, phone_provider_disabled, or
            `OAuthRequestError` for the id_token grant's missing parameters.
    """
    match grant_type:
        case "password":
            return _password_grant(body, limits)
        case "refresh_token":
            f = decode_fields(body, limits, "RefreshTokenGrantParams", {"refresh_token": _S})
            token = f.text("refresh_token")
            # 12 characters is GoTrue's legacy format; longer tokens are opaque to this check
            # and are simply not found by the lookup (MadBase issues only the legacy format).
            if len(token) < 12 or (len(token) == 12 and not _LEGACY_REFRESH_TOKEN.fullmatch(token)):
                raise ValidationFailed("Refresh token is not valid")
            return RefreshTokenGrant(refresh_token=token)
        case "pkce":
            f = decode_fields(
                body, limits, "PKCEGrantParams", {"auth_code": _S, "code_verifier": _S}
            )
            code, verifier = f.text("auth_code"), f.text("code_verifier")
            if not code or not verifier:
                raise ValidationFailed(
                    "invalid request: both auth code and code verifier should be non-empty"
                )
            return PkceGrant(auth_code=code, code_verifier=verifier)
        case "id_token":
            return _id_token_grant(body, limits)
        case "web3":
            raise Web3ProviderDisabled
        case _:
            raise InvalidCredentials("unsupported_grant_type")


def _password_grant(body: bytes, limits: AuthLimits) -> PasswordGrant:
    f = decode_fields(
        body, limits, "PasswordGrantParams", {"email": _S, "phone": _S, "password": _S}
    )
    email, phone, password = f.text("email"), f.text("phone"), f.text("password")
    if email and phone:
        raise ValidationFailed("Only an email address or phone number should be provided on login.")
    if email:
        if not limits.email_enabled:
            raise EmailProviderDisabled
        return PasswordGrant(email=email.lower(), phone=None, password=password)
    if phone:
        if not limits.phone_enabled:
            raise PhoneProviderDisabled
        return PasswordGrant(email=None, phone=format_phone(phone), password=password)
    raise ValidationFailed("missing email or phone")


_ID_TOKEN: Final = {
    "id_token": _S,
    "access_token": _S,
    "nonce": _S,
    "provider": _S,
    "client_id": _S,
    "issuer": _S,
    "link_identity": FieldKind.BOOL,
}


def _id_token_grant(body: bytes, limits: AuthLimits) -> IdTokenGrant:
    f = decode_fields(body, limits, "IdTokenGrantParams", _ID_TOKEN)
    # GoTrue spells this OAuth error "invalid request", with a space.
    if not f.text("id_token"):
        raise OAuthRequestError("invalid request", "id_token required")
    if not f.text("provider") and (not f.text("client_id") or not f.text("issuer")):
        raise OAuthRequestError("invalid request", "provider or client_id and issuer required")
    return IdTokenGrant(
        id_token=f.text("id_token"),
        provider=f.text("provider"),
        access_token=f.text("access_token"),
        nonce=f.text("nonce"),
        client_id=f.text("client_id"),
        issuer=f.text("issuer"),
        link_identity=f.flag("link_identity"),
    )


class LogoutScope(enum.StrEnum):
    """POST /logout?scope=: which sessions end."""

    GLOBAL = "global"
    LOCAL = "local"
    OTHERS = "others"


def parse_logout_scope(scope: str | None) -> LogoutScope:
    """The logout scope of the `scope` query parameter (absent or empty: global).

    >>> parse_logout_scope(None), parse_logout_scope("others")
    (<LogoutScope.GLOBAL: 'global'>, <LogoutScope.OTHERS: 'others'>)

    Raises:
        ValidationFailed: any other value.
    """
    if not scope:
        return LogoutScope.GLOBAL
    try:
        return LogoutScope(scope)
    except ValueError:
        quoted = json.dumps(scope, ensure_ascii=False)
        raise ValidationFailed(f"Unsupported logout scope {quoted}") from None


@final
@attrs.frozen(kw_only=True)
class EnrollFactorRequest:
    """POST /factors: `phone` is set (and E.164) for phone factors only."""

    factor_type: str
    friendly_name: str = ""
    issuer: str = ""
    phone: str | None = None


def parse_enroll_factor(body: bytes, limits: AuthLimits) -> EnrollFactorRequest:
    """Validate a POST /factors body (mfa.go EnrollFactor).

    Raises:
        AuthError: bad_json, validation_failed or mfa_*_enroll_not_enabled.
    """
    f = decode_fields(
        body,
        limits,
        "EnrollFactorParams",
        {"friendly_name": _S, "factor_type": _S, "issuer": _S, "phone": _S},
    )
    kind, name, issuer = f.text("factor_type"), f.text("friendly_name"), f.text("issuer")
    match kind:
        case "phone":
            if not limits.mfa_phone_enroll_enabled:
                raise MfaPhoneEnrollNotEnabled
            if not f.text("phone"):
                raise ValidationFailed("Phone number required to enroll Phone factor")
            phone = validate_phone(f.text("phone"))
            return EnrollFactorRequest(factor_type=kind, friendly_name=name, phone=phone)
        case "totp":
            if not limits.mfa_totp_enroll_enabled:
                raise MfaTotpEnrollNotEnabled
            return EnrollFactorRequest(factor_type=kind, friendly_name=name, issuer=issuer)
        case "webauthn":
            if not limits.mfa_webauthn_enroll_enabled:
                raise MfaWebauthnEnrollNotEnabled
            return EnrollFactorRequest(factor_type=kind, friendly_name=name)
        case _:
            raise ValidationFailed("factor_type needs to be totp, phone, or webauthn")


@final
@attrs.frozen(kw_only=True)
class ChallengeFactorRequest:
    """POST /factors/{id}/challenge; `channel` matters for phone factors only."""

    channel: str = "sms"


def parse_challenge_factor(
    body: bytes, limits: AuthLimits, *, factor_type: str
) -> ChallengeFactorRequest:
    """Validate a POST /factors/{id}/challenge body for a factor of `factor_type`.

    Raises:
        AuthError: bad_json, or validation_failed for a bad channel of a phone factor.
    """
    f = decode_fields(
        body, limits, "ChallengeFactorParams", {"channel": _S, "webauthn": FieldKind.MAP}
    )
    channel = f.text("channel") or "sms"
    if factor_type == "phone":
        check_channel(channel, limits)
    return ChallengeFactorRequest(channel=channel)


@final
@attrs.frozen(kw_only=True)
class VerifyFactorRequest:
    """POST /factors/{id}/verify."""

    challenge_id: str
    code: str = attrs.field(repr=False)


def parse_verify_factor(
    body: bytes, limits: AuthLimits, *, factor_type: str
) -> VerifyFactorRequest:
    """Validate a POST /factors/{id}/verify body for a factor of `factor_type`.

    A missing `challenge_id` is the nil UUID, as Go leaves it.

    Raises:
        AuthError: bad_json (including a malformed `challenge_id`) or validation_failed.
    """
    f = decode_fields(
        body,
        limits,
        "VerifyFactorParams",
        {"challenge_id": FieldKind.UUID, "code": _S, "webauthn": FieldKind.MAP},
    )
    code = f.text("code")
    if not code and factor_type != "webauthn":
        raise ValidationFailed("Code needs to be non-empty")
    return VerifyFactorRequest(
        challenge_id=f.text("challenge_id") or str(uuid.UUID(int=0)), code=code
    )
