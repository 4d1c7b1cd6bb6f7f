"""The request's identity: the `Authorization: Bearer` JWT turned into a database role and claims.

PostgREST, Storage and Realtime all do this the same way (spec/rest.md §12): no token means the
anonymous role; a token must be an HMAC-signed JWT with a key of the project's verification set
(`signing`), in date (30 s skew), with claims of the right types, a role the authenticator may
switch to and, if an audience is configured, that audience (see `claims`); its `role` claim
becomes the transaction's role and the whole claims object `request.jwt.claims` (`Principal`,
not to be confused with GoTrue's user identities, `madbase.protocol.auth.Identity`). Signatures are checked by pyjwt; dates are compared with
the `now` passed in.

A refused token raises `UnverifiableToken` (PostgREST's PGRST301, GoTrue's bad_jwt) or
`InvalidClaims` (PGRST303); the messages are PostgREST's, each service renders them its way.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Final, final

import attrs

from madbase.protocol.identity.claims import (
    DEFAULT_TOKEN_ROLES,
    ClaimsError,
    check_claims,
    parse_claims,
)
from madbase.protocol.identity.keys import CLOCK_SKEW_SECONDS
from madbase.protocol.identity.signing import SignatureError, SigningKeys

__all__ = [
    "BearerError",
    "BearerVerifier",
    "InvalidClaims",
    "Principal",
    "UnverifiableToken",
    "verify_bearer",
]

_MALFORMED: Final = "JWSError (CompactDecodeError Invalid number of parts)"
_NO_KEY: Final = "No suitable key or wrong key type"


class BearerError(ValueError):
    """The bearer token is refused; `message` is PostgREST's wording."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnverifiableToken(BearerError):
    """Not a Bearer token, not a JWT, an algorithm or key id we hold no key for, or a bad
    signature (PostgREST's PGRST301)."""


class InvalidClaims(BearerError):
    """Signed by the project but refused for its claims: expired, not yet valid, wrong audience
    or type, a role that is not allowed (PostgREST's PGRST303)."""


@final
@attrs.frozen(kw_only=True)
class Principal:
    """Who is asking: the database role and the claims, as JSON text, with `role` always set.

    `subject` is the `sub` claim (a user id for session tokens).
    """

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
) -> Principal:
    """Turn an `Authorization` header value into a `Principal`.

    `roles` are the roles a token may name; `audience` the one a token's `aud` must list.

    >>> from datetime import UTC
    >>> verify_bearer(None, "s" * 32, now=datetime(2026, 1, 1, tzinfo=UTC)).claims_json
    '{"role":"anon"}'

    Raises:
        UnverifiableToken: not a Bearer token, malformed, bad signature or algorithm.
        InvalidClaims: expired, not yet valid, issued in the future, wrong audience, claims of
            the wrong type or a role outside `roles`.
    """
    token = _token(authorization)
    if token is None:
        return _anonymous(anon_role)
    return _check(_decode(token, SigningKeys.hs256(secret), anon_role, roles, audience), now=now)


@final
class BearerVerifier:
    """`verify_bearer` for one verification set, remembering tokens whose signature it checked.

    The same token (an API key, a session's access token) arrives on many requests; its signature
    and claims (types, role, audience) are checked once, its dates compared with `now` every time.
    Only valid tokens are remembered, at most `max_entries`.
    """

    def __init__(
        self,
        keys: SigningKeys | str,
        *,
        anon_role: str = "anon",
        roles: frozenset[str] = DEFAULT_TOKEN_ROLES,
        audience: str | None = None,
        max_entries: int = 4096,
    ) -> None:
        self._signing = SigningKeys.hs256(keys) if isinstance(keys, str) else keys
        self._anon = _anonymous(anon_role)
        self._anon_role = anon_role
        self.roles = roles
        self.audience = audience
        self._max_entries = max_entries
        self._known: dict[str, Principal] = {}

    def verify(self, authorization: str | None, *, now: datetime) -> Principal:
        """As `verify_bearer` with this verifier's keys, anonymous role, roles and audience.

        Raises:
            UnverifiableToken: as `verify_bearer`.
            InvalidClaims: as `verify_bearer`.
        """
        token = _token(authorization)
        if token is None:
            return self._anon
        auth = self._known.get(token)
        if auth is None:
            auth = _check(
                _decode(token, self._signing, self._anon_role, self.roles, self.audience), now=now
            )
            if len(self._known) >= self._max_entries:
                self._known.clear()
            self._known[token] = auth
            return auth
        return _check(auth, now=now)


def _anonymous(anon_role: str) -> Principal:
    return Principal(role=anon_role, claims_json=_dump({"role": anon_role}))


def _token(authorization: str | None) -> str | None:
    if authorization is None or not authorization.strip():
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer":
        raise UnverifiableToken(_NO_KEY)
    if not token or not token.isascii():
        raise UnverifiableToken("Empty JWT is sent in Authorization header")
    parts = token.count(".") + 1
    if parts != 3:
        raise UnverifiableToken(f"Expected 3 parts in JWT; got {parts}")
    return token


def _decode(
    token: str, keys: SigningKeys, anon_role: str, roles: frozenset[str], audience: str | None
) -> Principal:
    try:
        # The signature only: the payload is parsed strictly below (pyjwt's parser takes NaN).
        payload = keys.verify(token)
    except SignatureError as err:
        if err.malformed:
            raise UnverifiableToken(_MALFORMED) from None
        if err.unsupported:
            raise UnverifiableToken(_NO_KEY) from None
        raise UnverifiableToken("JWSError JWSInvalidSignature") from None
    try:
        claims = parse_claims(payload)
        checked = check_claims(claims, default_role=anon_role, roles=roles, audience=audience)
    except ClaimsError as err:
        raise InvalidClaims(err.message) from None
    return Principal(
        role=checked.role,
        claims_json=_dump({**claims, "role": checked.role}),
        subject=checked.subject,
        expires_at=checked.expires_at,
        not_before=checked.not_before,
        issued_at=checked.issued_at,
    )


def _check(auth: Principal, *, now: datetime) -> Principal:
    stamp = now.timestamp()
    if auth.expires_at is not None and stamp > auth.expires_at + CLOCK_SKEW_SECONDS:
        raise InvalidClaims("JWT expired")
    if auth.not_before is not None and stamp < auth.not_before - CLOCK_SKEW_SECONDS:
        raise InvalidClaims("JWT not yet valid")
    if auth.issued_at is not None and stamp < auth.issued_at - CLOCK_SKEW_SECONDS:
        raise InvalidClaims("JWT issued at future")
    return auth


def _dump(claims: dict[str, object]) -> str:
    return json.dumps(claims, separators=(",", ":"), ensure_ascii=False)
