"""Project API keys: HS256 JWTs carrying the `anon` or `service_role` role, as Supabase issues them.

Signatures are checked by pyjwt with its own clock checks off; `exp`, `nbf` and `iat` are compared
with the `now` the caller passes in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, final

import attrs
import jwt

__all__ = ["API_KEY_ROLES", "ApiKeyClaims", "ApiKeyError", "mint_api_key", "verify_api_key"]

API_KEY_ROLES: Final = frozenset({"anon", "service_role"})
# Supabase's JWT verifiers tolerate this much clock skew (spec/rest.md §12).
CLOCK_SKEW_SECONDS: Final = 30
# Supabase's own API keys are valid for ten years.
API_KEY_LIFETIME_SECONDS: Final = 10 * 365 * 24 * 3600


class ApiKeyError(ValueError):
    """The token is not a valid API key for this project; the message says why."""


@final
@attrs.frozen(kw_only=True)
class ApiKeyClaims:
    """What a verified API key grants."""

    role: str
    issued_at: int | None
    expires_at: int | None


def mint_api_key(secret: str, role: str, *, issued_at: int, ref: str = "madbase") -> str:
    """Sign an API key for `role` with Supabase's claims (`iss`, `ref`, `role`, `iat`, `exp`).

    Deterministic: the same secret, role and issue time give the same key.

    >>> key = mint_api_key("s" * 32, "anon", issued_at=1_700_000_000)
    >>> verify_api_key(key, "s" * 32, now=datetime.fromtimestamp(1_700_000_001)).role
    'anon'
    """
    claims = {
        "iss": "supabase",
        "ref": ref,
        "role": role,
        "iat": issued_at,
        "exp": issued_at + API_KEY_LIFETIME_SECONDS,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_api_key(token: str, secret: str, *, now: datetime) -> ApiKeyClaims:
    """Check `token` is an HS256 JWT signed with `secret`, in date, with an API-key role.

    Raises:
        ApiKeyError: malformed token, another algorithm, a bad signature, expired or not yet valid,
            or a role other than `anon` / `service_role`.
    """
    if not token.isascii():  # a JWS is base64url and dots; pyjwt fails on lone surrogates
        raise ApiKeyError("malformed token")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "HS256":
            raise ApiKeyError("unsupported signing algorithm")
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
            },
        )
    except jwt.InvalidSignatureError as err:
        raise ApiKeyError("invalid signature") from err
    except jwt.PyJWTError as err:
        raise ApiKeyError("malformed token") from err
    if not isinstance(claims, dict):
        raise ApiKeyError("malformed claims")
    role = claims.get("role")
    if not isinstance(role, str) or role not in API_KEY_ROLES:  # a list or object is unhashable
        raise ApiKeyError("not an API key role")
    stamp = int(now.timestamp())
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    for name, value in (("exp", exp), ("nbf", nbf), ("iat", iat)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ApiKeyError(f"claim {name} is not an integer")
    if isinstance(exp, int) and stamp > exp + CLOCK_SKEW_SECONDS:
        raise ApiKeyError("expired")
    if isinstance(nbf, int) and stamp < nbf - CLOCK_SKEW_SECONDS:
        raise ApiKeyError("not yet valid")
    if isinstance(iat, int) and stamp < iat - CLOCK_SKEW_SECONDS:
        raise ApiKeyError("issued in the future")
    return ApiKeyClaims(role=str(role), issued_at=iat, expires_at=exp)
