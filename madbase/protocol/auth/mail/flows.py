"""The endpoints that mail a token: POST /otp, /magiclink, /recover, /resend, GET /reauthenticate.

GoTrue's answers (otp.go, magic_link.go, recover.go, resend.go, reauthenticate.go):

    /otp (email)       confirmed user: magic link + OTP (recovery token). New or unconfirmed
                       user: signed up first; with autoconfirm confirmed and sent the magic link,
                       without it sent the confirmation mail. `create_user: false` and no user:
                       422 otp_disabled. Answer `{}`.
    /otp (phone)       the same with a code by SMS (`{"message_id"}` once confirmed); without
                       an SMS sender, GoTrue's 500 "Unable to get SMS provider".
    /recover           recovery link + OTP; `{}` whether or not the address is known.
    /resend            signup: the confirmation again (unless confirmed); email_change: both
                       change mails again (if a change is pending); sms: the code again
                       (`{"message_id"}`); unknown address: `{}`.
    /reauthenticate    a nonce by mail for a secure password change; `{}`.

Every mail of one kind to one user is at most once per `max_frequency_seconds` (429
over_email_send_rate_limit, "For security purposes, you can only request this after N
seconds."; texts: over_sms_send_rate_limit). Phone changes and reauthentication by phone are not
served. With a `code_challenge` (PKCE) a flow state is stored with the token and
the link carries `pkce_`, so that following it ends with `?code=` (see `mail.verify`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from madbase.protocol.auth import sql
from madbase.protocol.auth.body import FieldKind, decode_fields
from madbase.protocol.auth.errors import (
    EmailNotConfirmed,
    EmailProviderDisabled,
    OtpDisabled,
    PhoneNotConfirmed,
    SignupDisabled,
    UnexpectedFailure,
    ValidationFailed,
)
from madbase.protocol.auth.mail import sql as mail_sql
from madbase.protocol.auth.mail.messages import MailKind, render_mail
from madbase.protocol.auth.mail.sql import TokenSlot
from madbase.protocol.auth.mail.steps import (
    find_user,
    issue_token,
    new_email_user,
    send_confirmation,
    send_email_change,
    send_link,
    send_mail,
    send_sms_otp,
)
from madbase.protocol.auth.steps import (
    UUID_BYTES,
    AuthSettings,
    Flow,
    JsonObject,
    audit,
    authenticate,
    draw_random,
    first,
    run,
    uuids,
)
from madbase.protocol.auth.tokens import User
from madbase.protocol.auth.validate import (
    PkceChallenge,
    parse_otp,
    parse_recover,
    parse_resend,
    validate_email,
)
from madbase.protocol.http.messages import Request, Response, json_response
from madbase.protocol.sql import Statement

__all__ = ["route"]

_NO_SMS: Final = "Unable to get SMS provider"


def route(
    request: Request, path: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response] | None:
    """The mailing endpoints, or None for any other request."""
    match (request.method, path):
        case ("POST", "/otp"):
            return _otp(request, settings, now=now)
        case ("POST", "/magiclink"):
            return _magiclink(request, settings, now=now)
        case ("POST", "/recover"):
            return _recover(request, settings, now=now)
        case ("POST", "/resend"):
            return _resend(request, settings, now=now)
        case ("GET", "/reauthenticate"):
            return _reauthenticate(request, settings, now=now)
    return None


def _empty() -> Response:
    return json_response(200, {})


# --- POST /otp, POST /magiclink ----------------------------------------------------------------


def _otp(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    params = parse_otp(request.body, settings.limits)
    user = yield from find_user(params.email, params.phone)
    if user is None and not params.create_user:
        raise OtpDisabled("Signups not allowed for otp")
    if params.email is None:
        assert params.phone is not None
        return (yield from _sms_otp(params.phone, params.data, user, request, settings, now=now))
    return (
        yield from _magic_link(
            params.email, params.data, user, request, settings, now=now, pkce=params.pkce
        )
    )


def _sign_up_first(
    address: str,
    data: JsonObject,
    user: User | None,
    *,
    phone: bool,
    pkce: PkceChallenge | None,
    ids: tuple[str, str, str],
    request: Request,
    settings: AuthSettings,
    now: datetime,
) -> Flow[User | None]:
    """/otp for an unknown or unconfirmed email address (with `phone`: number), as GoTrue does
    first: sign it up (a user without a usable password) or, with autoconfirm, confirm it. The
    user afterwards; without autoconfirm the confirmation (which doubles as the magic link or
    code) is sent instead and the answer is None. `ids` are the new user's, its identity's and
    the audit entry's."""
    user_id, identity_id, audit_id = ids
    if user is None and settings.limits.disable_signup:
        raise SignupDisabled
    statements: tuple[Statement, ...] = ()
    if user is None:
        statements = new_email_user(
            address,
            data,
            ids=[user_id, identity_id],
            confirmed=settings.autoconfirm,
            settings=settings,
            now=now,
            phone=phone,
        )
    elif settings.autoconfirm:
        confirm = mail_sql.confirm_phone if phone else mail_sql.confirm_email
        statements = (confirm(user.id, now=now),)
    target = user.id if user is not None else user_id
    result = yield from run(
        *statements,
        audit(
            target,
            "user_signedup" if settings.autoconfirm else "user_confirmation_requested",
            "team" if settings.autoconfirm else "user",
            entry_id=audit_id,
            request=request,
            now=now,
            traits={"provider": "phone" if phone else "email"},
        ),
        sql.select_user(target),
    )
    fresh = sql.decode_user(first(result[-1]))
    if fresh is None:  # deleted by someone else meanwhile
        raise UnexpectedFailure("Database error saving new user")
    if settings.autoconfirm:
        return fresh
    yield from send_confirmation(
        fresh,
        phone=address if phone else None,
        pkce=pkce,
        request=request,
        settings=settings,
        now=now,
        signed_up=(user_id, audit_id) if user is None else None,
    )
    return None


def _sms_otp(
    phone: str,
    data: JsonObject,
    user: User | None,
    request: Request,
    settings: AuthSettings,
    *,
    now: datetime,
) -> Flow[Response]:
    """POST /otp with a phone number (otp.go SmsOtp): as the magic link, with a texted code."""
    if not settings.mail.sms_enabled:
        raise UnexpectedFailure(_NO_SMS)
    random = yield from draw_random(3 * UUID_BYTES)
    user_id, identity_id, audit_id = uuids(random, 3)
    if user is None or user.phone_confirmed_at is None:
        signed_up = yield from _sign_up_first(
            phone,
            data,
            user,
            phone=True,
            pkce=None,
            ids=(user_id, identity_id, audit_id),
            request=request,
            settings=settings,
            now=now,
        )
        if signed_up is None:  # not autoconfirmed: the confirmation went out instead
            return _empty()
        user = signed_up
        audit_id = uuids((yield from draw_random(UUID_BYTES)), 1)[0]
    entry = audit(
        user.id, "user_recovery_requested", "user", entry_id=audit_id, request=request, now=now
    )
    message_id, _ = yield from send_sms_otp(
        user, phone, request=request, settings=settings, now=now, before=(entry,)
    )
    return json_response(200, {"message_id": message_id})


def _magiclink(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    fields = decode_fields(
        request.body,
        settings.limits,
        "MagicLinkParams",
        {"email": FieldKind.STRING, "data": FieldKind.MAP},
    )
    if not settings.limits.email_enabled:
        raise EmailProviderDisabled("Email logins are disabled")
    if not fields.text("email"):
        raise ValidationFailed("Password recovery requires an email", status=422)
    email = validate_email(fields.text("email"))
    user = yield from find_user(email)
    data = fields.mapping("data") or {}
    return (yield from _magic_link(email, data, user, request, settings, now=now))


def _magic_link(
    email: str,
    data: JsonObject,
    user: User | None,
    request: Request,
    settings: AuthSettings,
    *,
    now: datetime,
    pkce: PkceChallenge | None = None,
) -> Flow[Response]:
    random = yield from draw_random(3 * UUID_BYTES)
    user_id, identity_id, audit_id = uuids(random, 3)
    if user is None or user.email_confirmed_at is None:
        signed_up = yield from _sign_up_first(
            email,
            data,
            user,
            phone=False,
            pkce=pkce,
            ids=(user_id, identity_id, audit_id),
            request=request,
            settings=settings,
            now=now,
        )
        if signed_up is None:  # not autoconfirmed: the confirmation went out instead
            return _empty()
        user = signed_up
        audit_id = uuids((yield from draw_random(UUID_BYTES)), 1)[0]
    entry = audit(
        user.id, "user_recovery_requested", "user", entry_id=audit_id, request=request, now=now
    )
    yield from send_link(
        user,
        TokenSlot.RECOVERY,
        MailKind.MAGIC_LINK,
        "magiclink",
        pkce=pkce,
        request=request,
        settings=settings,
        now=now,
        before=(entry,),
    )
    return _empty()


# --- POST /recover, POST /resend -----------------------------------------------------------------


def _recover(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    if not settings.limits.email_enabled:
        raise EmailProviderDisabled("Email logins are disabled")
    params = parse_recover(request.body, settings.limits)
    user = yield from find_user(params.email)
    if user is None:
        return _empty()  # the same answer as for a known address
    (audit_id,) = uuids((yield from draw_random(UUID_BYTES)), 1)
    entry = audit(
        user.id, "user_recovery_requested", "user", entry_id=audit_id, request=request, now=now
    )
    yield from send_link(
        user,
        TokenSlot.RECOVERY,
        MailKind.RECOVERY,
        "recovery",
        pkce=params.pkce,
        request=request,
        settings=settings,
        now=now,
        before=(entry,),
    )
    return _empty()


def _resend(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    params = parse_resend(request.body, settings.limits)
    if params.type == "phone_change":
        (found,) = yield from run(sql.user_by_phone_change(params.phone or ""), read_only=True)
        user = sql.decode_user(first(found))
    else:
        user = yield from find_user(params.email, params.phone)
    if user is None:
        return _empty()
    match params.type:
        case "signup":
            if user.email_confirmed_at is not None:
                return _empty()
            (audit_id,) = uuids((yield from draw_random(UUID_BYTES)), 1)
            entry = audit(
                user.id,
                "user_confirmation_requested",
                "user",
                entry_id=audit_id,
                request=request,
                now=now,
            )
            yield from send_link(
                user,
                TokenSlot.CONFIRMATION,
                MailKind.CONFIRMATION,
                "signup",
                pkce=params.pkce,
                request=request,
                settings=settings,
                now=now,
                before=(entry,),
            )
        case "email_change":
            if not user.email_change:
                return _empty()
            yield from send_email_change(user, user.email_change, request, settings, now=now)
        case "sms":
            if user.phone_confirmed_at is not None:
                return _empty()
            if not settings.mail.sms_enabled:
                raise UnexpectedFailure(_NO_SMS)
            assert params.phone is not None
            message_id, _ = yield from send_sms_otp(
                user, params.phone, request=request, settings=settings, now=now
            )
            return json_response(200, {"message_id": message_id})
        case _:  # phone_change: found by the number it changes to
            if not settings.mail.sms_enabled:
                raise UnexpectedFailure(_NO_SMS)
            assert params.phone is not None
            message_id, _ = yield from send_sms_otp(
                user,
                params.phone,
                request=request,
                settings=settings,
                now=now,
                slot=TokenSlot.PHONE_CHANGE,
            )
            return json_response(200, {"message_id": message_id})
    return _empty()


# --- GET /reauthenticate -------------------------------------------------------------------------


def _reauthenticate(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    user, _ = yield from authenticate(request, settings, now=now)
    if not user.email and not user.phone:
        raise ValidationFailed(
            "Reauthentication requires the user to have an email or a phone number"
        )
    if not user.email:
        if user.phone_confirmed_at is None:
            raise PhoneNotConfirmed("Please verify your phone first.", status=422)
        raise UnexpectedFailure(_NO_SMS)
    if user.email_confirmed_at is None:
        raise EmailNotConfirmed("Please verify your email first.", status=422)
    (audit_id,) = uuids((yield from draw_random(UUID_BYTES)), 1)
    entry = audit(
        user.id,
        "user_reauthenticate_requested",
        "user",
        entry_id=audit_id,
        request=request,
        now=now,
    )
    issued = yield from issue_token(
        user,
        TokenSlot.REAUTHENTICATION,
        request=request,
        settings=settings,
        now=now,
        before=(entry,),
    )
    # The nonce mail has no link: the code is typed into the app.
    assert issued.user.email
    yield from send_mail(
        render_mail(MailKind.REAUTHENTICATION, to=issued.user.email, otp=issued.otp)
    )
    return _empty()
