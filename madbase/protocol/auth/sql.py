"""The SQL of the `/auth/v1` flows: statements with bind parameters, and decoders for their rows.

Every statement here is a value; `flows` bundles them into transactions so that each step of a
flow is one pipelined round trip. Rows that carry a user come back as one `jsonb` value (the
`auth.users` row, its identities and its factors, secrets left out), decoded by `decode_user`;
a session comes back with its AMR claims, decoded by `decode_session`. Timestamps are written as
ISO-8601 text parameters made from the flow's `now`, never with SQL's `now()`, so a flow driven
with an injected clock stores the times it computes with.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Final

from madbase.protocol.auth.refresh import RefreshTokenRow
from madbase.protocol.auth.tokens import Aal, AmrClaim, Factor, Identity, Session, User
from madbase.protocol.http.messages import JsonValue
from madbase.protocol.sql import Statement

__all__ = [
    "NIL_UUID",
    "SESSION_JSON",
    "USER_JSON",
    "decode_refresh_token",
    "decode_session",
    "decode_user",
    "delete_refresh_token",
    "delete_sessions",
    "dump_json",
    "insert_amr_claim",
    "insert_audit_entry",
    "insert_identity",
    "insert_refresh_token",
    "insert_session",
    "insert_user",
    "load_json",
    "record_sign_in",
    "refresh_token_state",
    "revoke_session_tokens",
    "rotate_refresh_token",
    "select_user",
    "set_password",
    "set_user_metadata",
    "stamp",
    "touch_session",
    "user_and_session",
    "user_by_email",
    "user_by_phone",
]

JsonObject = dict[str, JsonValue]

# GoTrue writes the nil UUID as `instance_id` of every row (single-instance mode).
NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"

# `u` is an `auth.users` row; the factors' secrets never leave the database.
_USER_JSON: Final = """jsonb_build_object(
  'user', to_jsonb(u),
  'identities', coalesce((select jsonb_agg(to_jsonb(i) order by i.created_at, i.id)
                          from auth.identities i where i.user_id = u.id), '[]'::jsonb),
  'factors', coalesce((select jsonb_agg(to_jsonb(f) - 'secret' order by f.created_at, f.id)
                       from auth.mfa_factors f where f.user_id = u.id), '[]'::jsonb))"""

# `s` is an `auth.sessions` row.
_SESSION_JSON: Final = """jsonb_build_object(
  'session', to_jsonb(s),
  'amr', coalesce((select jsonb_agg(jsonb_build_object('method', c.authentication_method,
                                                       'updated_at', c.updated_at)
                                    order by c.updated_at)
                   from auth.mfa_amr_claims c where c.session_id = s.id), '[]'::jsonb))"""


# Public names of the two row shapes, for the endpoint modules' own SQL modules.
USER_JSON: Final = _USER_JSON
SESSION_JSON: Final = _SESSION_JSON


def stamp(now: datetime) -> str:
    """`now` as a `timestamptz` parameter."""
    return now.astimezone(UTC).isoformat()


# --- reads -------------------------------------------------------------------------------------


def user_by_email(email: str) -> Statement:
    """The non-SSO user with this (lower-cased) email address: one row, one `jsonb`, or none."""
    return Statement(
        f"select {_USER_JSON} from auth.users u where lower(u.email) = $1"  # noqa: S608
        " and u.is_sso_user = false and u.deleted_at is null limit 1",
        (email,),
    )


def user_by_phone_change(phone: str) -> Statement:
    """The user changing its number to `phone` (GoTrue's FindUserByPhoneChangeAndAudience)."""
    return Statement(
        f"select {_USER_JSON} from auth.users u where u.phone_change = $1"  # noqa: S608
        " and u.deleted_at is null limit 1",
        (phone,),
    )


def user_by_phone(phone: str) -> Statement:
    """The user with this phone number: one row, one `jsonb`, or none."""
    return Statement(
        f"select {_USER_JSON} from auth.users u where u.phone = $1"  # noqa: S608
        " and u.deleted_at is null limit 1",
        (phone,),
    )


def user_and_session(user_id: str, session_id: str | None) -> Statement:
    """The user (`jsonb`) and whether the session exists for it (`bool`); no row: no user."""
    return Statement(
        f"select {_USER_JSON}, exists(select 1 from auth.sessions s"  # noqa: S608
        " where s.id = $2::uuid and s.user_id = u.id)"
        " from auth.users u where u.id = $1::uuid",
        (user_id, session_id),
    )


def refresh_token_state(token: str) -> Statement:
    """The presented token, its user, its session and the session's active token, as `jsonb`s.

    No row: unknown token. The user and session columns are NULL when those rows are gone.
    """
    return Statement(
        "select to_jsonb(rt),"  # noqa: S608
        f" case when u.id is null then null else {_USER_JSON} end,"
        f" case when s.id is null then null else {_SESSION_JSON} end,"
        " (select to_jsonb(a) from auth.refresh_tokens a"
        "   where a.session_id = rt.session_id and a.revoked = false order by a.id desc limit 1)"
        " from auth.refresh_tokens rt"
        " left join auth.users u on u.id::text = rt.user_id"
        " left join auth.sessions s on s.id = rt.session_id"
        " where rt.token = $1",
        (token,),
    )


def select_user(user_id: str) -> Statement:
    """The user as `jsonb` (after the writes earlier in the same transaction)."""
    return Statement(
        f"select {_USER_JSON} from auth.users u where u.id = $1::uuid",  # noqa: S608
        (user_id,),
    )


# --- writes ------------------------------------------------------------------------------------


def insert_user(
    *,
    user_id: str,
    aud: str,
    email: str | None,
    phone: str | None,
    encrypted_password: str | None,
    app_metadata: JsonObject,
    user_metadata: JsonObject,
    email_confirmed_at: datetime | None,
    phone_confirmed_at: datetime | None,
    last_sign_in_at: datetime | None,
    is_anonymous: bool,
    now: datetime,
) -> Statement:
    """A new `auth.users` row (a taken email or phone fails with SQLSTATE 23505)."""
    return Statement(
        "insert into auth.users (instance_id, id, aud, role, email, phone, encrypted_password,"
        " email_confirmed_at, phone_confirmed_at, last_sign_in_at, raw_app_meta_data,"
        " raw_user_meta_data, is_super_admin, created_at, updated_at, is_anonymous,"
        " confirmation_token, recovery_token, email_change_token_new, email_change)"
        " values ($1::uuid, $2::uuid, $3, 'authenticated', $4, $5, $6, $7::timestamptz,"
        " $8::timestamptz, $9::timestamptz, $10::jsonb, $11::jsonb, false, $12::timestamptz,"
        " $12::timestamptz, $13::boolean, '', '', '', '')",
        (
            NIL_UUID,
            user_id,
            aud,
            email,
            phone,
            encrypted_password or "",
            _opt_stamp(email_confirmed_at),
            _opt_stamp(phone_confirmed_at),
            _opt_stamp(last_sign_in_at),
            _dump(app_metadata),
            _dump(user_metadata),
            stamp(now),
            _bool(is_anonymous),
        ),
    )


def insert_identity(
    *,
    identity_id: str,
    user_id: str,
    provider: str,
    provider_id: str,
    identity_data: JsonObject,
    last_sign_in_at: datetime | None,
    now: datetime,
) -> Statement:
    """A new `auth.identities` row."""
    return Statement(
        "insert into auth.identities (id, provider_id, user_id, identity_data, provider,"
        " last_sign_in_at, created_at, updated_at)"
        " values ($1::uuid, $2, $3::uuid, $4::jsonb, $5, $6::timestamptz, $7::timestamptz,"
        " $7::timestamptz)",
        (
            identity_id,
            provider_id,
            user_id,
            _dump(identity_data),
            provider,
            _opt_stamp(last_sign_in_at),
            stamp(now),
        ),
    )


def insert_session(
    *, session_id: str, user_id: str, user_agent: str | None, ip: str | None, now: datetime
) -> Statement:
    """A new aal1 session (`ip` must be an IP address or None)."""
    return Statement(
        "insert into auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip)"
        " values ($1::uuid, $2::uuid, $3::timestamptz, $3::timestamptz, 'aal1', $4, $5::inet)",
        (session_id, user_id, stamp(now), user_agent, ip),
    )


def insert_amr_claim(*, claim_id: str, session_id: str, method: str, now: datetime) -> Statement:
    """Record how the session was authenticated."""
    return Statement(
        "insert into auth.mfa_amr_claims (id, session_id, created_at, updated_at,"
        " authentication_method) values ($1::uuid, $2::uuid, $3::timestamptz, $3::timestamptz, $4)"
        " on conflict (session_id, authentication_method)"
        " do update set updated_at = excluded.updated_at",
        (claim_id, session_id, stamp(now), method),
    )


def insert_refresh_token(
    *, token: str, user_id: str, session_id: str, parent: str | None, now: datetime
) -> Statement:
    """A new, non-revoked refresh token of the session."""
    return Statement(
        "insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at,"
        " updated_at, parent, session_id)"
        " values ($1::uuid, $2, $3, false, $4::timestamptz, $4::timestamptz, $5, $6::uuid)",
        (NIL_UUID, token, user_id, stamp(now), parent, session_id),
    )


def rotate_refresh_token(
    *, parent: RefreshTokenRow, token: str, session_id: str, now: datetime
) -> Statement:
    """Revoke `parent` and issue `token` as its child; returns the child, or no row.

    The update matches only while `parent.revoked` is what the flow read, so a concurrent
    refresh of the same token makes this return no row (the flow then reads again).
    """
    return Statement(
        "with p as (update auth.refresh_tokens set revoked = true,"
        " updated_at = case when revoked then updated_at else $1::timestamptz end"
        " where id = $2::bigint and revoked = $3::boolean returning token)"
        " insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at,"
        " updated_at, parent, session_id)"
        " select $4::uuid, $5, $6, false, $1::timestamptz, $1::timestamptz, p.token, $7::uuid"
        " from p returning token",
        (
            stamp(now),
            str(parent.id),
            _bool(parent.revoked),
            NIL_UUID,
            token,
            parent.user_id,
            session_id,
        ),
    )


def touch_session(session_id: str, *, now: datetime) -> Statement:
    """Mark the session refreshed at `now` (`refreshed_at` has no time zone: UTC)."""
    return Statement(
        "update auth.sessions set refreshed_at = ($1::timestamptz at time zone 'UTC'),"
        " updated_at = $1::timestamptz where id = $2::uuid",
        (stamp(now), session_id),
    )


def revoke_session_tokens(session_id: str, *, now: datetime) -> Statement:
    """Revoke every live refresh token of the session (reuse detected)."""
    return Statement(
        "update auth.refresh_tokens set revoked = true, updated_at = $1::timestamptz"
        " where session_id = $2::uuid and revoked = false",
        (stamp(now), session_id),
    )


def delete_refresh_token(token_id: int) -> Statement:
    """Delete a refresh token that lost its session."""
    return Statement("delete from auth.refresh_tokens where id = $1::bigint", (str(token_id),))


def record_sign_in(user_id: str, *, provider: str | None, now: datetime) -> Statement:
    """Set `last_sign_in_at` on the user and (when given) on its identity of `provider`."""
    return Statement(
        "with i as (update auth.identities set last_sign_in_at = $2::timestamptz,"
        " updated_at = $2::timestamptz where user_id = $1::uuid and provider = $3)"
        " update auth.users set last_sign_in_at = $2::timestamptz, updated_at = $2::timestamptz"
        " where id = $1::uuid",
        (user_id, stamp(now), provider),
    )


def set_password(user_id: str, encrypted_password: str, *, now: datetime | None) -> Statement:
    """Store a new password hash; `now` also moves `updated_at` (None: a silent rehash)."""
    return Statement(
        "update auth.users set encrypted_password = $2,"
        " updated_at = coalesce($3::timestamptz, updated_at) where id = $1::uuid",
        (user_id, encrypted_password, _opt_stamp(now)),
    )


def set_user_metadata(user_id: str, metadata: JsonObject, *, now: datetime) -> Statement:
    """Replace `raw_user_meta_data`."""
    return Statement(
        "update auth.users set raw_user_meta_data = $2::jsonb, updated_at = $3::timestamptz"
        " where id = $1::uuid",
        (user_id, _dump(metadata), stamp(now)),
    )


def delete_sessions(user_id: str, *, only: str | None, keep: str | None) -> Statement:
    """End the user's sessions: all, only session `only`, or all but `keep` (tokens cascade)."""
    return Statement(
        "delete from auth.sessions where user_id = $1::uuid"
        " and ($2::uuid is null or id = $2::uuid) and ($3::uuid is null or id <> $3::uuid)",
        (user_id, only, keep),
    )


def delete_audit_entry(entry_id: str) -> Statement:
    """Remove the audit entry `entry_id` (of a sign-up undone)."""
    return Statement("delete from auth.audit_log_entries where id = $1::uuid", (entry_id,))


def insert_audit_entry(
    *,
    entry_id: str,
    user_id: str,
    action: str,
    log_type: str,
    traits: JsonObject | None,
    ip: str | None,
    now: datetime,
) -> Statement:
    """An `auth.audit_log_entries` row in GoTrue's payload shape (models/audit_log_entry.go).

    The actor's username is its email (or phone), read from the row as it is at that point.
    """
    return Statement(
        "insert into auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)"
        " select $1::uuid, $2::uuid, jsonb_strip_nulls(jsonb_build_object("
        "'action', $3::text, 'actor_id', u.id, "
        "'actor_username', coalesce(nullif(u.email, ''), u.phone, ''), "
        "'actor_via_sso', u.is_sso_user, 'log_type', $4::text, 'traits', $5::jsonb))::json,"
        " $6::timestamptz, $7 from auth.users u where u.id = $8::uuid",
        (
            NIL_UUID,
            entry_id,
            action,
            log_type,
            None if traits is None else _dump(traits),
            stamp(now),
            (ip or "")[:64],
            user_id,
        ),
    )


# --- decoding ----------------------------------------------------------------------------------


def _dump(value: JsonValue) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dump_json(value: JsonValue) -> str:
    """`value` as a compact `jsonb` parameter."""
    return _dump(value)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _opt_stamp(value: datetime | None) -> str | None:
    return None if value is None else stamp(value)


def load_json(raw: bytes | None) -> JsonObject | None:
    """A `jsonb` column as an object (None for NULL)."""
    if raw is None:
        return None
    value: JsonValue = json.loads(raw)
    assert isinstance(value, dict), value
    return value


def _text(obj: JsonObject, key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def _time(obj: JsonObject, key: str) -> datetime | None:
    value = obj.get(key)
    if not isinstance(value, str):
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _required_time(obj: JsonObject, key: str, fallback: datetime) -> datetime:
    value = _time(obj, key)
    return fallback if value is None else value


def _object(obj: JsonObject, key: str) -> JsonObject:
    value = obj.get(key)
    return dict(value) if isinstance(value, dict) else {}


def _objects(obj: JsonObject, key: str) -> list[JsonObject]:
    value = obj.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def decode_user(raw: bytes | None) -> User | None:
    """The `User` of a `_USER_JSON` column (None for NULL)."""
    loaded = load_json(raw)
    if loaded is None:
        return None
    row = _object(loaded, "user")
    created = _required_time(row, "created_at", _EPOCH)
    identities = tuple(
        Identity(
            id=_text(i, "id") or "",
            provider_id=_text(i, "provider_id") or "",
            user_id=_text(i, "user_id") or "",
            provider=_text(i, "provider") or "",
            identity_data=_object(i, "identity_data"),
            created_at=_required_time(i, "created_at", created),
            updated_at=_required_time(i, "updated_at", created),
            last_sign_in_at=_time(i, "last_sign_in_at"),
            email=_text(i, "email"),
        )
        for i in _objects(loaded, "identities")
    )
    factors = tuple(
        Factor(
            id=_text(f, "id") or "",
            factor_type=_text(f, "factor_type") or "",
            status=_text(f, "status") or "",
            created_at=_required_time(f, "created_at", created),
            updated_at=_required_time(f, "updated_at", created),
            friendly_name=_text(f, "friendly_name"),
            phone=_text(f, "phone"),
            last_challenged_at=_time(f, "last_challenged_at"),
        )
        for f in _objects(loaded, "factors")
    )
    return User(
        id=_text(row, "id") or "",
        aud=_text(row, "aud") or "",
        role=_text(row, "role") or "",
        email=_text(row, "email"),
        phone=_text(row, "phone"),
        encrypted_password=_text(row, "encrypted_password"),
        email_confirmed_at=_time(row, "email_confirmed_at"),
        phone_confirmed_at=_time(row, "phone_confirmed_at"),
        invited_at=_time(row, "invited_at"),
        confirmation_sent_at=_time(row, "confirmation_sent_at"),
        recovery_sent_at=_time(row, "recovery_sent_at"),
        email_change=_text(row, "email_change") or "",
        email_change_sent_at=_time(row, "email_change_sent_at"),
        phone_change=_text(row, "phone_change") or "",
        phone_change_sent_at=_time(row, "phone_change_sent_at"),
        reauthentication_sent_at=_time(row, "reauthentication_sent_at"),
        last_sign_in_at=_time(row, "last_sign_in_at"),
        app_metadata=_object(row, "raw_app_meta_data"),
        user_metadata=_object(row, "raw_user_meta_data"),
        identities=identities,
        factors=factors,
        created_at=created,
        updated_at=_required_time(row, "updated_at", created),
        banned_until=_time(row, "banned_until"),
        deleted_at=_time(row, "deleted_at"),
        is_anonymous=row.get("is_anonymous") is True,
        is_sso_user=row.get("is_sso_user") is True,
    )


def decode_session(raw: bytes | None) -> Session | None:
    """The `Session` (with AMR claims) of a `_SESSION_JSON` column (None for NULL)."""
    loaded = load_json(raw)
    if loaded is None:
        return None
    row = _object(loaded, "session")
    created = _required_time(row, "created_at", _EPOCH)
    aal = _text(row, "aal")
    return Session(
        id=_text(row, "id") or "",
        user_id=_text(row, "user_id") or "",
        created_at=created,
        updated_at=_required_time(row, "updated_at", created),
        factor_id=_text(row, "factor_id"),
        aal=Aal(aal) if aal in {a.value for a in Aal} else None,
        not_after=_time(row, "not_after"),
        refreshed_at=_time(row, "refreshed_at"),
        user_agent=_text(row, "user_agent"),
        ip=_text(row, "ip"),
        tag=_text(row, "tag"),
        amr_claims=tuple(
            AmrClaim(
                method=_text(c, "method") or "",
                updated_at=_required_time(c, "updated_at", created),
            )
            for c in _objects(loaded, "amr")
        ),
    )


def decode_refresh_token(raw: bytes | None) -> RefreshTokenRow | None:
    """The `RefreshTokenRow` of a `to_jsonb(refresh_tokens)` column (None for NULL)."""
    row = load_json(raw)
    if row is None:
        return None
    token_id = row.get("id")
    assert isinstance(token_id, int), token_id
    created = _required_time(row, "created_at", _EPOCH)
    return RefreshTokenRow(
        id=token_id,
        token=_text(row, "token") or "",
        user_id=_text(row, "user_id") or "",
        session_id=_text(row, "session_id"),
        revoked=row.get("revoked") is True,
        created_at=created,
        updated_at=_required_time(row, "updated_at", created),
        parent=_text(row, "parent"),
    )
