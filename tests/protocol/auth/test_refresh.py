"""Refresh-token rotation and reuse detection: every branch of `decide_refresh`, and totality."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.auth import AuthLimits
from madbase.protocol.auth.errors import (
    RefreshTokenAlreadyUsed,
    RefreshTokenNotFound,
    SessionExpired,
    SessionNotFound,
    UserBanned,
)
from madbase.protocol.auth.refresh import (
    REFRESH_TOKEN_RANDOM_BYTES,
    RefreshDecision,
    RefreshTokenRow,
    Refuse,
    ReturnCurrent,
    RevokeFamily,
    Rotate,
    check_session,
    decide_refresh,
    last_refreshed_at,
    new_refresh_token,
)
from madbase.protocol.auth.tokens import Aal, Factor, Session, User

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
LIMITS = AuthLimits()
SID = "22222222-2222-4222-8222-222222222222"
USER = User(id="u", created_at=T0, updated_at=T0)
SESSION = Session(id=SID, user_id="u", created_at=T0, updated_at=T0)


def row(token: str = "aaaaaaaaaaaa", **overrides: object) -> RefreshTokenRow:
    values: dict[str, object] = {
        "id": 1,
        "token": token,
        "user_id": "u",
        "session_id": SID,
        "revoked": False,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(overrides)
    return RefreshTokenRow(**values)  # type: ignore[arg-type]


def decide(
    token: RefreshTokenRow | None,
    *,
    user: User | None = USER,
    session: Session | None = SESSION,
    active: RefreshTokenRow | None = None,
    limits: AuthLimits = LIMITS,
    now: datetime = NOW,
) -> RefreshDecision:
    return decide_refresh(token, user=user, session=session, active=active, limits=limits, now=now)


def refused(decision: RefreshDecision) -> Refuse:
    assert isinstance(decision, Refuse)
    return decision


def test_refresh_unknown_token() -> None:
    assert isinstance(refused(decide(None)).error, RefreshTokenNotFound)
    assert isinstance(refused(decide(row(), user=None)).error, RefreshTokenNotFound)
    assert str(RefreshTokenNotFound()) == "Invalid Refresh Token: Refresh Token Not Found"


def test_refresh_banned_user() -> None:
    banned = User(id="u", created_at=T0, updated_at=T0, banned_until=NOW + timedelta(days=1))
    error = refused(decide(row(), user=banned)).error
    assert isinstance(error, UserBanned)
    assert error.message == "Invalid Refresh Token: User Banned"
    assert error.http_status == 400


@pytest.mark.parametrize("session_id", [None, "other"])
def test_refresh_token_without_session_is_destroyed(session_id: str | None) -> None:
    decision = refused(decide(row(session_id=session_id, id=7), session=None))
    assert isinstance(decision.error, SessionNotFound)
    assert decision.error.http_status == 400
    assert decision.error.message == "Invalid Refresh Token: No Valid Session Found"
    assert decision.destroy_token_id == 7


@pytest.mark.parametrize(
    ("limits", "session", "message"),
    [
        (LIMITS, Session(id=SID, user_id="u", created_at=T0, updated_at=T0, not_after=T0), ""),
        (AuthLimits(session_timebox=timedelta(minutes=30)), SESSION, ""),
        (AuthLimits(session_inactivity_timeout=timedelta(minutes=30)), SESSION, " (Inactivity)"),
    ],
)
def test_refresh_expired_session(limits: AuthLimits, session: Session, message: str) -> None:
    error = refused(decide(row(), session=session, limits=limits)).error
    assert isinstance(error, SessionExpired)
    assert error.message == "Invalid Refresh Token: Session Expired" + message


def test_refresh_low_aal_session() -> None:
    factor = Factor(id="f", factor_type="totp", status="verified", created_at=T0, updated_at=T0)
    mfa_user = User(id="u", created_at=T0, updated_at=T0, factors=(factor,))
    limits = AuthLimits(session_allow_low_aal=timedelta(minutes=10))
    error = refused(decide(row(), user=mfa_user, limits=limits)).error
    assert error.message.endswith("(Low AAL: User Needs MFA Verification)")
    aal2 = Session(id=SID, user_id="u", created_at=T0, updated_at=T0, aal=Aal.AAL2)
    assert isinstance(decide(row(), user=mfa_user, session=aal2, limits=limits), Rotate)


def test_refresh_valid_token_rotates() -> None:
    token = row()
    assert decide(token) == Rotate(session_id=SID, parent=token)


def test_refresh_lost_answer_returns_current_token() -> None:
    revoked = row(revoked=True, updated_at=T0)
    active = row("bbbbbbbbbbbb", id=2, parent="aaaaaaaaaaaa")
    # Even long after the reuse interval: the client never stored the active token.
    assert decide(revoked, active=active) == ReturnCurrent(session_id=SID, token=active)


@pytest.mark.parametrize("seconds", [0, 5, 10])
def test_refresh_reuse_within_interval_rotates(seconds: int) -> None:
    revoked = row(revoked=True, updated_at=NOW - timedelta(seconds=seconds))
    active = row("cccccccccccc", id=3, parent="bbbbbbbbbbbb")
    assert decide(revoked, active=active) == Rotate(session_id=SID, parent=revoked)


def test_refresh_reuse_outside_interval_revokes_family() -> None:
    revoked = row(revoked=True, updated_at=NOW - timedelta(seconds=10, microseconds=1))
    decision = decide(revoked, active=None)
    assert isinstance(decision, RevokeFamily)
    assert decision.session_id == SID
    assert decision.error.message == "Invalid Refresh Token: Already Used"


def test_refresh_reuse_outside_interval_without_rotation_only_refuses() -> None:
    revoked = row(revoked=True, updated_at=T0)
    limits = AuthLimits(refresh_token_rotation_enabled=False)
    assert isinstance(refused(decide(revoked, limits=limits)).error, RefreshTokenAlreadyUsed)


def test_refresh_reuse_interval_zero() -> None:
    revoked = row(revoked=True, updated_at=NOW)
    limits = AuthLimits(refresh_token_reuse_interval_seconds=0)
    assert isinstance(decide(revoked, limits=limits), Rotate)
    assert isinstance(decide(revoked, limits=limits, now=NOW + timedelta(seconds=1)), RevokeFamily)


def test_refresh_last_refreshed_at() -> None:
    naive_refresh = datetime(2024, 6, 1, 12, 30)  # noqa: DTZ001 - sessions.refreshed_at
    refreshed = Session(
        id=SID, user_id="u", created_at=T0, updated_at=T0, refreshed_at=naive_refresh
    )
    assert last_refreshed_at(refreshed, None) == naive_refresh.replace(tzinfo=UTC)
    later = T0 + timedelta(minutes=5)
    assert last_refreshed_at(SESSION, later) == later
    assert last_refreshed_at(SESSION, T0 - timedelta(minutes=5)) == T0
    assert last_refreshed_at(SESSION, None) == T0


def test_refresh_check_session_valid() -> None:
    limits = AuthLimits(
        session_timebox=timedelta(days=1),
        session_inactivity_timeout=timedelta(hours=2),
        session_allow_low_aal=timedelta(hours=2),
    )
    assert check_session(SESSION, limits=limits, now=NOW) is None


@pytest.mark.parametrize(
    ("random", "token"),
    [(bytes(8), "aaaaaaaaaaaa"), (b"\xff" * 8, "777777777777"), (bytes(range(10)), "aaaqeayeauda")],
)
def test_refresh_new_token(random: bytes, token: str) -> None:
    assert new_refresh_token(random) == token


def test_refresh_new_token_needs_eight_bytes() -> None:
    with pytest.raises(ValueError, match="need 8 random bytes"):
        new_refresh_token(bytes(REFRESH_TOKEN_RANDOM_BYTES - 1))


@given(st.binary(min_size=8, max_size=8))
def test_refresh_new_token_format(random: bytes) -> None:
    token = new_refresh_token(random)
    assert len(token) == 12
    assert all(c in "abcdefghijklmnopqrstuvwxyz234567" for c in token)


times = st.integers(min_value=-7200, max_value=7200).map(lambda s: T0 + timedelta(seconds=s))
maybe_delta = st.none() | st.integers(min_value=1, max_value=7200).map(
    lambda s: timedelta(seconds=s)
)


@st.composite
def states(draw: st.DrawFn) -> tuple[RefreshTokenRow | None, dict[str, object]]:
    tokens = st.sampled_from(["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"])
    presented = draw(
        st.none()
        | st.builds(
            row,
            tokens,
            revoked=st.booleans(),
            session_id=st.sampled_from([SID, None, "other"]),
            updated_at=times,
            parent=st.none() | tokens,
        )
    )
    factors = draw(
        st.lists(
            st.builds(
                Factor,
                id=st.just("f"),
                factor_type=st.just("totp"),
                status=st.sampled_from(["verified", "unverified"]),
                created_at=st.just(T0),
                updated_at=st.just(T0),
            ),
            max_size=2,
        )
    )
    user = draw(
        st.none()
        | st.builds(
            User,
            id=st.just("u"),
            created_at=st.just(T0),
            updated_at=st.just(T0),
            banned_until=st.none() | times,
            factors=st.just(tuple(factors)),
        )
    )
    session = draw(
        st.none()
        | st.builds(
            Session,
            id=st.sampled_from([SID, "other"]),
            user_id=st.just("u"),
            created_at=times,
            updated_at=st.just(T0),
            not_after=st.none() | times,
            refreshed_at=st.none() | times,
            aal=st.sampled_from([None, *Aal]),
        )
    )
    active = draw(st.none() | st.builds(row, tokens, id=st.just(9), parent=st.none() | tokens))
    limits = draw(
        st.builds(
            AuthLimits,
            refresh_token_reuse_interval_seconds=st.integers(min_value=0, max_value=60),
            refresh_token_rotation_enabled=st.booleans(),
            session_timebox=maybe_delta,
            session_inactivity_timeout=maybe_delta,
            session_allow_low_aal=maybe_delta,
        )
    )
    return presented, {
        "user": user,
        "session": session,
        "active": active,
        "limits": limits,
        "now": draw(times),
    }


@given(states())
def test_refresh_decision_is_total(state: tuple[RefreshTokenRow | None, dict[str, object]]) -> None:
    presented, rest = state
    decision = decide_refresh(presented, **rest)  # type: ignore[arg-type]
    match decision:
        case Rotate(parent=parent):
            assert parent is presented
            assert presented is not None
            assert decision.session_id == presented.session_id
        case ReturnCurrent(token=token):
            assert presented is not None
            assert presented.revoked
            assert token.parent == presented.token
        case RevokeFamily():
            assert presented is not None
            assert presented.revoked
        case Refuse(error=error):
            assert error.error_code in {
                "refresh_token_not_found",
                "user_banned",
                "session_not_found",
                "session_expired",
                "refresh_token_already_used",
            }
