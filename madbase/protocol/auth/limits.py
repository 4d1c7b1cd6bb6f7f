"""Settings of `/auth/v1` that the pure core needs: token lifetimes, rotation, password policy, providers.

Each default names where its number comes from: GoTrue's `internal/conf/configuration.go` or, where
Supabase's hosted defaults differ from the bare binary, spec/auth.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final, final

import attrs

__all__ = ["AuthLimits", "parse_required_characters"]

# GoTrue refuses anything shorter than this whatever the configuration says.
MIN_PASSWORD_LENGTH: Final = 6
# bcrypt looks at 72 bytes only, so GoTrue refuses longer passwords (api/password.go).
MAX_PASSWORD_BYTES: Final = 72


def parse_required_characters(value: str) -> tuple[str, ...]:
    r"""Split GoTrue's `password_required_characters` setting into character groups.

    Groups are separated by `:`; a `\:` is a literal colon inside a group; empty groups vanish.

    >>> parse_required_characters("abc:ABC:0123456789")
    ('abc', 'ABC', '0123456789')
    >>> parse_required_characters(r"ab\:c::d")
    ('ab:c', 'd')
    """
    parts = value.split(":")
    for i in range(len(parts) - 1):
        part = parts[i]
        if part.endswith("\\"):
            parts[i] = part[:-1] + ":" + parts[i + 1]
            parts[i + 1] = ""
    return tuple(part for part in parts if part)


def _at_least_min_length(value: int) -> int:
    return max(value, MIN_PASSWORD_LENGTH)


@final
@attrs.frozen(kw_only=True)
class AuthLimits:
    """The auth settings of one project."""

    # `iss` of access tokens; Supabase uses `<public URL>/auth/v1` (spec §4).
    issuer: str = "http://localhost:54321/auth/v1"
    # GoTrue's JWT_AUD default; also the `aud` of new users.
    audience: str = "authenticated"
    # JWT_EXP default: one hour (conf: `config.JWT.Exp = 3600`).
    jwt_expiry_seconds: int = 3600
    # Supabase's default reuse interval is 10 s (spec §5); the bare GoTrue binary defaults to 0.
    refresh_token_reuse_interval_seconds: int = 10
    # SECURITY_REFRESH_TOKEN_ROTATION_ENABLED, default true.
    refresh_token_rotation_enabled: bool = True
    # SESSIONS_TIMEBOX, SESSIONS_INACTIVITY_TIMEOUT, SESSIONS_ALLOW_LOW_AAL: unset by default.
    session_timebox: timedelta | None = None
    session_inactivity_timeout: timedelta | None = None
    session_allow_low_aal: timedelta | None = None
    # PASSWORD_MIN_LENGTH, raised to 6 when lower (conf: defaultMinPasswordLength).
    password_min_length: int = attrs.field(
        default=MIN_PASSWORD_LENGTH, converter=_at_least_min_length
    )
    # PASSWORD_REQUIRED_CHARACTERS, already split (see `parse_required_characters`).
    password_required_characters: tuple[str, ...] = ()
    # Providers and sign-up switches (GoTrue defaults: email on, phone off, anonymous off).
    disable_signup: bool = False
    email_enabled: bool = True
    phone_enabled: bool = False
    anonymous_users_enabled: bool = False
    # WhatsApp is a valid OTP channel only with the Twilio SMS providers (sms_provider.go).
    whatsapp_enabled: bool = False
    # MFA enrolment and verification switches (GoTrue defaults: TOTP on, phone and WebAuthn off).
    mfa_totp_enroll_enabled: bool = True
    mfa_totp_verify_enabled: bool = True
    mfa_phone_enroll_enabled: bool = False
    mfa_phone_verify_enabled: bool = False
    mfa_webauthn_enroll_enabled: bool = False
    mfa_webauthn_verify_enabled: bool = False
    # MFA_MAX_ENROLLED_FACTORS and MFA_MAX_VERIFIED_FACTORS, both 10 by default.
    mfa_max_enrolled_factors: int = 10
    mfa_max_verified_factors: int = 10
    # MFA_CHALLENGE_EXPIRY_DURATION (300 s, also the minimum) and MFA_FACTOR_EXPIRY_DURATION
    # (300 s: an unverified factor never challenged is removed after that).
    mfa_challenge_expiry: timedelta = timedelta(seconds=300)
    mfa_factor_expiry: timedelta = timedelta(seconds=300)
    # API_MAX_REQUEST_BODY_SIZE is 1 MiB (spec §1).
    max_body_bytes: int = 1024 * 1024
