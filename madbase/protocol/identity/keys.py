"""Project API keys: HS256 JWTs carrying the `anon` or `service_role` role, as Supabase issues them.

Signatures are checked by pyjwt against the project's verification set (`signing`); the claims
meet the rules of every project token (`claims`: types, a role the authenticator may switch to,
the configured audience) and, being keys, carry integer dates and an `exp`. `exp`, `nbf` and `iat` are compared with the `now` the caller passes
in.

`KeyKind` names the kinds of key the control plane brings (spec/control-plane.md §3, §7): today
every key is a `LEGACY` JWT; `sb_publishable_…` and `sb_secret_…` keys are opaque and will be
found by their hash in the project's key table (a lookup the runtime makes, then hands the
verifier the row), not verified here.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Final, final

import attrs
import jwt

from madbase.protocol.identity.claims import (
    DEFAULT_TOKEN_ROLES,
    ClaimsError,
    check_claims,
    parse_claims,
)
from madbase.protocol.identity.signing import SignatureError, SigningKeys

__all__ = [
    "API_KEY_ROLES",
    "ApiKeyClaims",
    "ApiKeyError",
    "ApiKeyVerifier",
    "KeyKind",
    "mint_api_key",
    "verify_api_key",
]

API_KEY_ROLES: Final = frozenset({"anon", "service_role"})
# Supabase's JWT verifiers tolerate this much clock skew (spec/rest.md §12).
CLOCK_SKEW_SECONDS: Final = 30
# Supabase's own API keys are valid for ten years.
API_KEY_LIFETIME_SECONDS: Final = 10 * 365 * 24 * 3600


class KeyKind(enum.StrEnum):
    """What kind of API key a request came with (spec/control-plane.md §3)."""

    LEGACY = "legacy"  # a JWT signed with the project's secret: what exists today
    PUBLISHABLE = "publishable"  # `sb_publishable_…`: the anon role (not yet issued)
    SECRET = "secret"  # noqa: S105 - a kind, not a password; `sb_secret_…` (not yet issued)


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
    kind: KeyKind = KeyKind.LEGACY


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
    return _check_times(_decode(token, SigningKeys.hs256(secret), roles, audience), now)


def _decode(
    token: str, keys: SigningKeys, roles: frozenset[str], audience: str | None
) -> ApiKeyClaims:
    try:
        payload = keys.verify(token, algorithms=("HS256",))
    except SignatureError as err:
        raise ApiKeyError(str(err)) from err
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
    """`verify_api_key` for one verification set, remembering keys whose signature it checked.

    Clients send the same key on every request; checking an HS256 signature costs tens of
    microseconds, comparing a string with a dict key almost nothing. The dates are still compared
    with `now` on every call. Only valid keys are remembered, at most `max_entries` of them.
    """

    def __init__(
        self,
        keys: SigningKeys | str,
        *,
        roles: frozenset[str] = DEFAULT_TOKEN_ROLES,
        audience: str | None = None,
        max_entries: int = 256,
    ) -> None:
        self._signing = SigningKeys.hs256(keys) if isinstance(keys, str) else keys
        self._roles = roles
        self._audience = audience
        self._max_entries = max_entries
        self._known: dict[str, ApiKeyClaims] = {}

    def verify(self, token: str, *, now: datetime) -> ApiKeyClaims:
        """As `verify_api_key` with this verifier's keys, roles and audience.

        Raises:
            ApiKeyError: as `verify_api_key`.
        """
        claims = self._known.get(token)
        if claims is None:
            claims = _decode(token, self._signing, self._roles, self._audience)
            if len(self._known) >= self._max_entries:
                self._known.clear()
            self._known[token] = claims
        return _check_times(claims, now)
