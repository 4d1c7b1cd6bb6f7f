"""The `/auth/v1` endpoints as generator flows: they yield commands and are sent the results.

Theory of operation. `auth_flow(request, subpath, settings, now=...)` is a generator: every time
it needs the outside world it yields one command (see `steps`) and is sent its result, as httpx's
auth flows and psycopg's generators do. The flow finishes with the `Response` (its
`StopIteration.value`); every `AuthError` raised on the way is rendered here with the request's
`X-Supabase-Api-Version`, so the runtime never picks a status. `auth_answer` is the same flow
finishing with an `AuthAnswer`, which adds, for a 5xx, the cause the runtime logs (a database
error's SQLSTATE, message and statement) and the client never sees.

This module answers health, settings, sign-up and the user. The endpoint modules of the feature
subpackages (`session.flows`, `mfa.flows`, `admin.flows`, `external.oauth`, `mail.verify`,
`mail.flows`, `mail.admin`) each export a router, `route(request, path, settings, now=...) ->
Flow | None` (None: not mine), listed in `_ROUTERS`; they share the steps in `steps`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final, TypeAlias, final

import attrs

from madbase.protocol.auth import sql
from madbase.protocol.auth.admin import flows as admin
from madbase.protocol.auth.admin import sql as admin_sql
from madbase.protocol.auth.error_response import auth_api_version, render_auth_error
from madbase.protocol.auth.errors import (
    AuthError,
    NotAdmin,
    PhoneExists,
    SamePassword,
    UnexpectedFailure,
    UserAlreadyExists,
    UserNotFound,
)
from madbase.protocol.auth.external import oauth
from madbase.protocol.auth.mail import admin as mail_admin
from madbase.protocol.auth.mail import flows as mail_flows
from madbase.protocol.auth.mail import sql as mail_sql
from madbase.protocol.auth.mail import steps as mail_steps
from madbase.protocol.auth.mail import verify as verify_flows
from madbase.protocol.auth.mfa import flows as mfa
from madbase.protocol.auth.refresh import (
    new_refresh_token,
)
from madbase.protocol.auth.session import flows as session_flows
from madbase.protocol.auth.steps import (
    DUMMY_HASH,
    UNIQUE_VIOLATION,
    UUID_BYTES,
    AuthCommand,
    AuthSettings,
    DrawRandom,
    Flow,
    JsonObject,
    RunTransaction,
    audit,
    authenticate,
    bearer_claims,
    check_password,
    database_failure,
    draw_random,
    first,
    hash_password,
    merge_metadata,
    run,
    session_body,
    session_statements,
    try_run,
    uuids,
)
from madbase.protocol.auth.tokens import (
    Session,
    User,
    render_user,
)
from madbase.protocol.auth.validate import (
    AnonymousSignupRequest,
    SignupRequest,
    parse_signup,
    parse_user_update,
)
from madbase.protocol.http.messages import Request, Response, json_response
from madbase.protocol.identity import BearerError, Principal
from madbase.protocol.sql import DbError, Statement

__all__ = [
    "DUMMY_HASH",
    "AuthAnswer",
    "AuthCommand",
    "AuthSettings",
    "DrawRandom",
    "Flow",
    "RunTransaction",
    "auth_answer",
    "auth_flow",
]

# GoTrue's /health answer (api/health.go); the version is MadBase's API level.
_HEALTH: Final[JsonObject] = {
    "version": "v2.180.0",
    "name": "GoTrue",
    "description": "GoTrue is a user registration and authentication API",
}
# GoTrue's JWT_ADMIN_GROUP_NAME default: users with this role may update their own app_metadata.
_ADMIN_GROUP: Final = "admin"


# Routers of the other endpoint modules, tried in order after this module's own routes.
Router: TypeAlias = Callable[..., "Flow[Response] | None"]
_ROUTERS: Final[tuple[Router, ...]] = (
    session_flows.route,
    mfa.route,
    admin.route,
    oauth.route,
    verify_flows.route,
    mail_flows.route,
    mail_admin.route,
)


# --- entry point -------------------------------------------------------------------------------


def auth_flow(
    request: Request, subpath: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    """Answer one `/auth/v1` request; `subpath` is the path after `/auth/v1`.

    Never raises for anything the client sent: every `AuthError` becomes its rendered response.
    """
    answer = yield from auth_answer(request, subpath, settings, now=now)
    return answer.response


@final
@attrs.frozen(kw_only=True)
class AuthAnswer:
    """A flow's outcome: the response and, for a server-side failure, what the log should say."""

    response: Response
    failure: str | None = None


def auth_answer(
    request: Request,
    subpath: str,
    settings: AuthSettings,
    *,
    now: datetime,
    request_id: str | None = None,
    identity: Principal | BearerError | None = None,
) -> Flow[AuthAnswer]:
    """`auth_flow`, telling the runtime about a 5xx: its cause goes to the log, not the client.

    `request_id` becomes the `error_id` of a 5xx in GoTrue's legacy error shape. `identity` is
    the one the gateway admitted (`Dispatch.identity`): flows that need the request's user use
    it instead of verifying the token again; None, they verify with `settings.bearer`.
    """
    if identity is not None:
        settings = attrs.evolve(settings, admitted=identity)
    version = request.header("x-supabase-api-version")
    try:
        response = yield from _route(request, subpath.rstrip("/") or "/", settings, now=now)
    except AuthError as err:
        failure = None
        if err.http_status >= 500:
            cause = err.cause if isinstance(err, UnexpectedFailure) else None
            failure = cause or err.message
        rendered = render_auth_error(err, api_version=version, request_id=request_id)
        return AuthAnswer(response=rendered, failure=failure)
    echoed = auth_api_version(version)
    if echoed is not None:
        response = response.with_headers((("x-supabase-api-version", echoed),))
    return AuthAnswer(response=response)


def _route(request: Request, path: str, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    match (request.method, path):
        case ("GET", "/health"):
            return json_response(200, _HEALTH)
        case ("GET", "/settings"):
            return json_response(200, _settings(settings))
        case ("POST", "/signup"):
            return (yield from _signup(request, settings, now=now))
        case ("GET", "/user"):
            user, _ = yield from authenticate(request, settings, now=now)
            return json_response(200, render_user(user))
        case ("PUT", "/user"):
            return (yield from _update_user(request, settings, now=now))
    for router in _ROUTERS:
        flow = router(request, path, settings, now=now)
        if flow is not None:
            return (yield from flow)
    raise AuthError("Not Found", status=404)


def _settings(settings: AuthSettings) -> JsonObject:
    limits = settings.limits
    external: JsonObject = {
        "anonymous_users": limits.anonymous_users_enabled,
        "email": limits.email_enabled,
        "phone": limits.phone_enabled,
        **oauth.external_settings(settings),
    }
    return {
        "external": external,
        "disable_signup": limits.disable_signup,
        "mailer_autoconfirm": settings.autoconfirm,
        "phone_autoconfirm": settings.autoconfirm,
        "sms_provider": "",
        "saml_enabled": False,
        "passkeys_enabled": False,
    }


# --- POST /signup ------------------------------------------------------------------------------


def _signup(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    parsed = parse_signup(request.body, settings.limits)
    texted = isinstance(parsed, SignupRequest) and parsed.phone and not settings.autoconfirm
    if texted and not settings.mail.sms_enabled:  # GoTrue's answer, before anything is written
        raise UnexpectedFailure("Unable to get SMS provider")
    # user, identity, session, amr claim, two audit entries; then 8 bytes of refresh token.
    random = yield from draw_random(6 * UUID_BYTES + 8)
    user_id, identity_id, session_id, claim_id, audit1, audit2 = uuids(random, 6)
    token = new_refresh_token(random[6 * UUID_BYTES :])
    anonymous = isinstance(parsed, AnonymousSignupRequest)
    confirmed = settings.autoconfirm or anonymous
    if isinstance(parsed, SignupRequest):
        encrypted = yield from hash_password(parsed.password)
        provider = "email" if parsed.email else "phone"
        identity_data: JsonObject = {
            "sub": user_id,
            "email_verified": confirmed and provider == "email",
            "phone_verified": confirmed and provider == "phone",
        }
        if parsed.email:
            identity_data["email"] = parsed.email
        else:
            identity_data["phone"] = parsed.phone
        app_metadata: JsonObject = {"provider": provider, "providers": [provider]}
        user_metadata: JsonObject = {**parsed.data, **identity_data}
        email, phone = parsed.email, parsed.phone
        method = "password"
    else:
        encrypted, provider, identity_data = None, "anonymous", {}
        app_metadata, user_metadata = {}, dict(parsed.data)
        email, phone, method = None, None, "anonymous"
    statements: list[Statement] = [
        sql.insert_user(
            user_id=user_id,
            aud=settings.limits.audience,
            email=email,
            phone=phone,
            encrypted_password=encrypted,
            app_metadata=app_metadata,
            user_metadata=user_metadata,
            email_confirmed_at=now if confirmed and email else None,
            phone_confirmed_at=now if confirmed and phone else None,
            last_sign_in_at=now if confirmed else None,
            is_anonymous=anonymous,
            now=now,
        )
    ]
    if not anonymous:
        statements.append(
            sql.insert_identity(
                identity_id=identity_id,
                user_id=user_id,
                provider=provider,
                provider_id=user_id,
                identity_data=identity_data,
                last_sign_in_at=now if confirmed else None,
                now=now,
            )
        )
    traits: JsonObject = {"provider": provider}
    statements.append(
        audit(
            user_id,
            "user_signedup" if confirmed else "user_confirmation_requested",
            "team" if confirmed else "user",
            entry_id=audit1,
            request=request,
            now=now,
            traits=traits,
        )
    )
    stub = User(id=user_id, created_at=now, updated_at=now)
    session: Session | None = None
    if confirmed:
        session, inserts = session_statements(
            stub, ids=[session_id, claim_id], token=token, method=method, request=request, now=now
        )
        statements += inserts
        statements.append(
            audit(
                user_id,
                "login",
                "account",
                entry_id=audit2,
                request=request,
                now=now,
                traits=traits,
            )
        )
    statements.append(sql.select_user(user_id))
    result = yield from try_run(*statements)
    if isinstance(result, DbError):
        if result.sqlstate == UNIQUE_VIOLATION:
            if email and not confirmed:
                data = parsed.data if isinstance(parsed, SignupRequest) else {}
                return (
                    yield from mail_steps.repeated_signup(email, data, request, settings, now=now)
                )
            raise PhoneExists() if phone and not email else UserAlreadyExists()
        raise database_failure(result, statements)
    user = sql.decode_user(first(result[-1]))
    if user is None:
        raise UnexpectedFailure
    if session is None and (email or phone):
        user = yield from mail_steps.send_confirmation(
            user,
            phone=None if email else phone,
            pkce=parsed.pkce if isinstance(parsed, SignupRequest) else None,
            request=request,
            settings=settings,
            now=now,
            signed_up=(user.id, audit1),
        )
    if session is None:
        return json_response(200, render_user(user))
    return session_body(user, session, token, settings, now=now)


# --- GET/PUT /user -----------------------------------------------------------------------------


def _update_user(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    # The token first, as GoTrue's middleware does: no token is 401 whatever the body says.
    bearer_claims(request, settings, now=now)
    update = parse_user_update(request.body, settings.limits)
    user, session_id = yield from authenticate(request, settings, now=now)
    if update.app_metadata is not None and not _is_admin(user, settings):
        raise NotAdmin("Updating app_metadata requires admin privileges")
    statements: list[Statement] = []
    random = yield from draw_random(UUID_BYTES)
    (audit_id,) = uuids(random, 1)
    action = "user_modified"
    if update.data is not None:
        merged = merge_metadata(user.user_metadata, update.data)
        statements.append(sql.set_user_metadata(user.id, merged, now=now))
    if update.app_metadata is not None:
        merged_app = merge_metadata(user.app_metadata, update.app_metadata)
        statements.append(admin_sql.set_app_metadata(user.id, merged_app, now=now))
    if update.password is not None:
        statements += yield from mail_steps.check_nonce(
            user, session_id, update.nonce, settings, now=now
        )
        if user.encrypted_password and (
            yield from check_password(user.encrypted_password, update.password)
        ):
            raise SamePassword
        encrypted = yield from hash_password(update.password)
        statements += [
            sql.set_password(user.id, encrypted, now=now),
            # A new password ends every other session (models/user.go UpdatePassword).
            sql.delete_sessions(user.id, only=None, keep=session_id or sql.NIL_UUID),
            # ... and voids every pending mailed token (models/user.go UpdatePassword).
            mail_sql.clear_all_tokens(user.id),
        ]
        action = "user_updated_password"
    new_email = update.email if update.email not in (None, user.email or "") else None
    if new_email is not None:
        yield from mail_steps.check_email_free(user, new_email)
    new_phone = update.phone if update.phone not in (None, user.phone or "") else None
    statements += [
        audit(user.id, action, "user", entry_id=audit_id, request=request, now=now),
        sql.select_user(user.id),
    ]
    result = yield from run(*statements)
    fresh = sql.decode_user(first(result[-1]))
    if fresh is None:  # deleted while this request ran
        raise UserNotFound(status=403)
    if new_email is not None:  # after the password change, which voids pending tokens
        fresh = yield from mail_steps.change_email(
            fresh, new_email, request, settings, now=now, pkce=update.pkce
        )
    if new_phone is not None:
        fresh = yield from mail_steps.change_phone(fresh, new_phone, request, settings, now=now)
    return json_response(200, render_user(fresh))


def _is_admin(user: User, settings: AuthSettings) -> bool:
    """GoTrue's isAdmin: a user of the project's audience in the admin group (JWT_ADMIN_GROUP_NAME,
    `admin` by default) may set its own app_metadata.
    """
    return user.aud == settings.limits.audience and user.role == _ADMIN_GROUP
