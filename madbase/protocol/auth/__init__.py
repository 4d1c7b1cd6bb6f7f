"""Supabase Auth (GoTrue) protocol: tokens, claims and flows, without I/O.

This face lists what the runtime and the other packages use: the entry flow (`auth_answer`), the
commands it yields and their answers, the settings, the family error and the rate limiter. The
flows live in feature subpackages, each imported only inside `madbase.protocol.auth` (and by
tests of its internals):

    session/   POST /token (password, refresh_token, pkce grants) and /logout, PKCE flow state
    mail/      mailed and texted tokens: /otp, /magiclink, /recover, /resend, /reauthenticate,
               /verify, /invite, /admin/generate_link, the templates and their SQL
    mfa/       /factors: TOTP enrolment, challenge and verification, the QR code, their SQL
    admin/     /admin/users: parameters, flows and SQL
    external/  OAuth and OIDC providers: /authorize, /callback, id_token grants, identity linking

The modules beside them are the core every feature shares: `errors` and `error_response`,
`limits`, `body` and `validate`, `passwords`, `tokens`, `refresh`, `sql`, `steps` (the commands
and shared steps), `outbound`, `ratelimit`, and `flows` (the entry point and router, health,
settings, sign-up and the user).
"""

from __future__ import annotations

from madbase.protocol.auth.error_response import render_auth_refusal
from madbase.protocol.auth.errors import AuthError
from madbase.protocol.auth.external.providers import (
    PROVIDERS,
    ExternalSettings,
    ProviderConfig,
)
from madbase.protocol.auth.flows import (
    AuthAnswer,
    AuthCommand,
    AuthSettings,
    DrawRandom,
    Flow,
    RunTransaction,
    auth_answer,
)
from madbase.protocol.auth.limits import AuthLimits, parse_required_characters
from madbase.protocol.auth.mail.messages import (
    MAIL_QUOTA_EXCEEDED,
    MailSettings,
    SendMail,
    SendSms,
    SmsNotSent,
)
from madbase.protocol.auth.outbound import HttpFailure, HttpRequest, HttpResponse
from madbase.protocol.auth.passwords import CheckPassword, HashPassword, HashScheme, hash_scheme
from madbase.protocol.auth.ratelimit import RateLimiter, RateLimits, parse_networks

__all__ = [
    "MAIL_QUOTA_EXCEEDED",
    "PROVIDERS",
    "AuthAnswer",
    "AuthCommand",
    "AuthError",
    "AuthLimits",
    "AuthSettings",
    "CheckPassword",
    "DrawRandom",
    "ExternalSettings",
    "Flow",
    "HashPassword",
    "HashScheme",
    "HttpFailure",
    "HttpRequest",
    "HttpResponse",
    "MailSettings",
    "ProviderConfig",
    "RateLimiter",
    "RateLimits",
    "RunTransaction",
    "SendMail",
    "SendSms",
    "SmsNotSent",
    "auth_answer",
    "hash_scheme",
    "parse_networks",
    "parse_required_characters",
    "render_auth_refusal",
]
