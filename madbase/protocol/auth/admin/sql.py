"""The SQL of the admin users API (`admin.flows`): listing, field updates, identities, deletion.

Statements with bind parameters only. Metadata merges are computed by the flow (as GoTrue merges
in Go) and written whole; `updated_at` moves with every write, as pop's UpdateOnly moves it.
"""

from __future__ import annotations

from datetime import datetime

from madbase.protocol.auth.sql import NIL_UUID, dump_json, stamp
from madbase.protocol.http.messages import JsonValue
from madbase.protocol.sql import Statement

__all__ = [
    "admin_audit",
    "clear_one_time_tokens",
    "confirm_email",
    "confirm_phone",
    "delete_user",
    "delete_user_factors",
    "list_users",
    "reset_password",
    "set_app_metadata",
    "set_banned_until",
    "set_contact",
    "set_not_anonymous",
    "set_role",
    "soft_delete_identity",
    "soft_delete_user",
    "upsert_identity",
]

JsonObject = dict[str, JsonValue]


def list_users(*, aud: str, search: str, ascending: bool, limit: int, offset: int) -> Statement:
    """The number of users of `aud` matching `search` and one page of them as a `jsonb` array.

    Like GoTrue's FindUsersInAudience (no eager loading), the users come without identities
    and factors; `search` matches the email (LIKE) or `full_name` (ILIKE) anywhere.
    """
    direction = "asc" if ascending else "desc"  # one of two fixed words, never client text
    where = (
        "u.instance_id = $1::uuid and u.aud = $2 and ($3 = ''"
        " or u.email like '%' || $3 || '%' or u.raw_user_meta_data ->> 'full_name' ilike"
        " '%' || $3 || '%')"
    )
    return Statement(
        f"select (select count(*) from auth.users u where {where}),"  # noqa: S608
        " coalesce((select jsonb_agg(jsonb_build_object('user', to_jsonb(p))"
        f" order by p.created_at {direction}) from (select u.* from auth.users u where {where}"
        f" order by u.created_at {direction} limit $4::bigint offset $5::bigint) p), '[]'::jsonb)",
        (NIL_UUID, aud, search, str(limit), str(offset)),
    )


def admin_audit(
    *,
    entry_id: str,
    actor_role: str,
    action: str,
    log_type: str,
    traits: JsonObject,
    ip: str | None,
    now: datetime,
) -> Statement:
    """An audit entry whose actor is the admin token (GoTrue: nil id, the role as username)."""
    payload: JsonObject = {
        "action": action,
        "actor_id": NIL_UUID,
        "actor_username": actor_role,
        "actor_via_sso": False,
        "log_type": log_type,
        "traits": traits,
    }
    return Statement(
        "insert into auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)"
        " values ($1::uuid, $2::uuid, $3::json, $4::timestamptz, $5)",
        (NIL_UUID, entry_id, dump_json(payload), stamp(now), (ip or "")[:64]),
    )


def set_role(user_id: str, role: str, *, now: datetime) -> Statement:
    """Set the user's role (the `role` claim of its tokens)."""
    return Statement(
        "update auth.users set role = $2, updated_at = $3::timestamptz where id = $1::uuid",
        (user_id, role, stamp(now)),
    )


def clear_one_time_tokens(user_id: str) -> Statement:
    """Forget every pending one-time token of the user (models.ClearAllOneTimeTokensForUser)."""
    return Statement("delete from auth.one_time_tokens where user_id = $1::uuid", (user_id,))


def confirm_email(user_id: str, *, now: datetime) -> Statement:
    """models.User.Confirm (the metadata's `email_verified` is written by the flow)."""
    return Statement(
        "update auth.users set email_confirmed_at = $2::timestamptz, confirmation_token = '',"
        " updated_at = $2::timestamptz where id = $1::uuid",
        (user_id, stamp(now)),
    )


def confirm_phone(user_id: str, *, now: datetime) -> Statement:
    """models.User.ConfirmPhone."""
    return Statement(
        "update auth.users set phone_confirmed_at = $2::timestamptz, confirmation_token = '',"
        " updated_at = $2::timestamptz where id = $1::uuid",
        (user_id, stamp(now)),
    )


def set_app_metadata(user_id: str, metadata: JsonObject, *, now: datetime) -> Statement:
    """Replace `raw_app_meta_data`."""
    return Statement(
        "update auth.users set raw_app_meta_data = $2::jsonb, updated_at = $3::timestamptz"
        " where id = $1::uuid",
        (user_id, dump_json(metadata), stamp(now)),
    )


def set_banned_until(user_id: str, until: datetime | None, *, now: datetime) -> Statement:
    """Ban the user until `until` (None lifts the ban)."""
    return Statement(
        "update auth.users set banned_until = $2::timestamptz, updated_at = $3::timestamptz"
        " where id = $1::uuid",
        (user_id, None if until is None else stamp(until), stamp(now)),
    )


def reset_password(user_id: str, encrypted_password: str, *, now: datetime) -> Statement:
    """models.User.UpdatePassword: new hash, pending tokens and their send times cleared."""
    return Statement(
        "update auth.users set encrypted_password = $2, confirmation_token = '',"
        " confirmation_sent_at = null, recovery_token = '', recovery_sent_at = null,"
        " email_change_token_current = '', email_change_token_new = '',"
        " email_change_sent_at = null, phone_change_token = '', phone_change_sent_at = null,"
        " reauthentication_token = '', reauthentication_sent_at = null,"
        " updated_at = $3::timestamptz where id = $1::uuid",
        (user_id, encrypted_password, stamp(now)),
    )


def set_contact(user_id: str, *, column: str, value: str, now: datetime) -> Statement:
    """Set `email` or `phone` (a taken one fails with SQLSTATE 23505)."""
    assert column in ("email", "phone"), column  # our own constant, never client text
    return Statement(
        f"update auth.users set {column} = $2, updated_at = $3::timestamptz"  # noqa: S608
        " where id = $1::uuid",
        (user_id, value, stamp(now)),
    )


def set_not_anonymous(user_id: str, *, now: datetime) -> Statement:
    """An anonymous user with a confirmed address is anonymous no more."""
    return Statement(
        "update auth.users set is_anonymous = false, updated_at = $2::timestamptz"
        " where id = $1::uuid",
        (user_id, stamp(now)),
    )


def upsert_identity(
    *,
    identity_id: str,
    user_id: str,
    provider: str,
    new_data: JsonObject,
    merge: JsonObject,
    now: datetime,
) -> Statement:
    """Merge `merge` into the user's `provider` identity, or create it with `new_data`."""
    return Statement(
        "with u as (update auth.identities set identity_data = identity_data || $5::jsonb,"
        " updated_at = $6::timestamptz where user_id = $2::uuid and provider_id = $2"
        " and provider = $3 returning 1)"
        " insert into auth.identities (id, provider_id, user_id, identity_data, provider,"
        " last_sign_in_at, created_at, updated_at)"
        " select $1::uuid, $2, $2::uuid, $4::jsonb, $3, $6::timestamptz, $6::timestamptz,"
        " $6::timestamptz where not exists (select 1 from u)",
        (identity_id, user_id, provider, dump_json(new_data), dump_json(merge), stamp(now)),
    )


def soft_delete_user(
    user_id: str,
    *,
    email: str,
    phone: str,
    email_change: str,
    phone_change: str,
    now: datetime,
) -> Statement:
    """models.User.SoftDeleteUser: obfuscated contacts, no password, no tokens, empty metadata."""
    return Statement(
        "update auth.users set email = $2, phone = $3, email_change = $4, phone_change = $5,"
        " encrypted_password = null, confirmation_token = '', recovery_token = '',"
        " email_change_token_current = '', email_change_token_new = '', phone_change_token = '',"
        " raw_user_meta_data = '{}'::jsonb, raw_app_meta_data = '{}'::jsonb,"
        " deleted_at = $6::timestamptz, updated_at = $6::timestamptz where id = $1::uuid",
        (user_id, email, phone, email_change, phone_change, stamp(now)),
    )


def soft_delete_identity(identity_id: str, provider_id: str, *, now: datetime) -> Statement:
    """models.User.SoftDeleteUserIdentities for one identity: empty data, obfuscated subject."""
    return Statement(
        "update auth.identities set identity_data = '{}'::jsonb, provider_id = $2,"
        " updated_at = $3::timestamptz where id = $1::uuid",
        (identity_id, provider_id, stamp(now)),
    )


def delete_user(user_id: str) -> Statement:
    """Delete the user; identities, sessions (and so refresh tokens) and factors cascade."""
    return Statement("delete from auth.users where id = $1::uuid", (user_id,))


def delete_user_factors(user_id: str) -> Statement:
    """Drop every factor of the user (models.DeleteFactorsByUserId)."""
    return Statement("delete from auth.mfa_factors where user_id = $1::uuid", (user_id,))
