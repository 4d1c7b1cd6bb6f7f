"""Project API keys: HS256 JWTs carrying the `anon` or `service_role` role, as Supabase issues them.

Signatures are checked by pyjwt; the claims meet the rules of every project token (`claims`:
types, a role the authenticator may switch to, the configured audience) and, being keys, carry
integer dates and an `exp`. `exp`, `nbf` and `iat` are compared with the `now` the caller passes
in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, final

import attrs
import jwt

from madbase.protocol.auth.claims import (
    DEFAULT_TOKEN_ROLES,
    ClaimsError,
    check_claims,
    parse_claims,
)

__all__ = [
    "API_KEY_ROLES",
    "ApiKeyClaims",
    "ApiKeyError",
    "ApiKeyVerifier",
    "mint_api_key",
    "verify_api_key",
]

API_KEY_ROLES: Final = frozenset({"anon", "service_role"})
# Supabase's JWT verifiers tolerate this much clock skew (spec/rest.md §12).
CLOCK_SKEW_SECONDS: Final = 30
# Supabase's own API keys are valid for ten years.
API_KEY_LIFETIME_SECONDS: Final = 10 * 365 * 24 * 3600
# Checks signatures only; it keeps no state between calls.
_JWS: Final = jwt.PyJWS()


class ApiKeyError(ValueError):
    """The token is not a valid API key for this project; the message says why."""


@final
@attrs.frozen(kw_only=True)
class ApiKeyClaims:
    """What a verified API key grants."""

    role: str
    issued_at: int | None
    expires_at: int
    not_before: int | None = None


def mint_api_key(secret: str, role: str, *, issued_at: int, ref: str = "madbase") -> str:
    """Sign an API key for `role` with Supabase's claims (`iss`, `ref`, `role`, `iat`, `exp`).

    Deterministic: the same secret, role and issue time give the same key.

    >>> from datetime import UTC
    >>> key = mint_api_key("s" * 32, "anon", issued_at=1_700_000_000)
    >>> verify_api_key(key, "s" * 32, now=datetime.fromtimestamp(1_700_000_001, UTC)).role
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


def verify_api_key(
    token: str,
    secret: str,
    *,
    now: datetime,
    roles: frozenset[str] = DEFAULT_TOKEN_ROLES,
    audience: str | None = None,
) -> ApiKeyClaims:
    """Check `token` is an HS256 JWT signed with `secret`, in date, with an API-key role.

    `roles`: the roles a token may name (the key's must also be `anon` or `service_role`);
    `audience`: the one an `aud` claim must list.

    Raises:
        ApiKeyError: malformed token, another algorithm, a bad signature, no `exp`, expired or not
            yet valid, a role other than `anon` / `service_role` or outside `roles`, claims of the
            wrong type, or an `aud` without `audience`.
    """
    return _check_times(_decode(token, secret, roles, audience), now)


def _decode(token: str, secret: str, roles: frozenset[str], audience: str | None) -> ApiKeyClaims:
    if not token.isascii():  # a JWS is base64url and dots; pyjwt fails on lone surrogates
        raise ApiKeyError("malformed token")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "HS256":
            raise ApiKeyError("unsupported signing algorithm")
        payload = _JWS.decode(token, secret, algorithms=["HS256"])
    except jwt.InvalidSignatureError as err:
        raise ApiKeyError("invalid signature") from err
    except jwt.PyJWTError as err:
        raise ApiKeyError("malformed token") from err
    assert isinstance(payload, bytes), type(payload)
    try:
        claims = parse_claims(payload)
    except ClaimsError as err:
        raise ApiKeyError("malformed claims") from err
    role = claims.get("role")
    if not isinstance(role, str) or role not in API_KEY_ROLES:  # a list or object is unhashable
        raise ApiKeyError("not an API key role")
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    for name, value in (("exp", exp), ("nbf", nbf), ("iat", iat)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ApiKeyError(f"claim {name} is not an integer")
    if exp is None:  # Supabase's keys always expire; realtime refuses a key without exp
        raise ApiKeyError("claim exp is missing")
    try:
        check_claims(claims, default_role=role, roles=roles, audience=audience)
    except ClaimsError as err:
        raise ApiKeyError(err.message) from err
    assert isinstance(exp, int)
    assert nbf is None or isinstance(nbf, int)
    assert iat is None or isinstance(iat, int)
    return ApiKeyClaims(role=role, issued_at=iat, expires_at=exp, not_before=nbf)


def _check_times(claims: ApiKeyClaims, now: datetime) -> ApiKeyClaims:
    stamp = int(now.timestamp())
    if stamp > claims.expires_at + CLOCK_SKEW_SECONDS:
        raise ApiKeyError("expired")
    if claims.not_before is not None and stamp < claims.not_before - CLOCK_SKEW_SECONDS:
        raise ApiKeyError("not yet valid")
    if claims.issued_at is not None and stamp < claims.issued_at - CLOCK_SKEW_SECONDS:
        raise ApiKeyError("issued in the future")
    return claims


@final
class ApiKeyVerifier:
    """`verify_api_key` for one secret, remembering keys whose signature it already checked.

    Clients send the same key on every request; checking an HS256 signature costs tens of
    microseconds, comparing a string with a dict key almost nothing. The dates are still compared
    with `now` on every call. Only valid keys are remembered, at most `max_entries` of them.
    """

    def __init__(
        self,
        secret: str,
        *,
        roles: frozenset[str] = DEFAULT_TOKEN_ROLES,
        audience: str | None = None,
        max_entries: int = 256,
    ) -> None:
        self._secret = secret
        self._roles = roles
        self._audience = audience
        self._max_entries = max_entries
        self._known: dict[str, ApiKeyClaims] = {}

    def verify(self, token: str, *, now: datetime) -> ApiKeyClaims:
        """As `verify_api_key` with this verifier's secret, roles and audience.

        Raises:
            ApiKeyError: as `verify_api_key`.
        """
        claims = self._known.get(token)
        if claims is None:
            claims = _decode(token, self._secret, self._roles, self._audience)
            if len(self._known) >= self._max_entries:
                self._known.clear()
            self._known[token] = claims
        return _check_times(claims, now)
