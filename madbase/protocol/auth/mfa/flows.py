"""`/factors`: TOTP multi-factor enrolment, challenge, verification and unenrolment (GoTrue mfa.go).

Every route needs the session of a non-anonymous user: the access token's user and session are
read in one round trip (`principal`), the factor in the path must be one of the user's. A verified
TOTP code lifts the session to aal2: an AMR claim `totp` is added, the session's refresh tokens are
swapped for a new one and the session's other aal1 siblings end, so the tokens issued from then on
carry `aal: aal2` (refreshes included, since `aal`/`amr` come from the session's AMR claims).

Phone and WebAuthn factors stay behind GoTrue's switches, which are off by default; MadBase does
not serve them, so those switches answer `mfa_*_not_enabled` whatever they say.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from madbase.protocol.auth import sql
from madbase.protocol.auth.errors import (
    BadJwt,
    InsufficientAal,
    MfaChallengeExpired,
    MfaFactorNameConflict,
    MfaFactorNotFound,
    MfaIpAddressMismatch,
    MfaPhoneEnrollNotEnabled,
    MfaPhoneVerifyNotEnabled,
    MfaTotpVerifyNotEnabled,
    MfaVerificationFailed,
    MfaWebauthnEnrollNotEnabled,
    MfaWebauthnVerifyNotEnabled,
    NoAuthorization,
    SessionNotFound,
    TooManyEnrolledMfaFactors,
    UserBanned,
    UserNotFound,
    ValidationFailed,
)
from madbase.protocol.auth.mfa import sql as mfa_sql
from madbase.protocol.auth.mfa.qr import qr_svg
from madbase.protocol.auth.mfa.steps import amr_method, find_factor
from madbase.protocol.auth.mfa.totp import (
    TOTP_SECRET_BYTES,
    encode_secret,
    otpauth_uri,
    verify_totp,
)
from madbase.protocol.auth.refresh import new_refresh_token
from madbase.protocol.auth.session.grants import parse_enroll_factor, parse_verify_factor
from madbase.protocol.auth.steps import (
    UNIQUE_VIOLATION,
    UUID_BYTES,
    AuthSettings,
    Flow,
    JsonObject,
    audit,
    bearer_claims,
    client_ip,
    database_failure,
    draw_random,
    first,
    is_uuid,
    run,
    session_body,
    try_run,
    uuids,
)
from madbase.protocol.auth.tokens import Aal, Factor, Session, User
from madbase.protocol.http.messages import Request, Response, json_response
from madbase.protocol.sql import DbError

__all__ = ["route"]

# Where a challenge was issued when the runtime knows no client address.
_UNKNOWN_IP: Final = "0.0.0.0"  # noqa: S104 - an address value, nothing binds to it


def route(
    request: Request, path: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response] | None:
    """The flow for a `/factors` request, or None when the path is not one of them."""
    if path == "/factors":
        return _enroll(request, settings, now=now) if request.method == "POST" else None
    parts = path.split("/")
    if len(parts) not in (3, 4) or parts[1] != "factors":
        return None
    factor_id = parts[2]
    match (request.method, parts[3] if len(parts) == 4 else None):
        case ("POST", "challenge"):
            return _challenge(request, factor_id, settings, now=now)
        case ("POST", "verify"):
            return _verify(request, factor_id, settings, now=now)
        case ("DELETE", None):
            return _unenroll(request, factor_id, settings, now=now)
    return None


# --- the caller --------------------------------------------------------------------------------


def _principal(
    request: Request, settings: AuthSettings, *, now: datetime, expire_factors: bool = False
) -> Flow[tuple[User, Session]]:
    """The access token's user and session (GoTrue's requireAuthentication + requireNotAnonymous).

    With `expire_factors`, the user's stale unverified factors are dropped first, in the same
    transaction (validateFactors' DeleteExpiredFactors).
    """
    claims = bearer_claims(request, settings, now=now)
    subject, session_id = claims.get("sub"), claims.get("session_id")
    if not isinstance(subject, str) or not is_uuid(subject):
        raise BadJwt("invalid claim: missing sub claim")
    if not isinstance(session_id, str) or not is_uuid(session_id):
        # GoTrue fails such a token with a 500 here; it is the token's fault, not the server's.
        raise SessionNotFound("Session from session_id claim in JWT does not exist")
    statements = [mfa_sql.principal(subject, session_id)]
    if expire_factors:
        cutoff = now - settings.limits.mfa_factor_expiry
        statements.insert(0, mfa_sql.delete_expired_factors(subject, created_before=cutoff))
    result = yield from run(*statements, read_only=not expire_factors)
    row = result[-1]
    if not row.rows:
        raise UserNotFound("User from sub claim in JWT does not exist", status=403)
    raw_user, raw_session = row.rows[0]
    user, session = sql.decode_user(raw_user), sql.decode_session(raw_session)
    assert user is not None
    if session is None:
        raise SessionNotFound("Session from session_id claim in JWT does not exist")
    if user.is_banned(now=now):
        raise UserBanned("User is banned", status=403)
    if claims.get("is_anonymous") is True:
        raise NoAuthorization("Anonymous user not allowed to perform these actions", status=403)
    return user, session


# --- POST /factors -----------------------------------------------------------------------------


def _enroll(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    user, session = yield from _principal(request, settings, now=now, expire_factors=True)
    params = parse_enroll_factor(request.body, settings.limits)
    if params.factor_type == "phone":
        raise MfaPhoneEnrollNotEnabled
    if params.factor_type == "webauthn":
        raise MfaWebauthnEnrollNotEnabled
    _check_room(user, session, params.friendly_name, settings)
    issuer = params.issuer or _site_host(settings.site_url)
    random = yield from draw_random(2 * UUID_BYTES + TOTP_SECRET_BYTES)
    factor_id, audit_id = uuids(random, 2)
    secret = encode_secret(random[2 * UUID_BYTES : 2 * UUID_BYTES + TOTP_SECRET_BYTES])
    # pquerna/otp needs an account name; GoTrue passes the email (a phone user has none there).
    uri = otpauth_uri(issuer=issuer, account=user.email or user.phone or user.id, secret=secret)
    statements = (
        mfa_sql.insert_factor(
            factor_id=factor_id,
            user_id=user.id,
            friendly_name=params.friendly_name,
            factor_type="totp",
            secret=secret,
            now=now,
        ),
        audit(
            user.id,
            "factor_in_progress",
            "factor",
            entry_id=audit_id,
            request=request,
            now=now,
            traits={"factor_id": factor_id},
        ),
    )
    result = yield from try_run(*statements)
    if isinstance(result, DbError):
        if result.sqlstate == UNIQUE_VIOLATION:  # a concurrent enrolment took the name
            raise _name_conflict(params.friendly_name)
        raise database_failure(result, statements)
    totp: JsonObject = {"qr_code": qr_svg(uri), "secret": secret, "uri": uri}
    body: JsonObject = {
        "id": factor_id,
        "type": "totp",
        "friendly_name": params.friendly_name,
        "totp": totp,
    }
    return json_response(200, body)


def _check_room(user: User, session: Session, name: str, settings: AuthSettings) -> None:
    """GoTrue's validateFactors: unique name, factor limits, aal2 to add to a verified user."""
    verified = 0
    for factor in user.factors:
        if (factor.friendly_name or "") == name:
            raise _name_conflict(name)
        verified += factor.verified
    limits = settings.limits
    if len(user.factors) >= limits.mfa_max_enrolled_factors:
        raise TooManyEnrolledMfaFactors
    if verified >= limits.mfa_max_verified_factors:
        raise TooManyEnrolledMfaFactors
    if verified and session.aal is not Aal.AAL2:
        raise InsufficientAal("AAL2 required to enroll a new factor", status=403)


def _name_conflict(name: str) -> MfaFactorNameConflict:
    quoted = json.dumps(name, ensure_ascii=False)  # Go's %q, close enough for printable text
    return MfaFactorNameConflict(
        f"A factor with the friendly name {quoted} for this user already exists"
    )


def _site_host(site_url: str) -> str:
    """The host (with port) of the site URL, GoTrue's default TOTP issuer."""
    return urlsplit(site_url).netloc.rpartition("@")[2]


# --- POST /factors/{id}/challenge ----------------------------------------------------------------


def _check_verify_enabled(factor: Factor, settings: AuthSettings) -> None:
    match factor.factor_type:
        case "totp":
            if not settings.limits.mfa_totp_verify_enabled:
                raise MfaTotpVerifyNotEnabled("MFA verification is disabled for TOTP")
        case "phone":
            raise MfaPhoneVerifyNotEnabled("MFA verification is disabled for Phone")
        case "webauthn":
            raise MfaWebauthnVerifyNotEnabled("MFA verification is disabled for WebAuthn")
        case _:
            raise ValidationFailed("factor_type needs to be totp, phone, or webauthn")


def _challenge(
    request: Request, factor_id: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    user, _ = yield from _principal(request, settings, now=now)
    factor = find_factor(user, factor_id)
    _check_verify_enabled(factor, settings)
    challenge_id, audit_id = uuids((yield from draw_random(2 * UUID_BYTES)), 2)
    yield from run(
        mfa_sql.insert_challenge(
            challenge_id=challenge_id,
            factor_id=factor.id,
            ip=client_ip(request) or _UNKNOWN_IP,
            now=now,
        ),
        mfa_sql.touch_factor_challenged(factor.id, now=now),
        audit(
            user.id,
            "challenge_created",
            "factor",
            entry_id=audit_id,
            request=request,
            now=now,
            traits={"factor_id": factor.id, "factor_status": factor.status},
        ),
    )
    expires_at = int((now + settings.limits.mfa_challenge_expiry).timestamp() // 1)
    body: JsonObject = {"id": challenge_id, "type": factor.factor_type, "expires_at": expires_at}
    return json_response(200, body)


# --- POST /factors/{id}/verify -------------------------------------------------------------------


def _same_ip(stored: object, request: Request) -> bool:
    current = client_ip(request) or _UNKNOWN_IP
    if not isinstance(stored, str):
        return False
    try:
        return ipaddress.ip_address(stored) == ipaddress.ip_address(current)
    except ValueError:
        return False


def _verify(
    request: Request, factor_id: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    user, session = yield from _principal(request, settings, now=now)
    factor = find_factor(user, factor_id)
    params = parse_verify_factor(request.body, settings.limits, factor_type=factor.factor_type)
    _check_verify_enabled(factor, settings)
    (row,) = yield from run(mfa_sql.challenge_state(params.challenge_id, factor.id), read_only=True)
    if not row.rows:
        raise MfaFactorNotFound("MFA factor with the provided challenge ID not found", status=422)
    raw_challenge, raw_secret = row.rows[0]
    challenge = sql.load_json(raw_challenge)
    assert challenge is not None
    if challenge.get("verified_at") is not None or not _same_ip(
        challenge.get("ip_address"), request
    ):
        raise MfaIpAddressMismatch("Challenge and verify IP addresses mismatch.")
    created = challenge.get("created_at")
    assert isinstance(created, str), created
    if now > datetime.fromisoformat(created) + settings.limits.mfa_challenge_expiry:
        yield from run(mfa_sql.delete_challenge(params.challenge_id))
        raise MfaChallengeExpired(
            f"MFA challenge {params.challenge_id} has expired, verify against another challenge"
            " or create a new challenge."
        )
    secret = (raw_secret or b"").decode()
    if not verify_totp(params.code, secret, now=now):
        raise MfaVerificationFailed
    random = yield from draw_random(2 * UUID_BYTES + 8)
    claim_id, audit_id = uuids(random, 2)
    token = new_refresh_token(random[2 * UUID_BYTES :])
    method = amr_method(factor.factor_type)
    statements = [
        audit(
            user.id,
            "verification_attempted",
            "factor",
            entry_id=audit_id,
            request=request,
            now=now,
            traits={
                "factor_id": factor.id,
                "challenge_id": params.challenge_id,
                "factor_type": factor.factor_type,
            },
        ),
        mfa_sql.mark_challenge_verified(params.challenge_id, now=now),
    ]
    if not factor.verified:  # a verified factor keeps its row as it is
        statements.append(mfa_sql.set_factor_verified(factor.id, now=now))
    result = yield from run(
        *statements,
        sql.insert_amr_claim(claim_id=claim_id, session_id=session.id, method=method, now=now),
        mfa_sql.swap_refresh_token(session_id=session.id, user_id=user.id, token=token, now=now),
        mfa_sql.raise_session_aal(session.id, factor.id, now=now),
        mfa_sql.delete_low_aal_sessions(user.id),
        mfa_sql.delete_unverified_factors(user.id, factor.factor_type),
        sql.select_user(user.id),
        mfa_sql.select_session(session.id),
    )
    fresh = sql.decode_user(first(result[-2]))
    upgraded = sql.decode_session(first(result[-1]))
    if fresh is None or upgraded is None:  # deleted while this request ran
        raise SessionNotFound
    return session_body(fresh, upgraded, token, settings, now=now)


# --- DELETE /factors/{id} --------------------------------------------------------------------------


def _unenroll(
    request: Request, factor_id: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    user, session = yield from _principal(request, settings, now=now)
    factor = find_factor(user, factor_id)
    if factor.verified and session.aal is not Aal.AAL2:
        raise InsufficientAal("AAL2 required to unenroll verified factor", status=422)
    (audit_id,) = uuids((yield from draw_random(UUID_BYTES)), 1)
    yield from run(
        mfa_sql.delete_factor(factor.id),
        audit(
            user.id,
            "factor_unenrolled",
            "factor",
            entry_id=audit_id,
            request=request,
            now=now,
            traits={
                "factor_id": factor.id,
                "factor_status": factor.status,
                "session_id": session.id,
            },
        ),
        mfa_sql.downgrade_factor_sessions(user.id, factor.id, amr_method(factor.factor_type)),
    )
    return json_response(200, {"id": factor.id})
