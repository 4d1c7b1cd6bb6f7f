"""Refresh-token rotation and reuse detection (spec/auth.md §5), as one pure decision.

Theory of operation. A session owns a chain of opaque refresh tokens (`auth.refresh_tokens`): each
refresh_token grant revokes the presented token and issues a child whose `parent` is the
presented token's text. The runtime looks up the presented token (with its user and session, row
locked) and the session's currently active token (the newest non-revoked one), then calls
`decide_refresh`, which answers as GoTrue's `RefreshTokenGrant` does (internal/tokens/service.go,
legacy 12-character tokens):

1. unknown token (or its user is gone)             -> Refuse(refresh_token_not_found)
2. user banned                                     -> Refuse(user_banned)
3. token without a session                         -> Refuse(session_not_found), delete that token
4. session past `not_after` or the timebox          -> Refuse(session_expired)
   inactive too long / low AAL past its window     -> Refuse(session_expired, with the reason)
5. revoked token that is the parent of the active   -> ReturnCurrent(active): the client lost the
   token                                               last answer; hand it the same token again
6. revoked token, revoked more than the reuse      -> RevokeFamily (rotation on) or
   interval ago                                        Refuse (rotation off), refresh_token_already_used
7. otherwise (valid token, or revoked within the    -> Rotate: revoke it, issue a child
   reuse interval)

`Rotate` and `ReturnCurrent` go on to a new access token; `RevokeFamily` must be committed before
its error is sent (GoTrue commits the revocation and still answers 400).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Final, TypeAlias, final

import attrs

from madbase.protocol.auth.errors import (
    AuthError,
    RefreshTokenAlreadyUsed,
    RefreshTokenNotFound,
    SessionExpired,
    SessionNotFound,
    UserBanned,
)
from madbase.protocol.auth.limits import AuthLimits
from madbase.protocol.auth.tokens import Aal, Session, User

__all__ = [
    "REFRESH_TOKEN_RANDOM_BYTES",
    "RefreshDecision",
    "RefreshTokenRow",
    "Refuse",
    "ReturnCurrent",
    "RevokeFamily",
    "Rotate",
    "check_session",
    "decide_refresh",
    "last_refreshed_at",
    "new_refresh_token",
]

# GoTrue's legacy refresh tokens: 12 characters of lower-case base32 from 8 random bytes
# (crypto.SecureAlphanumeric(12)).
REFRESH_TOKEN_LENGTH: Final = 12
REFRESH_TOKEN_RANDOM_BYTES: Final = 8


def new_refresh_token(random: bytes) -> str:
    """A refresh token made of the first 8 of `random` bytes, as GoTrue makes them.

    >>> new_refresh_token(bytes(range(8)))
    'aaaqeayeauda'

    Raises:
        ValueError: fewer than 8 bytes (a runtime bug, not a peer error).
    """
    if len(random) < REFRESH_TOKEN_RANDOM_BYTES:
        raise ValueError(f"need {REFRESH_TOKEN_RANDOM_BYTES} random bytes, got {len(random)}")
    text = base64.b32encode(random[:REFRESH_TOKEN_RANDOM_BYTES]).decode("ascii")
    return text.lower()[:REFRESH_TOKEN_LENGTH]


@final
@attrs.frozen(kw_only=True)
class RefreshTokenRow:
    """A row of `auth.refresh_tokens`; `parent` is the text of the token this one replaced."""

    id: int
    token: str = attrs.field(repr=False)
    user_id: str
    session_id: str | None
    revoked: bool
    created_at: datetime
    updated_at: datetime
    parent: str | None = attrs.field(default=None, repr=False)


@final
@attrs.frozen(kw_only=True)
class Rotate:
    """Revoke `parent` (if not yet) and issue a new token with `parent.token` as its parent."""

    session_id: str
    parent: RefreshTokenRow


@final
@attrs.frozen(kw_only=True)
class ReturnCurrent:
    """Answer with the session's active token `token` again; nothing is revoked or created."""

    session_id: str
    token: RefreshTokenRow


@final
@attrs.frozen(kw_only=True)
class RevokeFamily:
    """Revoke every non-revoked token of the session, commit, then answer `error`."""

    session_id: str
    error: RefreshTokenAlreadyUsed


@final
@attrs.frozen(kw_only=True)
class Refuse:
    """Answer `error`; first delete the token `destroy_token_id` when set (no session)."""

    error: AuthError
    destroy_token_id: int | None = None


RefreshDecision: TypeAlias = Rotate | ReturnCurrent | RevokeFamily | Refuse


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def last_refreshed_at(session: Session, token_updated_at: datetime | None) -> datetime:
    """When the session was last refreshed: `refreshed_at`, else the token's time, else creation.

    `sessions.refreshed_at` has no time zone; it is read as UTC, as GoTrue writes it.
    """
    if session.refreshed_at is not None:
        return _utc(session.refreshed_at)
    created = _utc(session.created_at)
    if token_updated_at is not None and _utc(token_updated_at) > created:
        return _utc(token_updated_at)
    return created


def check_session(
    session: Session,
    *,
    limits: AuthLimits,
    now: datetime,
    token_updated_at: datetime | None = None,
    highest_possible_aal: Aal = Aal.AAL1,
) -> SessionExpired | None:
    """The `session_expired` error for a session no longer valid at `now`, or None.

    Checks, in GoTrue's order: `not_after`, the timebox from `created_at`, inactivity since the
    last refresh, then how long a session below the user's highest possible AAL may live.
    """
    now = _utc(now)
    created = _utc(session.created_at)
    if session.not_after is not None and now > _utc(session.not_after):
        return SessionExpired()
    if limits.session_timebox and now > created + limits.session_timebox:
        return SessionExpired()
    inactivity = limits.session_inactivity_timeout
    if inactivity and now > last_refreshed_at(session, token_updated_at) + inactivity:
        return SessionExpired("Invalid Refresh Token: Session Expired (Inactivity)")
    window = limits.session_allow_low_aal
    if window and (session.aal or Aal.AAL1) < highest_possible_aal and now > created + window:
        return SessionExpired(
            "Invalid Refresh Token: Session Expired (Low AAL: User Needs MFA Verification)"
        )
    return None


def decide_refresh(
    token: RefreshTokenRow | None,
    *,
    user: User | None,
    session: Session | None,
    active: RefreshTokenRow | None,
    limits: AuthLimits,
    now: datetime,
) -> RefreshDecision:
    """What a refresh_token grant presenting `token` does (see the module docstring).

    `user` and `session` are the token's, `active` the session's newest non-revoked token (None
    when there is none); all were read in one transaction with the rows locked.
    """
    if token is None or user is None:
        return Refuse(error=RefreshTokenNotFound())
    if user.is_banned(now=now):
        return Refuse(error=UserBanned("Invalid Refresh Token: User Banned"))
    if session is None or token.session_id is None or session.id != token.session_id:
        return Refuse(
            error=SessionNotFound("Invalid Refresh Token: No Valid Session Found", status=400),
            destroy_token_id=token.id,
        )
    expired = check_session(
        session,
        limits=limits,
        now=now,
        token_updated_at=token.updated_at,
        highest_possible_aal=user.highest_possible_aal,
    )
    if expired is not None:
        return Refuse(error=expired)
    if token.revoked:
        if active is not None and active.parent == token.token:
            return ReturnCurrent(session_id=session.id, token=active)
        reuse_until = _utc(token.updated_at) + timedelta(
            seconds=limits.refresh_token_reuse_interval_seconds
        )
        if _utc(now) > reuse_until:
            if limits.refresh_token_rotation_enabled:
                return RevokeFamily(session_id=session.id, error=RefreshTokenAlreadyUsed())
            return Refuse(error=RefreshTokenAlreadyUsed())
    return Rotate(session_id=session.id, parent=token)
