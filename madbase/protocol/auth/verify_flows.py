"""POST /verify and GET /verify: a mailed token (typed OTP or followed link) becomes a session.

Theory of operation (GoTrue verify.go). A token is found by its hash in `auth.one_time_tokens`
(POST with `token_hash`, or GET with `token`), or by the hash of the typed OTP with the address
it was sent to (POST with `email` + `token`). It must not be older than the OTP expiry, counted
from the user's `*_sent_at` of that token. Then, by type:

    signup, invite       confirm the address                             -> session
    recovery, magiclink  consume the token (confirm if still unconfirmed) -> session
    email                the confirmation or the magic-link token, whichever matches
    email_change         without autoconfirm and with secure change, the first of the two links
                         only marks progress (`{"msg": ..., "code": 200}`); the second, or the
                         only one, moves `email_change` into `email`          -> session

POST answers with the session JSON. GET answers 303 to the allowed `redirect_to` (else the site
URL) with the session in the fragment (`#access_token=…&expires_at=…&expires_in=…&
refresh_token=…&sb=&token_type=bearer&type=…`, keys sorted as Go encodes them); failures after
the parameters were accepted redirect with `#error=…&error_code=…&error_description=…&sb=`.
`sms` (a code texted by /otp, /signup or /resend, typed with its `phone`) confirms the number and
signs in; `phone_change` (a code texted to the new number of PUT /user) makes it the number.

PKCE: a link whose token starts with `pkce_` was mailed by a flow that sent a `code_challenge`
(a flow state was stored with the token). Following it does the same checks and writes, then
issues that flow state's auth code instead of a session: 303 to `redirect_to?code=<auth code>`,
which the client trades for a session with `/token?grant_type=pkce` and its code verifier. A
`pkce_` token sent to POST /verify (a `token_hash`) just has its prefix removed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlencode, urlsplit, urlunsplit

import attrs

from madbase.protocol.auth import mail_sql, sql
from madbase.protocol.auth.errors import (
    AuthError,
    FlowStateNotFound,
    OtpExpired,
    UnexpectedFailure,
    UserBanned,
)
from madbase.protocol.auth.mail_sql import TokenSlot
from madbase.protocol.auth.mail_steps import (
    PKCE_PREFIX,
    find_token_user,
    pkce_method,
    redirect_url,
    sent_at,
)
from madbase.protocol.auth.pkce import issue_auth_code, pkce_redirect_url
from madbase.protocol.auth.refresh import new_refresh_token
from madbase.protocol.auth.steps import (
    UUID_BYTES,
    AuthSettings,
    Flow,
    JsonObject,
    audit,
    draw_random,
    first,
    run,
    session_body,
    start_session,
    uuids,
)
from madbase.protocol.auth.tokens import User
from madbase.protocol.auth.validate import VerifyRequest, parse_verify, parse_verify_link
from madbase.protocol.http.messages import Request, Response, json_response
from madbase.protocol.sql import Statement

__all__ = ["route"]

_SLOTS: Final = {
    "signup": (TokenSlot.CONFIRMATION,),
    "invite": (TokenSlot.CONFIRMATION,),
    "recovery": (TokenSlot.RECOVERY,),
    "magiclink": (TokenSlot.RECOVERY,),
    "email": (TokenSlot.CONFIRMATION, TokenSlot.RECOVERY),
    "email_change": (TokenSlot.EMAIL_CHANGE_CURRENT, TokenSlot.EMAIL_CHANGE_NEW),
    "sms": (TokenSlot.CONFIRMATION,),
    "phone_change": (TokenSlot.PHONE_CHANGE,),
}
_HALF_CONFIRMED: Final = (
    "Confirmation link accepted. Please proceed to confirm link sent to the other email"
)
_LINK_INVALID: Final = "Email link is invalid or has expired"
# GoTrue's `error` values of redirects, by status (api/errors.go oauthErrorMap).
_OAUTH_ERRORS: Final = {
    400: "invalid_request",
    401: "unauthorized_client",
    403: "access_denied",
    500: "server_error",
    503: "temporarily_unavailable",
}


def route(
    request: Request, path: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response] | None:
    """The /verify endpoints, or None for any other request."""
    if path != "/verify":
        return None
    if request.method == "POST":
        return _verify_post(request, settings, now=now)
    if request.method == "GET":
        return _verify_get(request, settings, now=now)
    return None


def _verify_post(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    params = parse_verify(request.body, settings.limits)
    if params.token_hash.startswith(PKCE_PREFIX):
        params = attrs.evolve(params, token_hash=params.token_hash.removeprefix(PKCE_PREFIX))
    outcome = yield from _verify(params, request, settings, now=now)
    if outcome is None:
        return json_response(200, {"msg": _HALF_CONFIRMED, "code": "200"})
    return outcome[0]


def _verify_get(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    token = request.query_param("token")
    pkce = token is not None and token.startswith(PKCE_PREFIX)
    if token is not None and pkce:
        token = token.removeprefix(PKCE_PREFIX)
    params = parse_verify_link(token, request.query_param("type"))
    redirect = redirect_url(request, settings)
    try:
        outcome = yield from _verify(
            params, request, settings, now=now, pkce_redirect=redirect if pkce else None
        )
    except AuthError as err:
        return _see_other(_error_url(redirect, err), error_code=err.error_code or None)
    if outcome is None:
        return _see_other(_with_fragment(redirect, {"message": _HALF_CONFIRMED, "sb": ""}))
    response, kind = outcome
    if pkce:
        return response
    session = sql.load_json(response.body)
    assert session is not None
    fragment = {
        "access_token": session["access_token"],
        "expires_at": session["expires_at"],
        "expires_in": session["expires_in"],
        "refresh_token": session["refresh_token"],
        "sb": "",
        "token_type": session["token_type"],
        "type": kind,
    }
    return _see_other(f"{redirect}#{urlencode(sorted(fragment.items()))}")


def _see_other(location: str, *, error_code: str | None = None) -> Response:
    return Response(status=303, headers=(("location", location),), error_code=error_code)


def _with_fragment(url: str, values: dict[str, str]) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(fragment=urlencode(sorted(values.items()))))


def _error_url(redirect: str, err: AuthError) -> str:
    values = {"error_code": err.error_code, "error_description": err.message, "sb": ""}
    error = _OAUTH_ERRORS.get(err.http_status)
    if error is not None:
        values["error"] = error
    return _with_fragment(redirect, values)


def _verify(
    params: VerifyRequest,
    request: Request,
    settings: AuthSettings,
    *,
    now: datetime,
    pkce_redirect: str | None = None,
) -> Flow[tuple[Response, str] | None]:
    """Check the token and act on it: the session and the effective type, or None when only
    one half of a secure email change was confirmed. With `pkce_redirect`, the response is the
    303 to that URL with the flow state's auth code instead of a session."""
    slots = _SLOTS.get(params.type)
    typed = params.email is not None or params.phone is not None
    message = "Token has expired or is invalid" if typed else _LINK_INVALID
    sms = params.type in ("sms", "phone_change")
    if slots is None or sms != (params.phone is not None):
        # Texted codes are typed with their number, mailed ones never are.
        raise OtpExpired(message)
    found = yield from find_token_user(
        params.token_hash, slots, address=params.email or params.phone
    )
    if found is None:
        raise OtpExpired(message)
    user, slot = found
    if user.is_banned(now=now):
        raise UserBanned("User is banned", status=403)
    sent = sent_at(user, slot)
    expiry = settings.mail.sms_otp_expiry_seconds if sms else settings.mail.otp_expiry_seconds
    if sent is None or now > sent + timedelta(seconds=expiry):
        raise OtpExpired(message)
    kind = params.type
    if kind == "email":
        kind = "signup" if slot is TokenSlot.CONFIRMATION else "magiclink"
    random = yield from draw_random(4 * UUID_BYTES + 8)
    audit_id, identity_id, session_id, claim_id = uuids(random, 4)
    token = new_refresh_token(random[4 * UUID_BYTES :])
    statements: list[Statement] = []
    confirmed = user.email_confirmed_at is not None

    provider = "phone" if sms else "email"

    def entry(action: str, log_type: str) -> Statement:
        traits: JsonObject | None = {"provider": provider} if action == "user_signedup" else None
        return audit(
            user.id, action, log_type, entry_id=audit_id, request=request, now=now, traits=traits
        )

    if kind == "phone_change":
        statements += [
            entry("user_modified", "user"),
            mail_sql.confirm_phone_change(user.id, identity_id=identity_id, now=now),
        ]
    elif sms:
        statements += [entry("user_signedup", "team"), mail_sql.confirm_phone(user.id, now=now)]
    elif kind in ("signup", "invite"):
        statements += [entry("user_signedup", "team"), mail_sql.confirm_email(user.id, now=now)]
    elif kind in ("recovery", "magiclink"):
        statements.append(mail_sql.consume_token(user.id, TokenSlot.RECOVERY, now=now))
        if confirmed:
            statements.append(entry("login", "account"))
        else:
            statements += [
                entry("user_signedup", "team"),
                mail_sql.confirm_email(user.id, now=now),
            ]
    else:
        half = yield from _email_change(user, slot, settings, now=now)
        if half:
            return None
        statements += [
            entry("user_modified", "user"),
            mail_sql.confirm_email_change(user.id, identity_id=identity_id, now=now),
        ]
    if pkce_redirect is not None:
        result = yield from run(
            *statements,
            mail_sql.refresh_providers(user.id),
            issue_auth_code(user.id, pkce_method(kind), now=now),
        )
        code = first(result[-1])
        if code is None:
            raise FlowStateNotFound
        return _see_other(pkce_redirect_url(pkce_redirect, code.decode())), kind
    response = yield from _sign_in(
        user,
        (*statements, mail_sql.refresh_providers(user.id)),
        provider=provider,
        ids=[session_id, claim_id],
        token=token,
        request=request,
        settings=settings,
        now=now,
    )
    return response, kind


def _email_change(
    user: User, slot: TokenSlot, settings: AuthSettings, *, now: datetime
) -> Flow[bool]:
    """Record the first half of a secure email change; True if that is all there is to do."""
    if settings.autoconfirm or not settings.mail.secure_email_change or not user.email:
        return False
    (row,) = yield from run(mail_sql.email_change_status(user.id), read_only=True)
    if first(row) != b"0":
        return False
    yield from run(mail_sql.email_change_half(user.id, slot, now=now))
    return True


def _sign_in(
    user: User,
    before: tuple[Statement, ...],
    *,
    provider: str,
    ids: list[str],
    token: str,
    request: Request,
    settings: AuthSettings,
    now: datetime,
) -> Flow[Response]:
    fresh, session = yield from start_session(
        user,
        method="otp",
        provider=provider,
        ids=ids,
        token=token,
        request=request,
        now=now,
        before=before,
    )
    if fresh is None:
        raise UnexpectedFailure("user disappeared while verifying")
    return session_body(fresh, session, token, settings, now=now)
