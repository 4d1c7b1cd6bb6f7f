"""`POST /token` (the password and refresh_token grants; pkce and id_token are handed to
`session.pkce` and `external.idtoken`) and `POST /logout`.

Each grant costs as few round trips as it can: the password grant reads the user in one
transaction and writes session, AMR claim, refresh token, sign-in time and audit entry in a second;
a refresh reads token, user, session and the active token in one and rotates in a second.

An unknown email and a wrong password give the same error after the same work: a missing user is
checked against `DUMMY_HASH`, an argon2id hash with the runtime's parameters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, assert_never

from madbase.protocol.auth import sql
from madbase.protocol.auth.errors import (
    EmailNotConfirmed,
    InvalidCredentials,
    PhoneNotConfirmed,
    UnexpectedFailure,
    UserBanned,
    ValidationFailed,
)
from madbase.protocol.auth.external.idtoken import id_token_grant
from madbase.protocol.auth.passwords import (
    needs_rehash,
    password_weakness,
)
from madbase.protocol.auth.refresh import (
    RefreshTokenRow,
    Refuse,
    ReturnCurrent,
    RevokeFamily,
    Rotate,
    decide_refresh,
    new_refresh_token,
)
from madbase.protocol.auth.session.grants import (
    IdTokenGrant,
    LogoutScope,
    PasswordGrant,
    PkceGrant,
    RefreshTokenGrant,
    parse_logout_scope,
    parse_token_request,
)
from madbase.protocol.auth.session.pkce import pkce_grant
from madbase.protocol.auth.steps import (
    DUMMY_HASH,
    UUID_BYTES,
    AuthSettings,
    Flow,
    audit,
    authenticate,
    check_password,
    draw_random,
    first,
    hash_password,
    run,
    session_body,
    start_session,
    uuids,
)
from madbase.protocol.auth.tokens import (
    Session,
    User,
)
from madbase.protocol.http.messages import Request, Response
from madbase.protocol.sql import Statement

__all__ = ["route"]

# A concurrent refresh of the same token makes the rotation match no row; read again, a few times.
_ROTATION_ATTEMPTS: Final = 3


def route(
    request: Request, path: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response] | None:
    """The flow for `POST /token` or `POST /logout`, or None for any other request."""
    match (request.method, path):
        case ("POST", "/token"):
            return _token(request, settings, now=now)
        case ("POST", "/logout"):
            return _logout(request, settings, now=now)
    return None


# --- POST /token -------------------------------------------------------------------------------


def _token(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    grant = parse_token_request(request.query_param("grant_type"), request.body, settings.limits)
    match grant:
        case PasswordGrant():
            return (yield from _password_grant(grant, request, settings, now=now))
        case RefreshTokenGrant():
            return (yield from _refresh_grant(grant, request, settings, now=now))
        case PkceGrant():
            return (yield from pkce_grant(grant, request, settings, now=now))
        case IdTokenGrant():
            return (yield from id_token_grant(grant, request, settings, now=now))
        case _:
            assert_never(grant)


def _password_grant(
    grant: PasswordGrant, request: Request, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    lookup = sql.user_by_email(grant.email) if grant.email else sql.user_by_phone(grant.phone or "")
    (found,) = yield from run(lookup, read_only=True)
    user = sql.decode_user(first(found))
    stored = user.encrypted_password if user is not None else None
    # Same work whether or not the user (or its password) exists.
    ok = yield from check_password(stored or DUMMY_HASH, grant.password)
    if user is None or not stored or not ok:
        raise InvalidCredentials
    if user.is_banned(now=now):
        raise UserBanned(status=400)
    if grant.email and user.email_confirmed_at is None:
        raise EmailNotConfirmed
    if grant.phone and user.phone_confirmed_at is None:
        raise PhoneNotConfirmed
    statements: list[Statement] = []
    if needs_rehash(stored):
        statements.append(
            sql.set_password(user.id, (yield from hash_password(grant.password)), now=None)
        )
    random = yield from draw_random(3 * UUID_BYTES + 8)
    session_id, claim_id, audit_id = uuids(random, 3)
    token = new_refresh_token(random[3 * UUID_BYTES :])
    provider = "email" if grant.email else "phone"
    login = audit(
        user.id,
        "login",
        "account",
        entry_id=audit_id,
        request=request,
        now=now,
        traits={"provider": provider},
    )
    fresh, session = yield from start_session(
        user,
        method="password",
        provider=provider,
        ids=[session_id, claim_id],
        token=token,
        request=request,
        now=now,
        before=tuple(statements),
        after=(login,),
    )
    if fresh is None:  # deleted between the lookup and the sign-in
        raise InvalidCredentials
    try:
        weak = password_weakness(grant.password, settings.limits)
    except ValidationFailed:
        # GoTrue reports only weakness at sign-in; the password already matched its hash.
        weak = None
    return session_body(fresh, session, token, settings, now=now, weak=weak)


def _refresh_grant(
    grant: RefreshTokenGrant, request: Request, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    for _ in range(_ROTATION_ATTEMPTS):
        (row,) = yield from run(sql.refresh_token_state(grant.refresh_token), read_only=True)
        token: RefreshTokenRow | None = None
        user: User | None = None
        session: Session | None = None
        active: RefreshTokenRow | None = None
        if row.rows:
            raw_token, raw_user, raw_session, raw_active = row.rows[0]
            token = sql.decode_refresh_token(raw_token)
            user = sql.decode_user(raw_user)
            session = sql.decode_session(raw_session)
            active = sql.decode_refresh_token(raw_active)
        decision = decide_refresh(
            token, user=user, session=session, active=active, limits=settings.limits, now=now
        )
        match decision:
            case Refuse(error=error, destroy_token_id=destroy):
                if destroy is not None:
                    yield from run(sql.delete_refresh_token(destroy))
                raise error
            case RevokeFamily(session_id=session_id, error=error):
                yield from run(sql.revoke_session_tokens(session_id, now=now))
                raise error
            case ReturnCurrent(token=current):
                assert user is not None
                assert session is not None
                return session_body(user, session, current.token, settings, now=now)
            case Rotate(session_id=session_id, parent=parent):
                assert user is not None
                assert session is not None
                child = new_refresh_token((yield from draw_random(8)))
                rotated, _ = yield from run(
                    sql.rotate_refresh_token(
                        parent=parent, token=child, session_id=session_id, now=now
                    ),
                    sql.touch_session(session_id, now=now),
                )
                if rotated.rows:
                    return session_body(user, session, child, settings, now=now)
    raise UnexpectedFailure("refresh token rotation kept conflicting")


# --- POST /logout ------------------------------------------------------------------------------


def _logout(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    scope = parse_logout_scope(request.query_param("scope"))
    # A token whose session (or user) is gone already: 403 as GoTrue's middleware answers, which
    # supabase-js takes as signed out.
    user, session = yield from authenticate(request, settings, now=now, refuse_banned=False)
    subject = user.id
    match scope:
        case LogoutScope.GLOBAL:
            delete = sql.delete_sessions(subject, only=None, keep=None)
        case LogoutScope.LOCAL:
            delete = sql.delete_sessions(subject, only=session or sql.NIL_UUID, keep=None)
        case LogoutScope.OTHERS:
            delete = sql.delete_sessions(subject, only=None, keep=session or sql.NIL_UUID)
        case _:
            assert_never(scope)
    (audit_id,) = uuids((yield from draw_random(UUID_BYTES)), 1)
    yield from run(
        delete, audit(subject, "logout", "account", entry_id=audit_id, request=request, now=now)
    )
    return Response(status=204)
