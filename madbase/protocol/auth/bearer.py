"""The request's identity: the `Authorization: Bearer` JWT turned into a database role and claims.

PostgREST, Storage and Realtime all do this the same way (spec/rest.md §12): no token means the
anonymous role; a token must be an HMAC-signed JWT with the project's secret, in date (30 s skew),
with claims of the right types, a role the authenticator may switch to and, if an audience is
configured, that audience (see `claims`); its `role` claim becomes the transaction's role and the
whole claims object `request.jwt.claims`. Signatures are checked by pyjwt; dates are compared with
the `now` passed in.
"""

from __future__ import annotations

import json
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
from madbase.protocol.auth.keys import CLOCK_SKEW_SECONDS

__all__ = ["BearerError", "BearerVerifier", "RequestAuth", "verify_bearer"]

# HMAC algorithms a shared secret can verify; "none" and asymmetric ones need keys we do not hold.
_HMAC: Final = ("HS256", "HS384", "HS512")
# Checks signatures only; it keeps no state between calls.
_JWS: Final = jwt.PyJWS()


class BearerError(ValueError):
    """The bearer token is refused.

    `code` is PostgREST's: PGRST301 when the token cannot be decoded or verified, PGRST303 when
    its claims are invalid (expired, not yet valid, wrong audience or type, a role that is not
    allowed). The message is PostgREST's.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@final
@attrs.frozen(kw_only=True)
class RequestAuth:
    """Who is asking: the database role and the claims, as JSON text, with `role` always set."""

    role: str
    claims_json: str = attrs.field(repr=False)
    subject: str | None = None
    # Dates of the token, compared with the clock on every use (None: no token, or no claim).
    expires_at: int | float | None = attrs.field(default=None, repr=False)
    not_before: int | float | None = attrs.field(default=None, repr=False)
    issued_at: int | float | None = attrs.field(default=None, repr=False)


def verify_bearer(
    authorization: str | None,
    secret: str,
    *,
    now: datetime,
    anon_role: str = "anon",
    roles: frozenset[str] = DEFAULT_TOKEN_ROLES,
    audience: str | None = None,
) -> RequestAuth:
    """Turn an `Authorization` header value into a `RequestAuth`.

    `roles` are the roles a token may name; `audience` the one a token's `aud` must list.

    >>> from datetime import UTC
    >>> verify_bearer(None, "s" * 32, now=datetime(2026, 1, 1, tzinfo=UTC)).claims_json
    '{"role":"anon"}'

    Raises:
        BearerError: not a Bearer token, malformed, bad signature or algorithm (PGRST301); expired,
            not yet valid, issued in the future, wrong audience, claims of the wrong type or a
            role outside `roles` (PGRST303).
    """
    token = _token(authorization)
    if token is None:
        return _anonymous(anon_role)
    return _check(_decode(token, secret, anon_role, roles, audience), now=now)


@final
class BearerVerifier:
    """`verify_bearer` for one secret, remembering tokens whose signature it already checked.

    The same token (an API key, a session's access token) arrives on many requests; its signature
    and claims (types, role, audience) are checked once, its dates compared with `now` every time.
    Only valid tokens are remembered, at most `max_entries`.
    """

    def __init__(
        self,
        secret: str,
        *,
        anon_role: str = "anon",
        roles: frozenset[str] = DEFAULT_TOKEN_ROLES,
        audience: str | None = None,
        max_entries: int = 4096,
    ) -> None:
        self._secret = secret
        self._anon = _anonymous(anon_role)
        self._anon_role = anon_role
        self.roles = roles
        self.audience = audience
        self._max_entries = max_entries
        self._known: dict[str, RequestAuth] = {}

    def verify(self, authorization: str | None, *, now: datetime) -> RequestAuth:
        """As `verify_bearer` with this verifier's secret, anonymous role, roles and audience.

        Raises:
            BearerError: as `verify_bearer`.
        """
        token = _token(authorization)
        if token is None:
            return self._anon
        auth = self._known.get(token)
        if auth is None:
            auth = _check(
                _decode(token, self._secret, self._anon_role, self.roles, self.audience), now=now
            )
            if len(self._known) >= self._max_entries:
                self._known.clear()
            self._known[token] = auth
            return auth
        return _check(auth, now=now)


def _anonymous(anon_role: str) -> RequestAuth:
    return RequestAuth(role=anon_role, claims_json=_dump({"role": anon_role}))


def _token(authorization: str | None) -> str | None:
    if authorization is None or not authorization.strip():
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer":
        raise BearerError("PGRST301", "No suitable key or wrong key type")
    if not token or not token.isascii():
        raise BearerError("PGRST301", "Empty JWT is sent in Authorization header")
    parts = token.count(".") + 1
    if parts != 3:
        raise BearerError("PGRST301", f"Expected 3 parts in JWT; got {parts}")
    return token


def _decode(
    token: str, secret: str, anon_role: str, roles: frozenset[str], audience: str | None
) -> RequestAuth:
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in _HMAC:
            raise BearerError("PGRST301", "No suitable key or wrong key type")
        # The signature only: the payload is parsed strictly below (pyjwt's parser takes NaN).
        payload = _JWS.decode(token, secret, algorithms=list(_HMAC))
    except jwt.InvalidSignatureError:
        raise BearerError("PGRST301", "JWSError JWSInvalidSignature") from None
    except jwt.PyJWTError:
        raise BearerError(
            "PGRST301", "JWSError (CompactDecodeError Invalid number of parts)"
        ) from None
    assert isinstance(payload, bytes), type(payload)
    try:
        claims = parse_claims(payload)
        checked = check_claims(claims, default_role=anon_role, roles=roles, audience=audience)
    except ClaimsError as err:
        raise BearerError("PGRST303", err.message) from None
    return RequestAuth(
        role=checked.role,
        claims_json=_dump({**claims, "role": checked.role}),
        subject=checked.subject,
        expires_at=checked.expires_at,
        not_before=checked.not_before,
        issued_at=checked.issued_at,
    )


def _check(auth: RequestAuth, *, now: datetime) -> RequestAuth:
    stamp = now.timestamp()
    if auth.expires_at is not None and stamp > auth.expires_at + CLOCK_SKEW_SECONDS:
        raise BearerError("PGRST303", "JWT expired")
    if auth.not_before is not None and stamp < auth.not_before - CLOCK_SKEW_SECONDS:
        raise BearerError("PGRST303", "JWT not yet valid")
    if auth.issued_at is not None and stamp < auth.issued_at - CLOCK_SKEW_SECONDS:
        raise BearerError("PGRST303", "JWT issued at future")
    return auth


def _dump(claims: dict[str, object]) -> str:
    return json.dumps(claims, separators=(",", ":"), ensure_ascii=False)
