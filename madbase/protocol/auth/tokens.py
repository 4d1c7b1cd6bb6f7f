"""Users and sessions as GoTrue renders them: access-token claims, the session object, the user JSON.

The values mirror the columns of `auth.users`, `auth.identities`, `auth.mfa_factors`,
`auth.sessions` and `auth.mfa_amr_claims` (migration 0003) that these renderings need; ids are uuid
strings. JSON follows GoTrue's struct tags (internal/models/user.go, identity.go, factor.go;
internal/tokens/service.go): keys in GoTrue's order, `null` timestamps omitted where GoTrue omits
them, `email`/`phone` as `""` when unset. Timestamps are rendered as Go renders `time.Time` in UTC:
RFC 3339, fractional seconds without trailing zeros, `Z`.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Final, final

import attrs
import jwt

from madbase.protocol.auth.errors import WeakPassword
from madbase.protocol.auth.limits import AuthLimits
from madbase.protocol.http.messages import JsonValue

__all__ = [
    "Aal",
    "AccessToken",
    "AmrClaim",
    "Factor",
    "Identity",
    "Session",
    "User",
    "access_token_claims",
    "format_timestamp",
    "issue_access_token",
    "render_factor",
    "render_identity",
    "render_user",
    "session_response",
]

JsonObject = dict[str, JsonValue]

# AMR methods that lift a session to aal2 (models/amr.go IsAAL2Claim).
_AAL2_METHODS: Final = frozenset({"totp", "mfa/phone", "mfa/webauthn"})


class Aal(enum.StrEnum):
    """Authenticator assurance level (`auth.aal_level`)."""

    AAL1 = "aal1"
    AAL2 = "aal2"
    AAL3 = "aal3"


def format_timestamp(value: datetime) -> str:
    """`value` in UTC as Go's JSON encoder writes a `time.Time` (naive values count as UTC).

    >>> format_timestamp(datetime(2024, 5, 1, 12, 0, 3, 120000, tzinfo=UTC))
    '2024-05-01T12:00:03.12Z'
    >>> format_timestamp(datetime(2024, 5, 1, 12, 0, 3))
    '2024-05-01T12:00:03Z'
    """
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _unix(value: datetime) -> int:
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return int(utc.timestamp() // 1)


def _stamp(value: datetime | None) -> JsonValue:
    return None if value is None else format_timestamp(value)


@final
@attrs.frozen(kw_only=True)
class Identity:
    """A row of `auth.identities`: `id` is the row id, `provider_id` the subject at the provider."""

    id: str
    provider_id: str
    user_id: str
    provider: str
    identity_data: JsonObject = attrs.field(factory=dict)
    created_at: datetime
    updated_at: datetime
    last_sign_in_at: datetime | None = None
    email: str | None = None


@final
@attrs.frozen(kw_only=True)
class Factor:
    """A row of `auth.mfa_factors` (the secret stays in the database)."""

    id: str
    factor_type: str
    status: str
    created_at: datetime
    updated_at: datetime
    friendly_name: str | None = None
    phone: str | None = None
    last_challenged_at: datetime | None = None

    @property
    def verified(self) -> bool:
        """True once the factor was verified."""
        return self.status == "verified"


@final
@attrs.frozen(kw_only=True)
class User:
    """A row of `auth.users` with its identities and factors."""

    id: str
    aud: str = "authenticated"
    role: str = "authenticated"
    email: str | None = None
    phone: str | None = None
    encrypted_password: str | None = attrs.field(default=None, repr=False)
    email_confirmed_at: datetime | None = None
    phone_confirmed_at: datetime | None = None
    invited_at: datetime | None = None
    confirmation_sent_at: datetime | None = None
    recovery_sent_at: datetime | None = None
    email_change: str = ""
    email_change_sent_at: datetime | None = None
    phone_change: str = ""
    phone_change_sent_at: datetime | None = None
    reauthentication_sent_at: datetime | None = None
    last_sign_in_at: datetime | None = None
    app_metadata: JsonObject = attrs.field(factory=dict)
    user_metadata: JsonObject = attrs.field(factory=dict)
    identities: tuple[Identity, ...] = ()
    factors: tuple[Factor, ...] = ()
    created_at: datetime
    updated_at: datetime
    banned_until: datetime | None = None
    deleted_at: datetime | None = None
    is_anonymous: bool = False
    is_sso_user: bool = False

    @property
    def confirmed_at(self) -> datetime | None:
        """The generated column: the earlier of the two confirmations (NULLs ignored, as `least`)."""
        stamps = [t for t in (self.email_confirmed_at, self.phone_confirmed_at) if t is not None]
        return min(stamps, key=_unix_exact) if stamps else None

    def is_banned(self, *, now: datetime) -> bool:
        """True while `banned_until` lies in the future."""
        return self.banned_until is not None and _unix_exact(now) < _unix_exact(self.banned_until)

    @property
    def highest_possible_aal(self) -> Aal:
        """aal2 as soon as one factor is verified (models/user.go HighestPossibleAAL)."""
        return Aal.AAL2 if any(f.verified for f in self.factors) else Aal.AAL1


def _unix_exact(value: datetime) -> float:
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).timestamp()


@final
@attrs.frozen(kw_only=True)
class AmrClaim:
    """A row of `auth.mfa_amr_claims`: how the session was authenticated, last at `updated_at`."""

    method: str
    updated_at: datetime


@final
@attrs.frozen(kw_only=True)
class Session:
    """A row of `auth.sessions` with its AMR claims."""

    id: str
    user_id: str
    created_at: datetime
    updated_at: datetime
    factor_id: str | None = None
    aal: Aal | None = Aal.AAL1
    not_after: datetime | None = None
    refreshed_at: datetime | None = None
    user_agent: str | None = None
    ip: str | None = None
    tag: str | None = None
    amr_claims: tuple[AmrClaim, ...] = ()


@final
@attrs.frozen(kw_only=True)
class AccessToken:
    """A signed access token, its expiry (unix seconds) and the claims it carries."""

    token: str = attrs.field(repr=False)
    expires_at: int
    claims: JsonObject = attrs.field(repr=False)


def _aal_and_amr(session: Session, user: User) -> tuple[Aal, list[JsonValue]]:
    aal = Aal.AAL1
    entries: list[tuple[int, JsonObject]] = []
    sso = [i for i in user.identities if i.provider.startswith("sso:")]
    for claim in session.amr_claims:
        if claim.method in _AAL2_METHODS:
            aal = Aal.AAL2
        timestamp = _unix(claim.updated_at)
        entry: JsonObject = {"method": claim.method, "timestamp": timestamp}
        # An SSO user has exactly one identity; its provider names the IdP (sessions.go).
        if claim.method == "sso/saml" and len(user.identities) == 1 and sso:
            entry["provider"] = sso[0].provider.removeprefix("sso:")
        entries.append((timestamp, entry))
    # Newest first; equal timestamps keep their order.
    entries.sort(key=lambda pair: -pair[0])
    return aal, [entry for _, entry in entries]


def access_token_claims(
    user: User, session: Session, *, limits: AuthLimits, now: datetime
) -> JsonObject:
    """The claims GoTrue puts in an access token for `user` in `session`, issued at `now`.

    `aal` and `amr` come from the session's AMR claims (aal2 once a TOTP, phone or WebAuthn
    factor was verified in it). With `session_allow_low_aal` set, a session below the user's
    highest possible level expires no later than `created_at` plus that window.
    """
    aal, amr = _aal_and_amr(session, user)
    issued_at = _unix(now)
    expires_at = issued_at + limits.jwt_expiry_seconds
    window = limits.session_allow_low_aal
    if window and aal < user.highest_possible_aal:
        expires_at = min(expires_at, _unix(session.created_at + window))
    claims: JsonObject = {
        "iss": limits.issuer,
        "sub": user.id,
        "aud": user.aud,
        "exp": expires_at,
        "iat": issued_at,
        "email": user.email or "",
        "phone": user.phone or "",
        "app_metadata": user.app_metadata,
        "user_metadata": user.user_metadata,
        "role": user.role,
        "aal": aal.value,
    }
    if amr:  # `amr,omitempty`
        claims["amr"] = amr
    claims["session_id"] = session.id
    claims["is_anonymous"] = user.is_anonymous
    return claims


def issue_access_token(
    user: User,
    session: Session,
    *,
    limits: AuthLimits,
    secret: str,
    now: datetime,
    kid: str | None = None,
) -> AccessToken:
    """Sign `access_token_claims(...)` with HS256 and `secret` (`kid` in the header when given).

    >>> from datetime import UTC
    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> u = User(id="u1", email="a@b.co", created_at=t, updated_at=t)
    >>> s = Session(id="s1", user_id="u1", created_at=t, updated_at=t)
    >>> issue_access_token(u, s, limits=AuthLimits(), secret="k" * 32, now=t).expires_at
    1704070800
    """
    claims = access_token_claims(user, session, limits=limits, now=now)
    headers = {"kid": kid} if kid is not None else None
    token = jwt.encode(claims, secret, algorithm="HS256", headers=headers)
    expires_at = claims["exp"]
    assert isinstance(expires_at, int)
    return AccessToken(token=token, expires_at=expires_at, claims=claims)


def render_identity(identity: Identity) -> JsonObject:
    """An identity as GoTrue renders it (`identity_id` is the row id, `id` the provider subject)."""
    body: JsonObject = {
        "identity_id": identity.id,
        "id": identity.provider_id,
        "user_id": identity.user_id,
        # GoTrue omits an empty object; supabase-py requires the key, so it is always sent.
        "identity_data": identity.identity_data,
        "provider": identity.provider,
    }
    if identity.last_sign_in_at is not None:
        body["last_sign_in_at"] = format_timestamp(identity.last_sign_in_at)
    body["created_at"] = format_timestamp(identity.created_at)
    body["updated_at"] = format_timestamp(identity.updated_at)
    if identity.email:
        body["email"] = identity.email
    return body


def render_factor(factor: Factor) -> JsonObject:
    """An MFA factor as GoTrue renders it."""
    body: JsonObject = {
        "id": factor.id,
        "created_at": format_timestamp(factor.created_at),
        "updated_at": format_timestamp(factor.updated_at),
        "status": factor.status,
    }
    if factor.friendly_name:
        body["friendly_name"] = factor.friendly_name
    body["factor_type"] = factor.factor_type
    body["phone"] = factor.phone or ""
    body["last_challenged_at"] = _stamp(factor.last_challenged_at)
    return body


def render_user(user: User) -> JsonObject:
    """The user object of `/user`, `/signup`, admin routes and sessions (spec §3)."""
    body: JsonObject = {
        "id": user.id,
        "aud": user.aud,
        "role": user.role,
        "email": user.email or "",
    }
    optional: tuple[tuple[str, datetime | None], ...] = (
        ("email_confirmed_at", user.email_confirmed_at),
        ("invited_at", user.invited_at),
    )
    _put_stamps(body, optional)
    body["phone"] = user.phone or ""
    _put_stamps(
        body,
        (
            ("phone_confirmed_at", user.phone_confirmed_at),
            ("confirmation_sent_at", user.confirmation_sent_at),
            ("confirmed_at", user.confirmed_at),
            ("recovery_sent_at", user.recovery_sent_at),
        ),
    )
    if user.email_change:
        body["new_email"] = user.email_change
    _put_stamps(body, (("email_change_sent_at", user.email_change_sent_at),))
    if user.phone_change:
        body["new_phone"] = user.phone_change
    _put_stamps(
        body,
        (
            ("phone_change_sent_at", user.phone_change_sent_at),
            ("reauthentication_sent_at", user.reauthentication_sent_at),
            ("last_sign_in_at", user.last_sign_in_at),
        ),
    )
    body["app_metadata"] = user.app_metadata
    body["user_metadata"] = user.user_metadata
    if user.factors:
        body["factors"] = [render_factor(f) for f in user.factors]
    body["identities"] = [render_identity(i) for i in user.identities]
    body["created_at"] = format_timestamp(user.created_at)
    body["updated_at"] = format_timestamp(user.updated_at)
    _put_stamps(body, (("banned_until", user.banned_until), ("deleted_at", user.deleted_at)))
    body["is_anonymous"] = user.is_anonymous
    return body


def _put_stamps(body: JsonObject, stamps: tuple[tuple[str, datetime | None], ...]) -> None:
    for key, value in stamps:
        if value is not None:
            body[key] = format_timestamp(value)


def session_response(
    user: User,
    access_token: AccessToken,
    refresh_token: str,
    *,
    now: datetime,
    weak_password: WeakPassword | None = None,
    provider_token: str | None = None,
    provider_refresh_token: str | None = None,
) -> JsonObject:
    """The session object of the token grants, `/verify` and factor verification (spec §3).

    `expires_in` counts from `now`; `weak_password` (password grant only) becomes
    `{"message", "reasons"}`.
    """
    body: JsonObject = {
        "access_token": access_token.token,
        "token_type": "bearer",
        "expires_in": access_token.expires_at - _unix(now),
        "expires_at": access_token.expires_at,
        "refresh_token": refresh_token,
        "user": render_user(user),
    }
    if provider_token:
        body["provider_token"] = provider_token
    if provider_refresh_token:
        body["provider_refresh_token"] = provider_refresh_token
    if weak_password is not None:
        weak: JsonObject = {}
        if weak_password.message:
            weak["message"] = weak_password.message
        if weak_password.reasons:
            weak["reasons"] = list(weak_password.reasons)
        body["weak_password"] = weak
    return body
