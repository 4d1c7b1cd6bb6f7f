"""Fuzz the `/auth/v1` body parsers: any body gives a typed request or an `AuthError`, nothing else.

Input layout: the first line names the endpoint (`signup`, `otp`, `verify`, `recover`, `resend`,
`user`, `factors`, `challenge`, `factor_verify`, or `token <grant_type>`); the rest is the body,
bytes as received. An unknown first line goes to `signup`. Each parser runs under two settings
(GoTrue's defaults, and every provider on), and every `AuthError` must render in both error shapes.

    pip install atheris
    python fuzz/fuzz_auth_body.py fuzz/corpus/auth_body
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from madbase.protocol.auth import AuthError, AuthLimits
from madbase.protocol.auth.error_response import render_auth_error
from madbase.protocol.auth.session.grants import (
    parse_challenge_factor,
    parse_enroll_factor,
    parse_token_request,
    parse_verify_factor,
)
from madbase.protocol.auth.validate import (
    parse_otp,
    parse_recover,
    parse_resend,
    parse_signup,
    parse_user_update,
    parse_verify,
)

SETTINGS = (
    AuthLimits(),
    AuthLimits(
        phone_enabled=True,
        anonymous_users_enabled=True,
        whatsapp_enabled=True,
        mfa_phone_enroll_enabled=True,
        mfa_webauthn_enroll_enabled=True,
        password_required_characters=("abc", "0123456789"),
    ),
)

Parser = Callable[[bytes, AuthLimits], object]
PARSERS: dict[str, Parser] = {
    "signup": parse_signup,
    "otp": parse_otp,
    "verify": parse_verify,
    "recover": parse_recover,
    "resend": parse_resend,
    "user": parse_user_update,
    "factors": parse_enroll_factor,
    "challenge": lambda body, limits: parse_challenge_factor(body, limits, factor_type="phone"),
    "factor_verify": lambda body, limits: parse_verify_factor(body, limits, factor_type="totp"),
}


def parser_for(head: str) -> Parser:
    """The parser the first line names (see the module docstring)."""
    if head.startswith("token "):
        grant_type = head.removeprefix("token ")
        return lambda body, limits: parse_token_request(grant_type, body, limits)
    return PARSERS.get(head, parse_signup)


def test_one_input(data: bytes) -> None:
    """Parse the body in `data`; only `AuthError` may escape the parser, and it must render."""
    head, _, body = data.partition(b"\n")
    parse = parser_for(head.decode("latin-1").strip())
    for limits in SETTINGS:
        try:
            request = parse(body, limits)
        except AuthError as err:
            for version in ("2024-01-01", None):
                response = render_auth_error(err, api_version=version)
                assert 400 <= response.status < 600, response
                assert isinstance(json.loads(response.body), dict), response
            continue
        assert request is not None


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
