"""`/admin/users`: the admin users API of GoTrue (admin.go), for service_role tokens only.

Every route first checks the bearer token: no token is 401 `no_authorization`, a bad one 403
`bad_jwt`, a token whose `role` is not an admin role (`service_role`, `supabase_admin`) 403
`not_admin`; a token that names a session must name a live one. Routes under `{user_id}` then
load the user (a malformed id is 404 `validation_failed`, an unknown one 404 `user_not_found`).
A `role` given to a user must be one a token may name (`claims`): its tokens will carry it.

Metadata merges follow models/user.go: the given keys are set, a `null` value removes its key.
A soft delete keeps the row with obfuscated contacts (sha256 of id + value, base64url) and
`deleted_at` set; a hard delete removes the user, and with it its sessions, so its tokens stop
working.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import parse_qsl

import attrs

from madbase.protocol.auth import sql
from madbase.protocol.auth.admin import sql as admin_sql
from madbase.protocol.auth.admin.params import (
    AdminUserParams,
    link_header,
    parse_admin_user,
    parse_ban_duration,
    parse_page,
)
from madbase.protocol.auth.body import FieldKind, decode_fields
from madbase.protocol.auth.errors import (
    EmailExists,
    MfaFactorNameConflict,
    PhoneExists,
    UserAlreadyExists,
    UserNotFound,
    ValidationFailed,
)
from madbase.protocol.auth.mfa import sql as mfa_sql
from madbase.protocol.auth.mfa.steps import amr_method, find_factor
from madbase.protocol.auth.passwords import HashScheme, check_password_strength, hash_scheme
from madbase.protocol.auth.steps import (
    UNIQUE_VIOLATION,
    UUID_BYTES,
    AuthSettings,
    Flow,
    JsonObject,
    audit,
    database_failure,
    draw_random,
    first,
    hash_password,
    merge_metadata,
    require_admin,
    run,
    try_run,
    uuids,
)
from madbase.protocol.auth.tokens import User, render_factor, render_user
from madbase.protocol.auth.validate import validate_email, validate_phone
from madbase.protocol.http.messages import JsonValue, Request, Response, json_response
from madbase.protocol.sql import DbError, DbResult, Statement

__all__ = ["route"]

# Supabase sets GOTRUE_JWT_DEFAULT_GROUP_NAME to this (the bare binary leaves it empty).
_DEFAULT_ROLE: Final = "authenticated"
_GENERATED_PASSWORD_BYTES: Final = 48  # 64 characters, as GoTrue's password.Generate(64, ...)
_BCRYPT_MAX_BYTES: Final = 72
_HASH_SCHEMES: Final = frozenset({HashScheme.ARGON2ID, HashScheme.ARGON2I, HashScheme.BCRYPT})


def route(
    request: Request, path: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response] | None:
    """The flow for an `/admin/users...` request, or None when the path is not one of them."""
    parts = path.split("/")
    if parts[:3] != ["", "admin", "users"]:
        return None
    match (request.method, parts[3:]):
        case ("GET", []):
            return _list(request, path, settings, now=now)
        case ("POST", []):
            return _create(request, settings, now=now)
        case ("GET", [user_id]):
            return _get(request, user_id, settings, now=now)
        case ("PUT", [user_id]):
            return _update(request, user_id, settings, now=now)
        case ("DELETE", [user_id]):
            return _delete(request, user_id, settings, now=now)
        case ("GET", [user_id, "factors"]):
            return _list_factors(request, user_id, settings, now=now)
        case ("DELETE", [user_id, "factors", factor_id]):
            return _delete_factor(request, user_id, factor_id, settings, now=now)
        case ("PUT", [user_id, "factors", factor_id]):
            return _update_factor(request, user_id, factor_id, settings, now=now)
    return None


# --- shared steps ------------------------------------------------------------------------------


def _load_user(user_id: str) -> Flow[User]:
    try:
        canonical = str(uuid.UUID(user_id))
    except ValueError:
        raise ValidationFailed("user_id must be an UUID", status=404) from None
    (row,) = yield from run(sql.select_user(canonical), read_only=True)
    user = sql.decode_user(first(row))
    if user is None:
        raise UserNotFound("User not found", status=404)
    return user


def _request_aud(request: Request, settings: AuthSettings) -> str:
    return request.header("x-jwt-aud") or settings.limits.audience


def _fresh_user(result: list[DbResult]) -> User:
    user = sql.decode_user(first(result[-1]))
    if user is None:  # deleted while this request ran
        raise UserNotFound("User not found", status=404)
    return user


def _contact_conflict(
    error: DbError, statements: Sequence[Statement], *, new_id: bool = False
) -> Exception:
    if error.sqlstate != UNIQUE_VIOLATION:
        return database_failure(error, statements)
    if "phone" in error.message:
        return PhoneExists("Phone number already registered by another user")
    if new_id and ("users_pkey" in error.message or "identities" in error.message):
        return UserAlreadyExists("A user with this ID already exists")
    return EmailExists()


def _identity_data(user_id: str, provider: str, value: str, *, verified: bool) -> JsonObject:
    """What createNewIdentity stores for an email or phone identity (provider.Claims)."""
    return {
        "sub": user_id,
        provider: value,
        "email_verified": verified and provider == "email",
        "phone_verified": verified and provider == "phone",
    }


# --- GET /admin/users --------------------------------------------------------------------------


def _list(request: Request, path: str, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    yield from require_admin(request, settings, now=now)
    ascending = False
    for field in _query_values(request, "sort")[:1]:
        name, _, direction = field.partition(" ")
        if name != "created_at":
            raise ValidationFailed(f"Bad Sort Parameters: bad field for sort '{name}'")
        if direction and direction.upper() not in ("ASC", "DESC"):
            raise ValidationFailed(
                f"Bad Sort Parameters: bad direction for sort '{direction}',"
                " only 'asc' and 'desc' allowed"
            )
        ascending = direction.upper() == "ASC"
    page = parse_page(request.query_param("page"), request.query_param("per_page"))
    aud = _request_aud(request, settings)
    (row,) = yield from run(
        admin_sql.list_users(
            aud=aud,
            search=request.query_param("filter") or "",
            ascending=ascending,
            limit=page.limit,
            offset=page.offset,
        ),
        read_only=True,
    )
    raw_count, raw_users = row.rows[0]
    total = int((raw_count or b"0").decode())
    listed: list[JsonValue] = []
    for item in json.loads(raw_users or b"[]"):
        user = sql.decode_user(json.dumps(item).encode())
        assert user is not None
        body = render_user(user)
        # Listed users are not loaded eagerly in GoTrue: no identities, no factors.
        body["identities"] = None
        body.pop("factors", None)
        listed.append(body)
    headers = (
        ("link", link_header(path, request.query, page, total)),
        ("x-total-count", str(total)),
    )
    return json_response(200, {"users": listed, "aud": aud}, headers)


def _query_values(request: Request, name: str) -> list[str]:
    return [v for k, v in parse_qsl(request.query, keep_blank_values=True) if k == name]


# --- POST /admin/users -------------------------------------------------------------------------


def _create(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    role = yield from require_admin(request, settings, now=now)
    params = parse_admin_user(request.body, settings.limits)
    user_role = _user_role(params, settings) or _DEFAULT_ROLE
    aud = params.aud or _request_aud(request, settings)
    if not params.email and not params.phone:
        raise ValidationFailed("Cannot create a user without either an email or phone")
    email = validate_email(params.email) if params.email else ""
    phone = validate_phone(params.phone) if params.phone else ""
    if params.password is not None and params.password_hash:
        raise ValidationFailed("Only a password or a password hash should be provided")
    random = yield from draw_random(4 * UUID_BYTES + _GENERATED_PASSWORD_BYTES)
    new_id, email_identity, phone_identity, audit_id = uuids(random, 4)
    if params.password_hash:
        if hash_scheme(params.password_hash) not in _HASH_SCHEMES:
            raise ValidationFailed("Invalid password hash: not a bcrypt or argon2 hash")
        encrypted = params.password_hash
    else:
        password = params.password or base64.urlsafe_b64encode(random[4 * UUID_BYTES :]).decode()
        if len(password.encode("utf-8", "surrogatepass")) > _BCRYPT_MAX_BYTES:
            raise ValidationFailed("bcrypt: password length exceeds 72 bytes")
        encrypted = yield from hash_password(password)
    user_id = _custom_id(params) or new_id
    ban = parse_ban_duration(params.ban_duration)
    providers: list[JsonValue] = [p for p, v in (("email", email), ("phone", phone)) if v]
    app_metadata = merge_metadata(
        {"provider": providers[0], "providers": providers}, params.app_metadata
    )
    user_metadata = dict(params.user_metadata or {})
    if params.email_confirm:
        user_metadata["email_verified"] = True
    statements: list[Statement] = [
        sql.insert_user(
            user_id=user_id,
            aud=aud,
            email=email or None,
            phone=phone or None,
            encrypted_password=encrypted,
            app_metadata=app_metadata,
            user_metadata=user_metadata,
            email_confirmed_at=now if params.email_confirm else None,
            phone_confirmed_at=now if params.phone_confirm else None,
            last_sign_in_at=None,
            is_anonymous=False,
            now=now,
        )
    ]
    for identity_id, provider, value in (
        (email_identity, "email", email),
        (phone_identity, "phone", phone),
    ):
        if value:
            statements.append(
                sql.insert_identity(
                    identity_id=identity_id,
                    user_id=user_id,
                    provider=provider,
                    provider_id=user_id,
                    identity_data=_identity_data(user_id, provider, value, verified=False),
                    last_sign_in_at=now,
                    now=now,
                )
            )
    statements += [
        admin_sql.admin_audit(
            entry_id=audit_id,
            actor_role=role,
            action="user_signedup",
            log_type="team",
            traits={
                "user_id": user_id,
                "user_email": email,
                "user_phone": phone,
                "provider": providers[0],
            },
            ip=request.client,
            now=now,
        ),
        admin_sql.set_role(user_id, user_role, now=now),
    ]
    if ban is not None:
        statements.append(admin_sql.set_banned_until(user_id, _ban_end(ban, now), now=now))
    statements.append(sql.select_user(user_id))
    result = yield from try_run(*statements)
    if isinstance(result, DbError):
        raise _contact_conflict(result, statements, new_id=bool(params.id))
    return json_response(200, render_user(_fresh_user(result)))


def _user_role(params: AdminUserParams, settings: AuthSettings) -> str:
    """The role given, if any, checked: the user's tokens will carry it, so it must be one a
    token may name (see `claims`), or the user could sign in as a role the API must not be.
    """
    role = params.role.strip()
    if role and role not in settings.bearer.roles:
        allowed = ", ".join(sorted(settings.bearer.roles))
        raise ValidationFailed(
            f'Role "{role}" is not allowed: a user\'s role must be one of {allowed}'
        )
    return role


def _custom_id(params: AdminUserParams) -> str | None:
    if not params.id:
        return None
    try:
        custom = uuid.UUID(params.id)
    except ValueError:
        raise ValidationFailed("ID must conform to the uuid v4 format") from None
    if custom.int == 0:
        raise ValidationFailed("ID cannot be a nil uuid")
    return str(custom)


def _ban_end(ban: timedelta, now: datetime) -> datetime | None:
    return None if ban == timedelta(0) else now + ban


# --- GET/PUT/DELETE /admin/users/{id} ------------------------------------------------------------


def _get(
    request: Request, user_id: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    yield from require_admin(request, settings, now=now)
    user = yield from _load_user(user_id)
    return json_response(200, render_user(user))


def _update(
    request: Request, user_id: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    role = yield from require_admin(request, settings, now=now)
    user = yield from _load_user(user_id)
    params = parse_admin_user(request.body, settings.limits)
    user_role = _user_role(params, settings)
    email = validate_email(params.email) if params.email else ""
    phone = validate_phone(params.phone) if params.phone else ""
    ban = parse_ban_duration(params.ban_duration)
    encrypted: str | None = None
    if params.password is not None:
        check_password_strength(params.password, settings.limits)
        encrypted = yield from hash_password(params.password)
    audit_id, email_identity, phone_identity = uuids((yield from draw_random(3 * UUID_BYTES)), 3)
    statements: list[Statement] = []
    if user_role:
        statements.append(admin_sql.set_role(user.id, user_role, now=now))
    if params.email_confirm:
        statements += [
            admin_sql.confirm_email(user.id, now=now),
            admin_sql.clear_one_time_tokens(user.id),
        ]
    if params.phone_confirm:
        statements += [
            admin_sql.confirm_phone(user.id, now=now),
            admin_sql.clear_one_time_tokens(user.id),
        ]
    if encrypted is not None:
        statements += [
            admin_sql.reset_password(user.id, encrypted, now=now),
            admin_sql.clear_one_time_tokens(user.id),
            # A password set by an admin ends every session (models.User.UpdatePassword(nil)).
            sql.delete_sessions(user.id, only=None, keep=None),
        ]
    for identity_id, provider, value, confirm in (
        (email_identity, "email", email, params.email_confirm),
        (phone_identity, "phone", phone, params.phone_confirm),
    ):
        if not value:
            continue
        statements.append(
            admin_sql.upsert_identity(
                identity_id=identity_id,
                user_id=user.id,
                provider=provider,
                new_data=_identity_data(user.id, provider, value, verified=confirm),
                merge={provider: value, f"{provider}_verified": confirm},
                now=now,
            )
        )
        if user.is_anonymous and confirm:
            statements.append(admin_sql.set_not_anonymous(user.id, now=now))
        statements.append(admin_sql.set_contact(user.id, column=provider, value=value, now=now))
    if params.app_metadata is not None:
        merged_app = merge_metadata(user.app_metadata, params.app_metadata)
        statements.append(admin_sql.set_app_metadata(user.id, merged_app, now=now))
    if params.email_confirm or params.user_metadata is not None:
        merged = merge_metadata(
            user.user_metadata, {"email_verified": True} if params.email_confirm else None
        )
        merged = merge_metadata(merged, params.user_metadata)
        statements.append(sql.set_user_metadata(user.id, merged, now=now))
    if ban is not None:
        statements.append(admin_sql.set_banned_until(user.id, _ban_end(ban, now), now=now))
    statements += [
        admin_sql.admin_audit(
            entry_id=audit_id,
            actor_role=role,
            action="user_modified",
            log_type="user",
            traits={
                "user_id": user.id,
                "user_email": email or user.email or "",
                "user_phone": phone or user.phone or "",
            },
            ip=request.client,
            now=now,
        ),
        sql.select_user(user.id),
    ]
    result = yield from try_run(*statements)
    if isinstance(result, DbError):
        raise _contact_conflict(result, statements)
    return json_response(200, render_user(_fresh_user(result)))


def _obfuscate(user_id: str, value: str) -> str:
    """GoTrue's obfuscateValue: base64url(sha256(id + value)), unpadded."""
    digest = hashlib.sha256((user_id + value).encode("utf-8", "surrogatepass")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _delete(
    request: Request, user_id: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    role = yield from require_admin(request, settings, now=now)
    user = yield from _load_user(user_id)
    soft = False
    if request.body:
        fields = decode_fields(
            request.body,
            settings.limits,
            "adminUserDeleteParams",
            {"should_soft_delete": FieldKind.BOOL},
        )
        soft = fields.flag("should_soft_delete")
    (audit_id,) = uuids((yield from draw_random(UUID_BYTES)), 1)
    statements: list[Statement] = [
        admin_sql.admin_audit(
            entry_id=audit_id,
            actor_role=role,
            action="user_deleted",
            log_type="team",
            traits={
                "user_id": user.id,
                "user_email": user.email or "",
                "user_phone": user.phone or "",
            },
            ip=request.client,
            now=now,
        )
    ]
    if not soft:
        statements.append(admin_sql.delete_user(user.id))
    elif user.deleted_at is None:
        statements += [
            admin_sql.soft_delete_user(
                user.id,
                email=_obfuscate(user.id, user.email or ""),
                phone=_obfuscate(user.id, user.phone or "")[:15],
                email_change=_obfuscate(user.id, user.email_change),
                phone_change=_obfuscate(user.id, user.phone_change)[:15],
                now=now,
            ),
            admin_sql.clear_one_time_tokens(user.id),
            *(
                admin_sql.soft_delete_identity(
                    identity.id,
                    _obfuscate(user.id, f"{identity.provider}:{identity.provider_id}"),
                    now=now,
                )
                for identity in user.identities
            ),
            admin_sql.delete_user_factors(user.id),
            sql.delete_sessions(user.id, only=None, keep=None),
        ]
    yield from run(*statements)
    return json_response(200, {})


# --- /admin/users/{id}/factors -------------------------------------------------------------------


def _list_factors(
    request: Request, user_id: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    yield from require_admin(request, settings, now=now)
    user = yield from _load_user(user_id)
    return json_response(200, [render_factor(f) for f in user.factors])


def _delete_factor(
    request: Request, user_id: str, factor_id: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    yield from require_admin(request, settings, now=now)
    user = yield from _load_user(user_id)
    factor = find_factor(user, factor_id)
    (audit_id,) = uuids((yield from draw_random(UUID_BYTES)), 1)
    yield from run(
        audit(
            user.id,
            "factor_deleted",
            "factor",
            entry_id=audit_id,
            request=request,
            now=now,
            traits={"user_id": user.id, "factor_id": factor.id},
        ),
        mfa_sql.delete_factor(factor.id),
        mfa_sql.downgrade_factor_sessions(user.id, factor.id, amr_method(factor.factor_type)),
    )
    return json_response(200, render_factor(factor))


def _update_factor(
    request: Request, user_id: str, factor_id: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    role = yield from require_admin(request, settings, now=now)
    user = yield from _load_user(user_id)
    factor = find_factor(user, factor_id)
    fields = decode_fields(
        request.body,
        settings.limits,
        "adminUserUpdateFactorParams",
        {"friendly_name": FieldKind.STRING, "phone": FieldKind.STRING},
    )
    name = fields.text("friendly_name")
    (audit_id,) = uuids((yield from draw_random(UUID_BYTES)), 1)
    statements: list[Statement] = []
    if name:
        statements.append(mfa_sql.rename_factor(factor.id, name, now=now))
        factor = attrs.evolve(factor, friendly_name=name, updated_at=now)
    # Phone factors cannot be enrolled in MadBase, so a `phone` never has a factor to change.
    statements.append(
        admin_sql.admin_audit(
            entry_id=audit_id,
            actor_role=role,
            action="factor_updated",
            log_type="factor",
            traits={"user_id": user.id, "factor_id": factor.id, "factor_type": factor.factor_type},
            ip=request.client,
            now=now,
        )
    )
    result = yield from try_run(*statements)
    if isinstance(result, DbError):
        if result.sqlstate == UNIQUE_VIOLATION:
            quoted = json.dumps(name, ensure_ascii=False)
            raise MfaFactorNameConflict(
                f"A factor with the friendly name {quoted} for this user already exists"
            )
        raise database_failure(result, statements)
    return json_response(200, render_factor(factor))
