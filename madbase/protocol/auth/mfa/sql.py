"""The SQL of the MFA endpoints (`mfa.flows`) and of the admin factor routes: factors, challenges, AAL.

Statements with bind parameters only; timestamps are parameters made from the flow's `now`.
GoTrue's models these mirror: factor.go, challenge.go, sessions.go, amr.go.
"""

from __future__ import annotations

from datetime import datetime

from madbase.protocol.auth.sql import NIL_UUID, SESSION_JSON, USER_JSON, stamp
from madbase.protocol.sql import Statement

__all__ = [
    "challenge_state",
    "delete_challenge",
    "delete_expired_factors",
    "delete_factor",
    "delete_low_aal_sessions",
    "delete_unverified_factors",
    "downgrade_factor_sessions",
    "insert_challenge",
    "insert_factor",
    "mark_challenge_verified",
    "principal",
    "raise_session_aal",
    "rename_factor",
    "select_session",
    "set_factor_verified",
    "swap_refresh_token",
    "touch_factor_challenged",
]


def principal(user_id: str, session_id: str | None) -> Statement:
    """The user (`jsonb`) and its session with AMR claims (`jsonb`, NULL if gone); no row: no user."""
    return Statement(
        f"select {USER_JSON}, (select {SESSION_JSON} from auth.sessions s"  # noqa: S608
        " where s.id = $2::uuid and s.user_id = u.id) from auth.users u where u.id = $1::uuid",
        (user_id, session_id),
    )


def select_session(session_id: str) -> Statement:
    """The session with its AMR claims as `jsonb` (after earlier writes in the transaction)."""
    return Statement(
        f"select {SESSION_JSON} from auth.sessions s where s.id = $1::uuid",  # noqa: S608
        (session_id,),
    )


def delete_expired_factors(user_id: str, *, created_before: datetime) -> Statement:
    """Drop the user's unverified factors that were never challenged and are too old to finish."""
    return Statement(
        "delete from auth.mfa_factors f where f.user_id = $1::uuid and f.status <> 'verified'"
        " and not exists (select 1 from auth.mfa_challenges c where c.factor_id = f.id)"
        " and f.created_at < $2::timestamptz",
        (user_id, stamp(created_before)),
    )


def insert_factor(
    *,
    factor_id: str,
    user_id: str,
    friendly_name: str,
    factor_type: str,
    secret: str | None,
    now: datetime,
) -> Statement:
    """A new unverified factor (a taken friendly name fails with SQLSTATE 23505)."""
    return Statement(
        "insert into auth.mfa_factors (id, user_id, friendly_name, factor_type, status, created_at,"
        " updated_at, secret) values ($1::uuid, $2::uuid, $3, $4::auth.factor_type, 'unverified',"
        " $5::timestamptz, $5::timestamptz, $6)",
        (factor_id, user_id, friendly_name, factor_type, stamp(now), secret),
    )


def insert_challenge(*, challenge_id: str, factor_id: str, ip: str, now: datetime) -> Statement:
    """A new challenge of the factor, issued to `ip`."""
    return Statement(
        "insert into auth.mfa_challenges (id, factor_id, created_at, ip_address)"
        " values ($1::uuid, $2::uuid, $3::timestamptz, $4::inet)",
        (challenge_id, factor_id, stamp(now), ip),
    )


def touch_factor_challenged(factor_id: str, *, now: datetime) -> Statement:
    """Record when the factor was last challenged."""
    return Statement(
        "update auth.mfa_factors set last_challenged_at = $2::timestamptz where id = $1::uuid",
        (factor_id, stamp(now)),
    )


def challenge_state(challenge_id: str, factor_id: str) -> Statement:
    """The challenge (`jsonb`, `ip_address` as text) and its factor's secret; no row: unknown."""
    return Statement(
        "select jsonb_build_object('id', c.id, 'created_at', c.created_at,"
        " 'verified_at', c.verified_at, 'ip_address', host(c.ip_address)), f.secret"
        " from auth.mfa_challenges c join auth.mfa_factors f on f.id = c.factor_id"
        " where c.id = $1::uuid and c.factor_id = $2::uuid",
        (challenge_id, factor_id),
    )


def delete_challenge(challenge_id: str) -> Statement:
    """Drop an expired challenge."""
    return Statement("delete from auth.mfa_challenges where id = $1::uuid", (challenge_id,))


def mark_challenge_verified(challenge_id: str, *, now: datetime) -> Statement:
    """The challenge was answered: it cannot be used again."""
    return Statement(
        "update auth.mfa_challenges set verified_at = $2::timestamptz where id = $1::uuid",
        (challenge_id, stamp(now)),
    )


def set_factor_verified(factor_id: str, *, now: datetime) -> Statement:
    """The factor's first successful verification."""
    return Statement(
        "update auth.mfa_factors set status = 'verified', updated_at = $2::timestamptz"
        " where id = $1::uuid",
        (factor_id, stamp(now)),
    )


def delete_unverified_factors(user_id: str, factor_type: str) -> Statement:
    """Drop the user's other unverified factors of this type (models.DeleteUnverifiedFactors)."""
    return Statement(
        "delete from auth.mfa_factors where user_id = $1::uuid and status = 'unverified'"
        " and factor_type = $2::auth.factor_type",
        (user_id, factor_type),
    )


def swap_refresh_token(*, session_id: str, user_id: str, token: str, now: datetime) -> Statement:
    """Revoke the session's live refresh tokens and issue `token`, child of the newest of them.

    GoTrue's GrantRefreshTokenSwap after an MFA verification: the tokens handed out before the
    session reached aal2 stop working.
    """
    return Statement(
        "with r as (update auth.refresh_tokens set revoked = true, updated_at = $1::timestamptz"
        " where session_id = $2::uuid and revoked = false returning id, token)"
        " insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at,"
        " updated_at, parent, session_id)"
        " select $3::uuid, $4, $5, false, $1::timestamptz, $1::timestamptz,"
        " (select r.token from r order by r.id desc limit 1), $2::uuid returning token",
        (stamp(now), session_id, NIL_UUID, token, user_id),
    )


def raise_session_aal(session_id: str, factor_id: str, *, now: datetime) -> Statement:
    """The session is aal2 through `factor_id`."""
    return Statement(
        "update auth.sessions set aal = 'aal2', factor_id = $2::uuid, updated_at = $3::timestamptz"
        " where id = $1::uuid",
        (session_id, factor_id, stamp(now)),
    )


def delete_low_aal_sessions(user_id: str) -> Statement:
    """End the user's sessions below aal2 (models.InvalidateSessionsWithAALLessThan)."""
    return Statement(
        "delete from auth.sessions where user_id = $1::uuid and aal < 'aal2'::auth.aal_level",
        (user_id,),
    )


def delete_factor(factor_id: str) -> Statement:
    """Drop a factor (its challenges cascade)."""
    return Statement("delete from auth.mfa_factors where id = $1::uuid", (factor_id,))


def downgrade_factor_sessions(user_id: str, factor_id: str, method: str) -> Statement:
    """Sessions that reached aal2 through the factor lose its AMR claim and drop to aal1."""
    return Statement(
        "with c as (delete from auth.mfa_amr_claims where authentication_method = $3"
        " and session_id in (select id from auth.sessions where user_id = $1::uuid"
        " and factor_id = $2::uuid))"
        " update auth.sessions set aal = 'aal1', factor_id = null"
        " where user_id = $1::uuid and factor_id = $2::uuid",
        (user_id, factor_id, method),
    )


def rename_factor(factor_id: str, friendly_name: str, *, now: datetime) -> Statement:
    """Set the factor's friendly name."""
    return Statement(
        "update auth.mfa_factors set friendly_name = $2, updated_at = $3::timestamptz"
        " where id = $1::uuid",
        (factor_id, friendly_name, stamp(now)),
    )
