"""Steps shared by the flows that mail: issue a one-time token and mail it, check a token.

Each mailing step reads nothing itself: the caller passes the user as it read it. Issuing a token
draws the OTP and a row id, stores the token hash (hex SHA-224 of address + OTP, as GoTrue) on
the user and in `auth.one_time_tokens` in one statement that also enforces the per-address send
interval (`*_sent_at`), then yields `SendMail`. The database is written before the mail is sent:
a delivery failure answers 500 and leaves a token nobody received.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Final, TypeVar

import attrs

from madbase.protocol.auth import sql
from madbase.protocol.auth.admin import sql as admin_sql
from madbase.protocol.auth.errors import (
    AuthError,
    EmailExists,
    OverEmailSendRateLimit,
    OverSmsSendRateLimit,
    PhoneExists,
    ReauthenticationNeeded,
    ReauthenticationNotValid,
    SmsSendFailed,
    UnexpectedFailure,
)
from madbase.protocol.auth.mail import sql as mail_sql
from madbase.protocol.auth.mail.messages import (
    MAIL_QUOTA_EXCEEDED,
    OTP_RANDOM_BYTES,
    MailKind,
    SendMail,
    SendSms,
    SmsNotSent,
    action_link,
    otp_from_random,
    referrer,
    render_mail,
    render_sms,
)
from madbase.protocol.auth.mail.sql import TokenSlot
from madbase.protocol.auth.session.pkce import insert_flow_state, new_flow_state
from madbase.protocol.auth.steps import (
    UUID_BYTES,
    AuthSettings,
    Flow,
    JsonObject,
    audit,
    draw_random,
    first,
    run,
    uuids,
)
from madbase.protocol.auth.tokens import User, render_user
from madbase.protocol.auth.validate import PkceChallenge, otp_token_hash
from madbase.protocol.http.messages import Request, Response, json_response
from madbase.protocol.sql import DbResult, Statement

__all__ = [
    "PKCE_PREFIX",
    "IssuedToken",
    "change_email",
    "change_phone",
    "check_email_free",
    "check_nonce",
    "find_token_user",
    "find_user",
    "issue_token",
    "mail_token",
    "new_email_user",
    "pkce_flow_state",
    "pkce_method",
    "redirect_url",
    "repeated_signup",
    "send_confirmation",
    "send_email_change",
    "send_link",
    "send_mail",
    "send_sms_otp",
    "sent_at",
    "withdrawn_if_failed",
]

# What GoTrue names each mail in its "Error sending ... email" messages.
_MAIL_NAMES: Final = {
    MailKind.CONFIRMATION: "confirmation",
    MailKind.INVITE: "invite",
    MailKind.MAGIC_LINK: "magic link",
    MailKind.RECOVERY: "recovery",
    MailKind.EMAIL_CHANGE: "email change",
    MailKind.REAUTHENTICATION: "reauthentication",
}
# A secure password change needs a nonce once the session is older than this (user.go).
_REAUTH_WINDOW: Final = timedelta(hours=24)
_T = TypeVar("_T")
_INVALID_NONCE: Final = "Nonce has expired or is invalid"


@attrs.frozen(kw_only=True)
class IssuedToken:
    """A token that was stored: the OTP (mailed), its hash and the user after the write."""

    otp: str = attrs.field(repr=False)
    token_hash: str = attrs.field(repr=False)
    user: User


def redirect_url(request: Request, settings: AuthSettings) -> str:
    """The request's allowed `redirect_to`, else its `Referer`, else the site URL."""
    return referrer(request, settings.site_url, settings.mail.redirect_allow_list)


def send_mail(message: SendMail) -> Flow[None]:
    """Deliver `message`; a failed delivery is GoTrue's 500 "Error sending ... email"."""
    result = yield message
    if result is not None:
        assert isinstance(result, str), result
        if result == MAIL_QUOTA_EXCEEDED:
            raise OverEmailSendRateLimit
        raise UnexpectedFailure(f"Error sending {_MAIL_NAMES[message.kind]} email")


def send_sms_otp(
    user: User,
    phone: str,
    *,
    request: Request,
    settings: AuthSettings,
    now: datetime,
    before: tuple[Statement, ...] = (),
    slot: TokenSlot = TokenSlot.CONFIRMATION,
) -> Flow[tuple[str, User]]:
    """Text a confirmation code to `phone` (phone.go sendPhoneConfirmation): its message id and
    the user after the write.

    The code's hash goes into `slot`'s column (`confirmation_token`; `phone_change_token` for a
    new number) and `auth.one_time_tokens`, as for email.
    """
    issued = yield from issue_token(
        user,
        slot,
        request=request,
        settings=settings,
        now=now,
        before=before,
        phone=phone,
    )
    kind = "phone_change" if slot is TokenSlot.PHONE_CHANGE else "confirmation"
    message_id = yield from withdrawn_if_failed(_text(phone, issued.otp, kind), user, slot, issued)
    return message_id, issued.user


def _text(phone: str, otp: str, kind: str) -> Flow[str]:
    """Text `otp` to `phone`: the provider's message id."""
    result = yield SendSms(to=phone, text=render_sms(otp), kind=kind)
    if isinstance(result, SmsNotSent):
        raise SmsSendFailed(
            f"Error sending {kind.replace('_', ' ')} OTP to provider: {result.reason}", status=422
        )
    assert isinstance(result, str), result
    return result


def change_phone(
    user: User, phone: str, request: Request, settings: AuthSettings, *, now: datetime
) -> Flow[User]:
    """PUT /user with a new number (user.go): with autoconfirm it is the number at once, else a
    code is texted to it (verified with type `phone_change`). The user afterwards.

    Raises:
        AuthError: phone_exists (422) when another user has the number; GoTrue's 500 without an
            SMS sender; over_sms_send_rate_limit within the send interval.
    """
    (holder,) = yield from run(sql.user_by_phone(phone), read_only=True)
    other = sql.decode_user(first(holder))
    if other is not None and other.id != user.id:
        raise PhoneExists
    if settings.autoconfirm:
        result = yield from run(
            mail_sql.set_phone(user.id, phone, now=now), sql.select_user(user.id)
        )
        fresh = sql.decode_user(first(result[-1]))
        if fresh is None:
            raise UnexpectedFailure("user disappeared while changing its phone")
        return fresh
    if not settings.mail.sms_enabled:
        raise UnexpectedFailure("Unable to get SMS provider")
    _, fresh = yield from send_sms_otp(
        user,
        phone,
        request=request,
        settings=settings,
        now=now,
        before=(mail_sql.set_phone_change(user.id, phone),),
        slot=TokenSlot.PHONE_CHANGE,
    )
    return fresh


def sent_at(user: User, slot: TokenSlot) -> datetime | None:
    """When the user's last token of `slot` was sent."""
    return {
        TokenSlot.CONFIRMATION: user.confirmation_sent_at,
        TokenSlot.RECOVERY: user.recovery_sent_at,
        TokenSlot.REAUTHENTICATION: user.reauthentication_sent_at,
        TokenSlot.EMAIL_CHANGE_NEW: user.email_change_sent_at,
        TokenSlot.EMAIL_CHANGE_CURRENT: user.email_change_sent_at,
        TokenSlot.PHONE_CHANGE: user.phone_change_sent_at,
    }[slot]


def _frequency(settings: AuthSettings, *, sms: bool) -> int:
    mail = settings.mail
    return mail.sms_max_frequency_seconds if sms else mail.max_frequency_seconds


def _too_soon(seconds: int, *, sms: bool) -> AuthError:
    message = f"For security purposes, you can only request this after {seconds} seconds."
    return OverSmsSendRateLimit(message) if sms else OverEmailSendRateLimit(message)


def _check_interval(
    last: datetime | None, settings: AuthSettings, now: datetime, *, sms: bool = False
) -> datetime:
    """The latest allowed previous send time; raises while the interval has not passed."""
    interval = timedelta(seconds=_frequency(settings, sms=sms))
    if last is not None and last + interval > now:
        raise _too_soon(math.floor((last + interval - now).total_seconds()), sms=sms)
    return now - interval


def _lost_race(settings: AuthSettings, *, sms: bool = False) -> AuthError:
    """Another request stored a token of the same kind between our read and our write."""
    return _too_soon(_frequency(settings, sms=sms), sms=sms)


def issue_token(
    user: User,
    slot: TokenSlot,
    *,
    request: Request,
    settings: AuthSettings,
    now: datetime,
    before: tuple[Statement, ...] = (),
    rate_limited: bool = True,
    invited: bool = False,
    phone: str | None = None,
) -> Flow[IssuedToken]:
    """Store a new token of `slot` for the user's email address (or `phone`); `before` runs
    first in the same transaction. Raises `over_email_send_rate_limit` (SMS:
    `over_sms_send_rate_limit`) within the send interval."""
    address = phone or user.email
    assert address
    sent_before = (
        _check_interval(sent_at(user, slot), settings, now, sms=phone is not None)
        if rate_limited
        else None
    )
    random = yield from draw_random(OTP_RANDOM_BYTES + UUID_BYTES)
    otp = otp_from_random(random, 6 if phone else settings.mail.otp_length)
    (ott_id,) = uuids(random[OTP_RANDOM_BYTES:], 1)
    token_hash = otp_token_hash(address, otp)
    result = yield from run(
        *before,
        mail_sql.store_token(
            user_id=user.id,
            slot=slot,
            token_hash=token_hash,
            relates_to=address,
            ott_id=ott_id,
            now=now,
            sent_before=sent_before,
            invited=invited,
        ),
        sql.select_user(user.id),
    )
    if not result[-2].rows:  # another request sent one in between
        raise _lost_race(settings, sms=phone is not None)
    fresh = sql.decode_user(first(result[-1]))
    if fresh is None:
        raise UnexpectedFailure("user disappeared while issuing a token")
    return IssuedToken(otp=otp, token_hash=token_hash, user=fresh)


# A mailed link whose token starts with this ends in `?code=` (PKCE), not in a session.
PKCE_PREFIX: Final = "pkce_"
# GoTrue's models.AuthenticationMethod of each verification type (the flow state's method, and
# so the AMR of the session the code is traded for).
_PKCE_METHODS: Final = {
    "signup": "email/signup",
    "magiclink": "magiclink",
    "recovery": "recovery",
    "invite": "invite",
    "email_change": "email_change",
}


def pkce_method(verification_type: str) -> str:
    """The flow state's authentication method for a verification type (`signup`, ...)."""
    return _PKCE_METHODS.get(verification_type, verification_type)


def pkce_flow_state(
    user_id: str, pkce: PkceChallenge | None, verification_type: str, *, now: datetime
) -> Flow[tuple[Statement, ...]]:
    """The insert of a PKCE flow state for a mailed link (nothing without a challenge)."""
    if pkce is None:
        return ()
    random = yield from draw_random(2 * UUID_BYTES)
    state = new_flow_state(
        random,
        provider_type="email",
        authentication_method=pkce_method(verification_type),
        pkce=pkce,
        now=now,
        user_id=user_id,
    )
    return (insert_flow_state(state),)


def mail_token(
    issued: IssuedToken,
    kind: MailKind,
    verification_type: str,
    *,
    request: Request,
    settings: AuthSettings,
    pkce: bool = False,
) -> Flow[None]:
    """Mail an issued token: its action link (GET /verify) and its OTP; with `pkce` the link's
    token carries `PKCE_PREFIX`, so that following it ends with an auth code."""
    assert issued.user.email
    link = action_link(
        settings.mail.external_url,
        PKCE_PREFIX + issued.token_hash if pkce else issued.token_hash,
        verification_type,
        redirect_url(request, settings),
    )
    yield from send_mail(render_mail(kind, to=issued.user.email, otp=issued.otp, link=link))


def send_link(
    user: User,
    slot: TokenSlot,
    kind: MailKind,
    verification_type: str,
    *,
    pkce: PkceChallenge | None,
    request: Request,
    settings: AuthSettings,
    now: datetime,
    before: tuple[Statement, ...] = (),
) -> Flow[IssuedToken]:
    """Store a token of `slot` (with a PKCE flow state when the client sent a challenge, in the
    same transaction after `before`) and mail its link and OTP."""
    flow = yield from pkce_flow_state(user.id, pkce, verification_type, now=now)
    issued = yield from issue_token(
        user, slot, request=request, settings=settings, now=now, before=(*before, *flow)
    )
    yield from withdrawn_if_failed(
        mail_token(
            issued,
            kind,
            verification_type,
            request=request,
            settings=settings,
            pkce=pkce is not None,
        ),
        user,
        slot,
        issued,
    )
    return issued


def withdrawn_if_failed(
    delivery: Flow[_T], user: User, slot: TokenSlot, issued: IssuedToken
) -> Flow[_T]:
    """Run `delivery` of `issued` (stored for `user`, as it was before, in `slot`); if it fails,
    withdraw the token (`mail_sql.withdraw_token`) before the error goes on."""
    try:
        return (yield from delivery)
    except AuthError:
        yield from run(
            mail_sql.withdraw_token(
                user_id=user.id,
                slot=slot,
                token_hash=issued.token_hash,
                sent_before=sent_at(user, slot),
            )
        )
        raise


def send_confirmation(
    user: User,
    *,
    phone: str | None,
    pkce: PkceChallenge | None,
    request: Request,
    settings: AuthSettings,
    now: datetime,
    signed_up: tuple[str, str] | None = None,
) -> Flow[User]:
    """Mail the confirmation of the user's address (with `phone`: text a code to that number);
    the user after the token's write.

    `signed_up` names the user and audit entry this request wrote when it signed `user` up:
    GoTrue writes the user and sends in one transaction, so if delivery fails (or the mail quota
    is spent) both are deleted again, and the client can simply sign up once more.
    """
    try:
        if phone is not None:
            _, texted = yield from send_sms_otp(
                user, phone, request=request, settings=settings, now=now
            )
            return texted
        issued = yield from send_link(
            user,
            TokenSlot.CONFIRMATION,
            MailKind.CONFIRMATION,
            "signup",
            pkce=pkce,
            request=request,
            settings=settings,
            now=now,
        )
        return issued.user
    except AuthError:
        if signed_up is not None:
            user_id, audit_id = signed_up
            yield from run(admin_sql.delete_user(user_id), sql.delete_audit_entry(audit_id))
        raise


def find_user(email: str | None, phone: str | None = None) -> Flow[User | None]:
    """The user with this email address (else this phone number), if any."""
    lookup = sql.user_by_email(email) if email else sql.user_by_phone(phone or "")
    (found,) = yield from run(lookup, read_only=True)
    return sql.decode_user(first(found))


def new_email_user(
    email: str,
    data: JsonObject,
    *,
    ids: list[str],
    confirmed: bool,
    settings: AuthSettings,
    now: datetime,
    phone: bool = False,
) -> tuple[Statement, ...]:
    """Insert a password-less user and its identity (/otp, /invite, generate_link): `email` is
    the address, or with `phone` the number.

    `ids` are the user id and the identity id.
    """
    user_id, identity_id = ids
    provider = "phone" if phone else "email"
    identity_data: JsonObject = {
        "sub": user_id,
        provider: email,
        "email_verified": confirmed and not phone,
        "phone_verified": confirmed and phone,
    }
    return (
        sql.insert_user(
            user_id=user_id,
            aud=settings.limits.audience,
            email=None if phone else email,
            phone=email if phone else None,
            encrypted_password=None,
            app_metadata={"provider": provider, "providers": [provider]},
            user_metadata={**data, **identity_data},
            email_confirmed_at=now if confirmed and not phone else None,
            phone_confirmed_at=now if confirmed and phone else None,
            last_sign_in_at=None,
            is_anonymous=False,
            now=now,
        ),
        sql.insert_identity(
            identity_id=identity_id,
            user_id=user_id,
            provider=provider,
            provider_id=user_id,
            identity_data=identity_data,
            last_sign_in_at=None,
            now=now,
        ),
    )


def repeated_signup(
    email: str, data: JsonObject, request: Request, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    """POST /signup for a taken address without autoconfirm (signup.go).

    An unconfirmed user gets the confirmation mail again (within the send interval: 429); a
    confirmed one is answered with a made-up user, so the reply does not tell who signed up.
    """
    user = yield from find_user(email)
    random = yield from draw_random(2 * UUID_BYTES)
    fake_id, audit_id = uuids(random, 2)
    if user is None or user.email_confirmed_at is not None:
        fake = User(
            id=fake_id,
            aud=settings.limits.audience,
            role="",
            email=email,
            confirmation_sent_at=now,
            app_metadata={"provider": "email", "providers": ["email"]},
            user_metadata=data,
            created_at=now,
            updated_at=now,
        )
        return json_response(200, render_user(fake))
    entry = audit(
        user.id,
        "user_confirmation_requested",
        "user",
        entry_id=audit_id,
        request=request,
        now=now,
        traits={"provider": "email"},
    )
    issued = yield from issue_token(
        user, TokenSlot.CONFIRMATION, request=request, settings=settings, now=now, before=(entry,)
    )
    yield from withdrawn_if_failed(
        mail_token(issued, MailKind.CONFIRMATION, "signup", request=request, settings=settings),
        user,
        TokenSlot.CONFIRMATION,
        issued,
    )
    return json_response(200, render_user(issued.user))


def find_token_user(
    token_hash: str, slots: tuple[TokenSlot, ...], *, address: str | None = None
) -> Flow[tuple[User, TokenSlot] | None]:
    """The user holding a one-time token of one of `slots` with this hash, and its slot.

    With `address` (an OTP typed in), the token must also have been sent to that email address
    or phone number.
    """
    types = tuple(s.token_type for s in slots)
    (found,) = yield from run(
        mail_sql.user_by_token_hash(token_hash, types, address=address), read_only=True
    )
    if not found.rows:
        return None
    raw_user, raw_type = found.rows[0]
    user = sql.decode_user(raw_user)
    assert user is not None
    assert raw_type is not None
    slot = next(s for s in slots if s.token_type == raw_type.decode())
    return user, slot


def check_nonce(
    user: User, session_id: str | None, nonce: str, settings: AuthSettings, *, now: datetime
) -> Flow[tuple[Statement, ...]]:
    """The secure password change check of PUT /user (user.go, reauthenticate.go).

    Only with `password_require_reauthentication` and a session older than 24 hours (or none):
    the nonce mailed by GET /reauthenticate must match. Returns the statements that consume it.
    """
    if not settings.mail.password_require_reauthentication:
        return ()
    (row,) = yield from run(
        mail_sql.session_started_since(session_id, now - _REAUTH_WINDOW), read_only=True
    )
    if first(row) == b"t":
        return ()
    if not nonce:
        raise ReauthenticationNeeded
    if not user.email:
        raise ReauthenticationNotValid("Reauthentication requires an email or a phone number")
    found = yield from find_token_user(
        otp_token_hash(user.email, nonce), (TokenSlot.REAUTHENTICATION,), address=user.email
    )
    if (
        found is None
        or found[0].id != user.id
        or _expired(user.reauthentication_sent_at, settings, now)
    ):
        raise ReauthenticationNotValid(_INVALID_NONCE)
    return (mail_sql.consume_token(user.id, TokenSlot.REAUTHENTICATION, now=now),)


def _expired(sent: datetime | None, settings: AuthSettings, now: datetime) -> bool:
    return sent is None or now > sent + timedelta(seconds=settings.mail.otp_expiry_seconds)


def check_email_free(user: User, new_email: str) -> Flow[None]:
    """PUT /user: 422 email_exists when another user has the address (user.go)."""
    (taken,) = yield from run(mail_sql.email_taken(new_email, user.id), read_only=True)
    if first(taken) == b"t":
        raise EmailExists


def change_email(
    user: User,
    new_email: str,
    request: Request,
    settings: AuthSettings,
    *,
    now: datetime,
    pkce: PkceChallenge | None = None,
) -> Flow[User]:
    """PUT /user with a new (free) address: the user afterwards (user.go).

    An anonymous user with autoconfirm gets the address at once; anyone else is mailed (see
    `send_email_change`).
    """
    if user.is_anonymous and settings.autoconfirm:
        (identity_id,) = uuids((yield from draw_random(UUID_BYTES)), 1)
        result = yield from run(
            mail_sql.set_email_change(user.id, new_email),
            mail_sql.confirm_email_change(user.id, identity_id=identity_id, now=now),
            mail_sql.refresh_providers(user.id),
            sql.select_user(user.id),
        )
    else:
        result = yield from send_email_change(
            user, new_email, request, settings, now=now, pkce=pkce
        )
    fresh = sql.decode_user(first(result[-1]))
    if fresh is None:
        raise UnexpectedFailure("user disappeared while changing its email")
    return fresh


def send_email_change(
    user: User,
    new_email: str,
    request: Request,
    settings: AuthSettings,
    *,
    now: datetime,
    pkce: PkceChallenge | None = None,
) -> Flow[list[DbResult]]:
    """Mail a link to the new address and, with secure email change, one to the current address
    (mail.go sendEmailChange); within the send interval: 429. Returns the results of the write,
    the user (`jsonb`) last. With `pkce` (the client sent a code challenge) the links end in
    `?code=` rather than in a session, as for the other mailed links."""
    sent_before = _check_interval(user.email_change_sent_at, settings, now)
    flow = yield from pkce_flow_state(user.id, pkce, "email_change", now=now)
    random = yield from draw_random(2 * OTP_RANDOM_BYTES + 2 * UUID_BYTES)
    new_ott, current_ott = uuids(random[2 * OTP_RANDOM_BYTES :], 2)
    length = settings.mail.otp_length
    otp_new = otp_from_random(random, length)
    otp_current = otp_from_random(random[OTP_RANDOM_BYTES:], length)
    secure = settings.mail.secure_email_change and bool(user.email)
    new_hash = otp_token_hash(new_email, otp_new)
    current_hash = otp_token_hash(user.email or "", otp_current) if secure else ""
    result = yield from run(
        *flow,
        mail_sql.store_email_change(
            user_id=user.id,
            new_email=new_email,
            new_hash=new_hash,
            current_hash=current_hash,
            current_email=user.email or "",
            ott_ids=(new_ott, current_ott),
            now=now,
            sent_before=sent_before,
        ),
        sql.select_user(user.id),
    )
    if not result[len(flow)].rows:
        raise _lost_race(settings)
    redirect = redirect_url(request, settings)
    prefix = PKCE_PREFIX if pkce is not None else ""
    mails = [(new_email, otp_new, new_hash)]
    if secure:
        mails.append((user.email or "", otp_current, current_hash))
    try:
        for address, otp, token_hash in mails:
            link = action_link(
                settings.mail.external_url, prefix + token_hash, "email_change", redirect
            )
            yield from send_mail(
                render_mail(
                    MailKind.EMAIL_CHANGE, to=address, otp=otp, link=link, new_email=new_email
                )
            )
    except AuthError:
        # Both links go, or neither stays valid (GoTrue's transaction).
        yield from run(
            mail_sql.withdraw_email_change(
                user_id=user.id,
                new_hash=new_hash,
                current_hash=current_hash,
                sent_before=user.email_change_sent_at,
            )
        )
        raise
    return result
