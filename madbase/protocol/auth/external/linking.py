"""Which user an external identity signs in: find, link by verified e-mail, or create.

GoTrue's models/linking.go `DetermineAccountLinking` and api/external.go
`createAccountFromExternalIdentity` / api/identity.go `linkIdentityToUser`, for the default
linking domain (every provider but `sso:*`):

| found | decision |
|---|---|
| an identity with this provider and subject | ACCOUNT_EXISTS: refresh its data, sign its user in |
| no verified address (autoconfirm counts every address as verified) | CREATE (without the address when another user has it) |
| identities with a verified address, all of one user | LINK to that user |
| none, but one user with that address | LINK to that user |
| none at all | CREATE |
| several users | 500, as GoTrue (data inconsistency) |

`plan_account` reads once and returns the statements that carry the decision out; the caller adds
its own (session or flow-state claim) and runs them in one transaction.
"""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import final

import attrs

from madbase.protocol.auth import sql
from madbase.protocol.auth.errors import (
    EmailNotConfirmed,
    IdentityAlreadyExists,
    ProviderEmailNeedsVerification,
    SignupDisabled,
    UnexpectedFailure,
    UserBanned,
)
from madbase.protocol.auth.external.providers import ExternalUser
from madbase.protocol.auth.refresh import new_refresh_token
from madbase.protocol.auth.steps import (
    UUID_BYTES,
    AuthSettings,
    Flow,
    JsonObject,
    audit,
    draw_random,
    run,
    start_session,
    uuids,
)
from madbase.protocol.auth.tokens import Session, User
from madbase.protocol.http.messages import JsonValue, Request
from madbase.protocol.sql import Statement

__all__ = [
    "AccountPlan",
    "Decision",
    "plan_account",
    "refresh_providers",
    "sign_in_external",
]


class Decision(enum.Enum):
    """GoTrue's `AccountLinkingDecision`."""

    ACCOUNT_EXISTS = "account_exists"
    CREATE_ACCOUNT = "create_account"
    LINK_ACCOUNT = "link_account"


@final
@attrs.frozen(kw_only=True)
class AccountPlan:
    """The user an external identity signs in, and the statements that make it so."""

    user_id: str
    decision: Decision
    statements: tuple[Statement, ...]


def _candidates(provider: str, subject: str, verified: list[str], candidate: str) -> Statement:
    users_json = sql._USER_JSON
    return Statement(
        "select (select jsonb_build_object('identity_id', i.id, 'user', "  # noqa: S608
        f"{users_json}) from auth.identities i join auth.users u on u.id = i.user_id"
        " where i.provider_id = $1 and i.provider = $2 limit 1),"
        f" (select coalesce(jsonb_agg({users_json}), '[]'::jsonb) from auth.users u"
        "   where u.id in (select i.user_id from auth.identities i"
        "   where i.email = any($3::text[]) and i.provider not like 'sso:%')),"
        f" (select coalesce(jsonb_agg({users_json}), '[]'::jsonb) from auth.users u"
        "   where lower(u.email) = any($3::text[]) and u.is_sso_user = false),"
        " ($4 <> '' and (exists(select 1 from auth.identities i where i.email = $4"
        "   and i.provider not like 'sso:%') or exists(select 1 from auth.users u"
        "   where lower(u.email) = $4 and u.is_sso_user = false)))",
        (subject, provider, "{" + ",".join(_array_item(e) for e in verified) + "}", candidate),
    )


def _array_item(text: str) -> str:
    """`text` as an element of a Postgres array literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dump(value: JsonValue) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _users(raw: bytes | None) -> list[User]:
    items: JsonValue = json.loads(raw or b"[]")
    assert isinstance(items, list), items
    users = []
    for item in items:
        user = sql.decode_user(_dump(item).encode())
        assert user is not None
        users.append(user)
    return users


def _update_identity(identity_id: str, data: JsonObject, *, now: datetime) -> Statement:
    return Statement(
        "update auth.identities set identity_data = $2::jsonb, last_sign_in_at = $3::timestamptz,"
        " updated_at = $3::timestamptz where id = $1::uuid",
        (identity_id, _dump(data), sql.stamp(now)),
    )


def refresh_providers(user_id: str) -> Statement:
    """`app_metadata.providers` (and `provider`, the first) from the user's identities."""
    return Statement(
        "update auth.users u set raw_app_meta_data = coalesce(u.raw_app_meta_data, '{}'::jsonb)"
        " || (select jsonb_build_object('providers', coalesce(jsonb_agg(p.provider order by"
        " p.first, p.provider), '[]'::jsonb)) || coalesce(jsonb_build_object('provider',"
        " (array_agg(p.provider order by p.first, p.provider))[1]), '{}'::jsonb)"
        " from (select provider, min(created_at) as first from auth.identities"
        " where user_id = u.id group by provider) p) where u.id = $1::uuid",
        (user_id,),
    )


def _confirm_email(user_id: str, *, now: datetime) -> Statement:
    return Statement(
        "update auth.users set email_confirmed_at = $2::timestamptz, confirmation_token = '',"
        " raw_user_meta_data = coalesce(raw_user_meta_data, '{}'::jsonb)"
        " || '{\"email_verified\": true}'::jsonb, updated_at = $2::timestamptz"
        " where id = $1::uuid",
        (user_id, sql.stamp(now)),
    )


def _drop_unconfirmed(user_id: str, keep: str, *, clear_password: bool) -> Statement:
    """An unconfirmed user keeps only the identity signing in (pre-account-takeover guard)."""
    return Statement(
        "with d as (delete from auth.identities where user_id = $1::uuid and id <> $2::uuid)"
        " update auth.users set encrypted_password = case when $3::boolean then ''"
        " else encrypted_password end where id = $1::uuid",
        (user_id, keep, "true" if clear_password else "false"),
    )


def _merge(metadata: JsonObject, updates: JsonObject) -> JsonObject:
    """GoTrue's UpdateUserMetaData (identity data never holds a top-level null to delete by)."""
    return {**metadata, **updates}


def _link_identity(
    user_id: str,
    *,
    identity_id: str,
    provider: str,
    subject: str,
    data: JsonObject,
    audit_id: str,
    request: Request,
    now: datetime,
) -> list[Statement]:
    """Insert the provider's identity for `user_id` and audit `identity_linked`."""
    return [
        sql.insert_identity(
            identity_id=identity_id,
            user_id=user_id,
            provider=provider,
            provider_id=subject,
            identity_data=data,
            last_sign_in_at=now,
            now=now,
        ),
        audit(
            user_id,
            "identity_linked",
            "user",
            entry_id=audit_id,
            request=request,
            now=now,
            traits={"identity_id": identity_id, "provider": provider},
        ),
    ]


def plan_account(
    external: ExternalUser,
    provider: str,
    request: Request,
    settings: AuthSettings,
    *,
    now: datetime,
    target: User | None = None,
) -> Flow[AccountPlan]:
    """Decide which user `external` signs in (or is linked to, for a `target`) and how.

    Raises:
        AuthError: signup_disabled, user_banned, identity_already_exists,
            provider_email_needs_verification, email_not_confirmed, or unexpected_failure
            (several accounts share the address; the provider gave no address).
    """
    if not external.emails:
        raise UnexpectedFailure("Error getting user email from external provider")
    autoconfirm = settings.autoconfirm
    verified = sorted(
        {e.address.lower() for e in external.emails if e.address and (e.verified or autoconfirm)}
    )
    primary = next((e for e in external.emails if e.primary), None)
    candidate = primary.address.lower() if primary is not None else ""
    (row,) = yield from run(
        _candidates(provider, external.subject, verified, candidate), read_only=True
    )
    assert row.rows, row
    raw_identity, raw_linked, raw_by_email, duplicate = row.rows[0]
    random = yield from draw_random(4 * UUID_BYTES)
    new_user_id, identity_id, audit_id, second_audit_id = uuids(random, 4)
    data = external.identity_data()
    email_verified = data.get("email_verified") is True
    found = sql.load_json(raw_identity)
    if target is not None:
        return _link_target(
            target, found, provider, external, data, identity_id, audit_id, request, now=now
        )
    if found is not None:
        user = sql.decode_user(_dump(found["user"]).encode())
        existing_identity = found["identity_id"]
        assert user is not None
        assert isinstance(existing_identity, str)
        decision = Decision.ACCOUNT_EXISTS
        identity_id = existing_identity
        statements: list[Statement] = [_update_identity(identity_id, data, now=now)]
    else:
        linked, by_email = _users(raw_linked), _users(raw_by_email)
        owners = linked or by_email
        if not verified or not owners:
            return _create(
                provider,
                external,
                data,
                email="" if duplicate == b"t" else candidate,
                confirmed=autoconfirm or (primary is not None and primary.verified),
                ids=(new_user_id, identity_id, audit_id),
                request=request,
                settings=settings,
                now=now,
            )
        if len({u.id for u in owners}) > 1:
            raise UnexpectedFailure(
                "Multiple accounts with the same email address in the same linking domain"
                " detected: default"
            )
        user = owners[0]
        decision = Decision.LINK_ACCOUNT
        statements = _link_identity(
            user.id,
            identity_id=identity_id,
            provider=provider,
            subject=external.subject,
            data=data,
            audit_id=audit_id,
            request=request,
            now=now,
        )
    if user.is_banned(now=now):
        raise UserBanned(status=403)
    metadata = _merge(user.user_metadata, data)
    if user.confirmed_at is None:
        # An unconfirmed account keeps only this identity, its metadata and no password.
        statements.append(
            _drop_unconfirmed(
                user.id, identity_id, clear_password=provider not in ("email", "phone")
            )
        )
        metadata = dict(data)
        if not (email_verified or autoconfirm):
            raise ProviderEmailNeedsVerification(
                f"Unverified email with {provider}. Verify the email with {provider} in order to"
                " sign in"
            )
        statements.append(sql.set_user_metadata(user.id, metadata, now=now))
        statements.append(_confirm_email(user.id, now=now))
        action = "user_signedup"
    else:
        statements.append(sql.set_user_metadata(user.id, metadata, now=now))
        action = "login"
    statements += [
        refresh_providers(user.id),
        audit(
            user.id,
            action,
            "account" if action == "login" else "team",
            entry_id=second_audit_id,
            request=request,
            now=now,
            traits={"provider": provider},
        ),
    ]
    return AccountPlan(user_id=user.id, decision=decision, statements=tuple(statements))


def _create(
    provider: str,
    external: ExternalUser,
    data: JsonObject,
    *,
    email: str,
    confirmed: bool,
    ids: tuple[str, str, str],
    request: Request,
    settings: AuthSettings,
    now: datetime,
) -> AccountPlan:
    if settings.limits.disable_signup:
        raise SignupDisabled
    if not confirmed:
        raise ProviderEmailNeedsVerification(
            f"Unverified email with {provider}. Verify the email with {provider} in order to"
            " sign in"
        )
    user_id, identity_id, audit_id = ids
    providers: list[JsonValue] = [provider]
    statements = (
        sql.insert_user(
            user_id=user_id,
            aud=settings.limits.audience,
            email=email or None,
            phone=None,
            encrypted_password=None,
            app_metadata={"provider": provider, "providers": providers},
            user_metadata=data,
            email_confirmed_at=now if email else None,
            phone_confirmed_at=None,
            last_sign_in_at=None,
            is_anonymous=False,
            now=now,
        ),
        sql.insert_identity(
            identity_id=identity_id,
            user_id=user_id,
            provider=provider,
            provider_id=external.subject,
            identity_data=data,
            last_sign_in_at=now,
            now=now,
        ),
        audit(
            user_id,
            "user_signedup",
            "team",
            entry_id=audit_id,
            request=request,
            now=now,
            traits={"provider": provider},
        ),
    )
    return AccountPlan(user_id=user_id, decision=Decision.CREATE_ACCOUNT, statements=statements)


def _link_target(
    target: User,
    found: JsonObject | None,
    provider: str,
    external: ExternalUser,
    data: JsonObject,
    identity_id: str,
    audit_id: str,
    request: Request,
    *,
    now: datetime,
) -> AccountPlan:
    """Manual linking (identity.go linkIdentityToUser)."""
    if found is not None:
        owner = found["user"]
        owner_id = owner.get("user", {}) if isinstance(owner, dict) else {}
        if isinstance(owner_id, dict) and owner_id.get("id") == target.id:
            raise IdentityAlreadyExists("Identity is already linked")
        raise IdentityAlreadyExists("Identity is already linked to another user")
    statements = _link_identity(
        target.id,
        identity_id=identity_id,
        provider=provider,
        subject=external.subject,
        data=data,
        audit_id=audit_id,
        request=request,
        now=now,
    )
    if not target.email:
        email = external.email
        if email is None or not email.verified:
            raise EmailNotConfirmed(
                f"Unverified email with {provider}. A confirmation email has been sent to your"
                f" {provider} email",
                status=422,
            )
        statements += [
            Statement(
                "update auth.users set email = $2, is_anonymous = false where id = $1::uuid",
                (target.id, email.address.lower()),
            ),
            _confirm_email(target.id, now=now),
        ]
    statements.append(refresh_providers(target.id))
    return AccountPlan(
        user_id=target.id, decision=Decision.LINK_ACCOUNT, statements=tuple(statements)
    )


def sign_in_external(
    external: ExternalUser,
    provider: str,
    request: Request,
    settings: AuthSettings,
    *,
    now: datetime,
    target: User | None = None,
    extra: tuple[Statement, ...] = (),
) -> Flow[tuple[User, Session, str]]:
    """Sign in the user of `external` (or link it to `target`) with a new `oauth` session.

    Returns the user as stored afterwards, the session and its refresh token. `extra`
    statements run in the same transaction (after the account's, before the session's).
    """
    plan = yield from plan_account(external, provider, request, settings, now=now, target=target)
    random = yield from draw_random(2 * UUID_BYTES + 8)
    session_id, claim_id = uuids(random, 2)
    token = new_refresh_token(random[2 * UUID_BYTES :])
    stub = User(id=plan.user_id, created_at=now, updated_at=now)
    fresh, session = yield from start_session(
        stub,
        method="oauth",
        provider=provider,
        ids=[session_id, claim_id],
        token=token,
        request=request,
        now=now,
        before=(*plan.statements, *extra),
    )
    if fresh is None:
        raise UnexpectedFailure("user vanished while signing in")
    return fresh, session, token
