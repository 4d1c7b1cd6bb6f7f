"""The two admin endpoints that issue mail tokens: POST /invite and POST /admin/generate_link.

Both need a bearer JWT whose `role` is an admin role (`service_role`, `supabase_admin`): no
bearer is 401 no_authorization, a bad one 403 bad_jwt, another role 403 not_admin "User not
allowed" (auth.go requireAdmin).

/invite (invite.go) creates an unconfirmed, password-less user (or reuses an unconfirmed one; a
confirmed one is 422 email_exists), mails the invitation and answers the user.

/admin/generate_link (mail.go adminGenerateLink) mails nothing: it stores the token as the mail
would and answers the user's fields plus `action_link`, `email_otp`, `hashed_token`,
`verification_type` and `redirect_to`. A magic link for an unknown address signs it up
(`verification_type` becomes `signup`); recovery and email change links need the user (404
user_not_found). As in GoTrue, `hashed_token` is always the hash of `email` and the OTP, even
for `email_change_new` (whose link carries the new address's hash).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from madbase.protocol.auth import sql
from madbase.protocol.auth.body import FieldKind, decode_fields
from madbase.protocol.auth.errors import (
    EmailExists,
    UnexpectedFailure,
    UserNotFound,
    ValidationFailed,
)
from madbase.protocol.auth.mail import sql as mail_sql
from madbase.protocol.auth.mail.messages import (
    OTP_RANDOM_BYTES,
    MailKind,
    action_link,
    otp_from_random,
    redirect_allowed,
)
from madbase.protocol.auth.mail.sql import TokenSlot
from madbase.protocol.auth.mail.steps import (
    find_user,
    issue_token,
    mail_token,
    new_email_user,
    redirect_url,
)
from madbase.protocol.auth.passwords import check_password_strength
from madbase.protocol.auth.steps import (
    UUID_BYTES,
    AuthSettings,
    Flow,
    JsonObject,
    audit,
    draw_random,
    first,
    hash_password,
    require_admin,
    run,
    uuids,
)
from madbase.protocol.auth.tokens import User, render_user
from madbase.protocol.auth.validate import otp_token_hash, validate_email
from madbase.protocol.http.messages import Request, Response, json_response
from madbase.protocol.sql import Statement

__all__ = ["route"]

_LINK_TYPES: Final = frozenset(
    {"signup", "invite", "magiclink", "recovery", "email_change_current", "email_change_new"}
)


def route(
    request: Request, path: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response] | None:
    """/invite and /admin/generate_link, or None for any other request."""
    match (request.method, path):
        case ("POST", "/invite"):
            return _invite(request, settings, now=now)
        case ("POST", "/admin/generate_link"):
            return _generate_link(request, settings, now=now)
    return None


def _email(raw: str) -> str:
    if not raw:
        raise ValidationFailed("An email address is required")
    return validate_email(raw)


def _create(
    email: str,
    data: JsonObject,
    settings: AuthSettings,
    *,
    now: datetime,
    password_hash: str | None = None,
) -> Flow[User]:
    user_id, identity_id = uuids((yield from draw_random(2 * UUID_BYTES)), 2)
    statements = new_email_user(
        email, data, ids=[user_id, identity_id], confirmed=False, settings=settings, now=now
    )
    if password_hash is not None:
        statements += (sql.set_password(user_id, password_hash, now=None),)
    result = yield from run(*statements, sql.select_user(user_id))
    user = sql.decode_user(first(result[-1]))
    if user is None:
        raise UnexpectedFailure("Database error saving new user")
    return user


# --- POST /invite ------------------------------------------------------------------------------


def _invite(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    yield from require_admin(request, settings, now=now)
    fields = decode_fields(
        request.body,
        settings.limits,
        "InviteParams",
        {"email": FieldKind.STRING, "data": FieldKind.MAP},
    )
    email = _email(fields.text("email"))
    user = yield from find_user(email)
    if user is not None and user.email_confirmed_at is not None:
        raise EmailExists
    if user is None:
        user = yield from _create(email, fields.mapping("data") or {}, settings, now=now)
    (audit_id,) = uuids((yield from draw_random(UUID_BYTES)), 1)
    entry = audit(
        user.id,
        "user_invited",
        "team",
        entry_id=audit_id,
        request=request,
        now=now,
        traits={"user_id": user.id, "user_email": email},
    )
    issued = yield from issue_token(
        user,
        TokenSlot.CONFIRMATION,
        request=request,
        settings=settings,
        now=now,
        before=(entry,),
        rate_limited=False,
        invited=True,
    )
    yield from mail_token(issued, MailKind.INVITE, "invite", request=request, settings=settings)
    return json_response(200, render_user(issued.user))


# --- POST /admin/generate_link -------------------------------------------------------------------

_GENERATE_LINK: Final = {
    "type": FieldKind.STRING,
    "email": FieldKind.STRING,
    "new_email": FieldKind.STRING,
    "password": FieldKind.STRING,
    "data": FieldKind.MAP,
    "redirect_to": FieldKind.STRING,
}


def _generate_link(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    yield from require_admin(request, settings, now=now)
    fields = decode_fields(request.body, settings.limits, "GenerateLinkParams", _GENERATE_LINK)
    kind, data = fields.text("type"), fields.mapping("data") or {}
    email = _email(fields.text("email"))
    redirect = redirect_url(request, settings)
    asked = fields.text("redirect_to")
    if redirect_allowed(asked, settings.site_url, settings.mail.redirect_allow_list):
        redirect = asked
    user = yield from find_user(email)
    password = fields.text("password")
    if user is None:
        if kind == "magiclink":
            kind, password = "signup", ""
        elif kind in ("recovery", "email_change_current", "email_change_new"):
            raise UserNotFound("User with this email not found")
        elif kind == "signup":
            if not password:
                raise ValidationFailed("Signup requires a valid password")
            check_password_strength(password, settings.limits)
    if kind not in _LINK_TYPES:
        raise ValidationFailed(f"Invalid email action link type requested: {kind}")
    random = yield from draw_random(OTP_RANDOM_BYTES + 3 * UUID_BYTES)
    otp = otp_from_random(random, settings.mail.otp_length)
    ott_id, other_ott, audit_id = uuids(random[OTP_RANDOM_BYTES:], 3)
    hashed = otp_token_hash(email, otp)
    link_hash = hashed
    statements: list[Statement] = []
    if kind in ("signup", "invite"):
        if user is not None and user.email_confirmed_at is not None:
            raise EmailExists
        if user is None:
            encrypted = None
            if kind == "signup" and password:
                encrypted = yield from hash_password(password)
            user = yield from _create(email, data, settings, now=now, password_hash=encrypted)
        elif kind == "signup" and data:
            statements.append(
                sql.set_user_metadata(user.id, {**user.user_metadata, **data}, now=now)
            )
        slot = TokenSlot.CONFIRMATION
        if kind == "invite":
            statements.append(
                audit(
                    user.id,
                    "user_invited",
                    "team",
                    entry_id=audit_id,
                    request=request,
                    now=now,
                    traits={"user_id": user.id, "user_email": email},
                )
            )
        statements.append(_store(user, slot, hashed, ott_id, now=now, invited=kind == "invite"))
    elif kind in ("magiclink", "recovery"):
        assert user is not None
        statements += [
            audit(
                user.id,
                "user_recovery_requested",
                "user",
                entry_id=audit_id,
                request=request,
                now=now,
            ),
            _store(user, TokenSlot.RECOVERY, hashed, ott_id, now=now),
        ]
    else:
        assert user is not None
        if kind == "email_change_current" and not settings.mail.secure_email_change:
            raise ValidationFailed("Enable secure email change to generate link for current email")
        new_email = _email(fields.text("new_email"))
        (taken,) = yield from run(mail_sql.email_taken(new_email, user.id), read_only=True)
        if first(taken) == b"t":
            raise EmailExists
        current = kind == "email_change_current"
        link_hash = hashed if current else otp_token_hash(new_email, otp)
        statements.append(
            mail_sql.store_email_change(
                user_id=user.id,
                new_email=new_email,
                new_hash="" if current else link_hash,
                current_hash=link_hash if current else "",
                current_email=email,
                ott_ids=(ott_id, other_ott),
                now=now,
                sent_before=None,
            )
        )
    result = yield from run(*statements, sql.select_user(user.id))
    fresh = sql.decode_user(first(result[-1]))
    if fresh is None:
        raise UnexpectedFailure("user disappeared while generating a link")
    verification = "email_change" if kind.startswith("email_change") else kind
    body = render_user(fresh)
    body.update(
        {
            "action_link": action_link(
                settings.mail.external_url, link_hash, verification, redirect
            ),
            "email_otp": otp,
            "hashed_token": hashed,
            "verification_type": kind,
            "redirect_to": redirect,
        }
    )
    return json_response(200, body)


def _store(
    user: User,
    slot: TokenSlot,
    token_hash: str,
    ott_id: str,
    *,
    now: datetime,
    invited: bool = False,
) -> Statement:
    assert user.email
    return mail_sql.store_token(
        user_id=user.id,
        slot=slot,
        token_hash=token_hash,
        relates_to=user.email,
        ott_id=ott_id,
        now=now,
        sent_before=None,
        invited=invited,
    )
