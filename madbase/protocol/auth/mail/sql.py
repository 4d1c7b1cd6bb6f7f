"""The SQL of the mailing flows: one-time tokens on `auth.users` and in `auth.one_time_tokens`.

GoTrue keeps each token twice: hashed in its `auth.users` column (with the `*_sent_at` time the
expiry and the resend interval count from) and in `auth.one_time_tokens` (one row per user and
type, looked up by hash when a link is followed). Column names come from the fixed `TokenSlot`
table, never from the request; every value is a bind parameter.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Final

from madbase.protocol.auth.sql import _USER_JSON, NIL_UUID, stamp
from madbase.protocol.sql import Statement

__all__ = [
    "TokenSlot",
    "clear_all_tokens",
    "confirm_email",
    "confirm_email_change",
    "confirm_phone",
    "consume_token",
    "email_change_half",
    "email_change_status",
    "email_taken",
    "refresh_providers",
    "session_started_since",
    "set_email_change",
    "store_email_change",
    "store_token",
    "user_by_token_hash",
]


class TokenSlot(enum.Enum):
    """A token's `auth.users` column, its sent-at column and its `one_time_token_type`."""

    CONFIRMATION = ("confirmation_token", "confirmation_sent_at", "confirmation_token")
    RECOVERY = ("recovery_token", "recovery_sent_at", "recovery_token")
    REAUTHENTICATION = (
        "reauthentication_token",
        "reauthentication_sent_at",
        "reauthentication_token",
    )
    EMAIL_CHANGE_NEW = ("email_change_token_new", "email_change_sent_at", "email_change_token_new")
    EMAIL_CHANGE_CURRENT = (
        "email_change_token_current",
        "email_change_sent_at",
        "email_change_token_current",
    )
    PHONE_CHANGE = ("phone_change_token", "phone_change_sent_at", "phone_change_token")

    @property
    def column(self) -> str:
        return self.value[0]

    @property
    def sent_column(self) -> str:
        return self.value[1]

    @property
    def token_type(self) -> str:
        return self.value[2]


# Upsert of the one-time-token row of one user and type ($ott_id, $user, $type, $hash, $relates,
# $now): the unique (user_id, token_type) index replaces the previous token, as GoTrue's
# ClearOneTimeTokenForUser + CreateOneTimeToken do.
_UPSERT_OTT: Final = (
    "insert into auth.one_time_tokens (id, user_id, token_type, token_hash, relates_to,"
    " created_at, updated_at) select {id}::uuid, u.id, {type}::auth.one_time_token_type, {hash},"
    " lower({relates}), ({now}::timestamptz at time zone 'UTC'),"
    " ({now}::timestamptz at time zone 'UTC') from u{where}"
    " on conflict (user_id, token_type) do update set id = excluded.id,"
    " token_hash = excluded.token_hash, relates_to = excluded.relates_to,"
    " created_at = excluded.created_at, updated_at = excluded.updated_at returning 1"
)


def store_token(
    *,
    user_id: str,
    slot: TokenSlot,
    token_hash: str,
    relates_to: str,
    ott_id: str,
    now: datetime,
    sent_before: datetime | None,
    invited: bool = False,
) -> Statement:
    """Store a new token of `slot`; one row (the user id) when stored, none when rate-limited.

    With `sent_before`, the token is stored only if the previous one of that slot was sent no
    later than that (the per-address send interval, checked atomically); `invited` also sets
    `invited_at`.
    """
    invited_sql = ", invited_at = $2::timestamptz" if invited else ""
    upsert = _UPSERT_OTT.format(id="$5", type="$6", hash="$1", relates="$7", now="$2", where="")
    return Statement(
        f"with u as (update auth.users set {slot.column} = $1, {slot.sent_column} ="  # noqa: S608
        f" $2::timestamptz, updated_at = $2::timestamptz{invited_sql}"
        f" where id = $3::uuid and ($4::timestamptz is null or {slot.sent_column} is null"
        f" or {slot.sent_column} <= $4::timestamptz) returning id),"
        f" t as ({upsert}) select u.id from u",
        (
            token_hash,
            stamp(now),
            user_id,
            None if sent_before is None else stamp(sent_before),
            ott_id,
            slot.token_type,
            relates_to,
        ),
    )


def withdraw_token(
    *, user_id: str, slot: TokenSlot, token_hash: str, sent_before: datetime | None
) -> Statement:
    """Undo `store_token` for a token that could not be sent: while the slot still holds it, it
    is cleared and the slot's sent-at time goes back to `sent_before`, so that asking again is not
    held back by the send interval (GoTrue stores and sends in one transaction)."""
    # A phone change's new number goes with its code.
    extra = ", phone_change = ''" if slot is TokenSlot.PHONE_CHANGE else ""
    return Statement(
        f"with u as (update auth.users set {slot.column} = ''{extra},"  # noqa: S608
        f" {slot.sent_column} = $3::timestamptz where id = $1::uuid and {slot.column} = $2"
        " returning id) delete from auth.one_time_tokens where user_id = $1::uuid"
        " and token_hash = $2 and token_type = $4::auth.one_time_token_type",
        (user_id, token_hash, None if sent_before is None else stamp(sent_before), slot.token_type),
    )


def withdraw_email_change(
    *, user_id: str, new_hash: str, current_hash: str, sent_before: datetime | None
) -> Statement:
    """Undo `store_email_change` whose mails could not be sent (see `withdraw_token`): while the
    change still holds `new_hash`, it is dropped and the sent-at time put back."""
    return Statement(
        "with u as (update auth.users set email_change = '', email_change_token_new = '',"
        " email_change_token_current = '', email_change_confirm_status = 0,"
        " email_change_sent_at = $3::timestamptz"
        " where id = $1::uuid and email_change_token_new = $2 returning id)"
        " delete from auth.one_time_tokens where user_id = $1::uuid"
        " and token_hash in ($2, $4) and token_type in"
        " ('email_change_token_new', 'email_change_token_current')",
        (user_id, new_hash, None if sent_before is None else stamp(sent_before), current_hash),
    )


def store_email_change(
    *,
    user_id: str,
    new_email: str,
    new_hash: str,
    current_hash: str,
    current_email: str,
    ott_ids: tuple[str, str],
    now: datetime,
    sent_before: datetime | None,
) -> Statement:
    """Start an email change: `email_change`, both token columns (`""`: none), status 0.

    One row (the user id) when stored, none when rate-limited (see `store_token`).
    """
    new_ott = _UPSERT_OTT.format(
        id="$5",
        type="'email_change_token_new'",
        hash="$3",
        relates="$2",
        now="$6",
        where=" where $3 <> ''",
    )
    current_ott = _UPSERT_OTT.format(
        id="$7",
        type="'email_change_token_current'",
        hash="$4",
        relates="$8",
        now="$6",
        where=" where $4 <> ''",
    )
    return Statement(
        "with u as (update auth.users set email_change = $2, email_change_token_new = $3,"  # noqa: S608
        " email_change_token_current = $4, email_change_confirm_status = 0,"
        " email_change_sent_at = $6::timestamptz, updated_at = $6::timestamptz"
        " where id = $1::uuid and ($9::timestamptz is null or email_change_sent_at is null"
        " or email_change_sent_at <= $9::timestamptz) returning id),"
        " d as (delete from auth.one_time_tokens o using u where o.user_id = u.id"
        " and ((o.token_type = 'email_change_token_current' and $4 = '')"
        " or (o.token_type = 'email_change_token_new' and $3 = ''))),"
        f" n as ({new_ott}),"
        f" c as ({current_ott})"
        " select u.id from u",
        (
            user_id,
            new_email,
            new_hash,
            current_hash,
            ott_ids[0],
            stamp(now),
            ott_ids[1],
            current_email,
            None if sent_before is None else stamp(sent_before),
        ),
    )


def user_by_token_hash(
    token_hash: str, token_types: tuple[str, ...], *, address: str | None = None
) -> Statement:
    """The user (`jsonb`) holding a one-time token of one of `token_types` with this hash (sent
    to `address`, an email or a phone number, when given), and the token's type: one row, or
    none."""
    return Statement(
        f"select {_USER_JSON}, o.token_type::text from auth.one_time_tokens o"  # noqa: S608
        " join auth.users u on u.id = o.user_id"
        " where o.token_hash = $1 and o.token_type::text = any(string_to_array($2, ','))"
        " and ($3::text is null or o.relates_to = lower($3)) and u.deleted_at is null"
        " order by o.created_at desc limit 1",
        (token_hash, ",".join(token_types), address),
    )


def set_email_change(user_id: str, new_email: str) -> Statement:
    """Put `new_email` in `email_change` (confirmed at once by `confirm_email_change`)."""
    return Statement(
        "update auth.users set email_change = $2 where id = $1::uuid", (user_id, new_email)
    )


def consume_token(user_id: str, slot: TokenSlot, *, now: datetime) -> Statement:
    """Clear the user's token column of `slot` and every one-time token of the user."""
    return Statement(
        f"with u as (update auth.users set {slot.column} = '',"  # noqa: S608
        " updated_at = $2::timestamptz where id = $1::uuid returning id)"
        " delete from auth.one_time_tokens where user_id = $1::uuid",
        (user_id, stamp(now)),
    )


def confirm_email(user_id: str, *, now: datetime) -> Statement:
    """Confirm the address (models.User.Confirm): `email_verified` on the user and on the
    identity with that address, confirmation token cleared, one-time tokens deleted."""
    return Statement(
        "with u as (update auth.users set confirmation_token = '', email_confirmed_at ="
        " $2::timestamptz, raw_user_meta_data = coalesce(raw_user_meta_data, '{}'::jsonb)"
        " || '{\"email_verified\": true}'::jsonb, updated_at = $2::timestamptz"
        " where id = $1::uuid returning id, email),"
        " i as (update auth.identities i set identity_data = i.identity_data"
        " || '{\"email_verified\": true}'::jsonb, updated_at = $2::timestamptz from u"
        " where i.user_id = u.id and lower(i.identity_data->>'email') = lower(u.email))"
        " delete from auth.one_time_tokens where user_id = $1::uuid",
        (user_id, stamp(now)),
    )


def confirm_phone(user_id: str, *, now: datetime) -> Statement:
    """Confirm the phone number (models.User.ConfirmPhone): no longer anonymous, the phone
    identity's `phone_verified` set, one-time tokens deleted."""
    return Statement(
        "with u as (update auth.users set confirmation_token = '', phone_confirmed_at ="
        " $2::timestamptz, is_anonymous = false, raw_user_meta_data ="
        " coalesce(raw_user_meta_data, '{}'::jsonb) || '{\"phone_verified\": true}'::jsonb,"
        " updated_at = $2::timestamptz where id = $1::uuid returning id),"
        " i as (update auth.identities i set identity_data = i.identity_data"
        " || '{\"phone_verified\": true}'::jsonb, updated_at = $2::timestamptz from u"
        " where i.user_id = u.id and i.provider = 'phone')"
        " delete from auth.one_time_tokens where user_id = $1::uuid",
        (user_id, stamp(now)),
    )


def set_phone_change(user_id: str, phone: str) -> Statement:
    """Note the number a phone change goes to (`phone_change`), before its code is texted."""
    return Statement(
        "update auth.users set phone_change = $2 where id = $1::uuid", (user_id, phone)
    )


def set_phone(user_id: str, phone: str, *, now: datetime) -> Statement:
    """Change the number at once (phone change with autoconfirm: models.User.UpdatePhone)."""
    return Statement(
        "update auth.users set phone = $2, phone_change = '', updated_at = $3::timestamptz"
        " where id = $1::uuid",
        (user_id, phone, stamp(now)),
    )


def confirm_phone_change(user_id: str, *, identity_id: str, now: datetime) -> Statement:
    """Make `phone_change` the number (models.User.ConfirmPhoneChange): confirmed, no longer
    anonymous, tokens cleared, the phone identity updated or created."""
    return Statement(
        "with u as (update auth.users set phone = phone_change, phone_change = '',"
        " phone_change_token = '', phone_change_sent_at = null, is_anonymous = false,"
        " phone_confirmed_at = $3::timestamptz, raw_user_meta_data ="
        " coalesce(raw_user_meta_data, '{}'::jsonb) || '{\"phone_verified\": true}'::jsonb,"
        " updated_at = $3::timestamptz where id = $1::uuid and phone_change <> ''"
        " returning id, phone),"
        " d as (delete from auth.one_time_tokens where user_id = $1::uuid)"
        " insert into auth.identities (id, provider_id, user_id, identity_data, provider,"
        " created_at, updated_at) select $2::uuid, u.id::text, u.id, jsonb_build_object('sub',"
        " u.id::text, 'phone', u.phone, 'phone_verified', true), 'phone', $3::timestamptz,"
        " $3::timestamptz from u on conflict (provider_id, provider) do update set"
        " identity_data = auth.identities.identity_data || jsonb_build_object('phone',"
        " excluded.identity_data->>'phone', 'phone_verified', true),"
        " updated_at = excluded.updated_at",
        (user_id, identity_id, stamp(now)),
    )


def email_change_half(user_id: str, slot: TokenSlot, *, now: datetime) -> Statement:
    """One of the two links of a secure email change was followed: status 1, that token gone."""
    return Statement(
        "with u as (update auth.users set email_change_confirm_status = 1,"  # noqa: S608
        f" {slot.column} = '', updated_at = $3::timestamptz where id = $1::uuid returning id)"
        " delete from auth.one_time_tokens where user_id = $1::uuid"
        " and token_type = $2::auth.one_time_token_type",
        (user_id, slot.token_type, stamp(now)),
    )


def confirm_email_change(user_id: str, *, identity_id: str, now: datetime) -> Statement:
    """Make `email_change` the address (models.User.ConfirmEmailChange): tokens cleared, the
    user confirmed and no longer anonymous, the email identity updated or created."""
    return Statement(
        "with u as (update auth.users set email = email_change, email_change = '',"
        " email_change_token_current = '', email_change_token_new = '',"
        " email_change_confirm_status = 0, is_anonymous = false,"
        " email_confirmed_at = coalesce(email_confirmed_at, $3::timestamptz),"
        " raw_user_meta_data = coalesce(raw_user_meta_data, '{}'::jsonb)"
        " || '{\"email_verified\": true}'::jsonb, updated_at = $3::timestamptz"
        " where id = $1::uuid and email_change <> '' returning id, email),"
        " d as (delete from auth.one_time_tokens where user_id = $1::uuid)"
        " insert into auth.identities (id, provider_id, user_id, identity_data, provider,"
        " created_at, updated_at) select $2::uuid, u.id::text, u.id, jsonb_build_object('sub',"
        " u.id::text, 'email', u.email, 'email_verified', true), 'email', $3::timestamptz,"
        " $3::timestamptz from u on conflict (provider_id, provider) do update set"
        " identity_data = auth.identities.identity_data || jsonb_build_object('email',"
        " excluded.identity_data->>'email', 'email_verified', true),"
        " updated_at = excluded.updated_at",
        (user_id, identity_id, stamp(now)),
    )


def email_change_status(user_id: str) -> Statement:
    """The user's `email_change_confirm_status` (0: no link followed yet): one row, or none."""
    return Statement(
        "select email_change_confirm_status from auth.users where id = $1::uuid", (user_id,)
    )


def refresh_providers(user_id: str) -> Statement:
    """Set `provider`/`providers` of the app metadata from the identities (UpdateAppMetaDataProviders)."""
    return Statement(
        "update auth.users u set raw_app_meta_data = coalesce(u.raw_app_meta_data, '{}'::jsonb)"
        " || jsonb_build_object('provider', p.list->0, 'providers', p.list)"
        " from (select jsonb_agg(x.provider order by x.first) as list from (select i.provider,"
        " min(i.created_at) as first from auth.identities i where i.user_id = $1::uuid"
        " group by i.provider) x) p where u.id = $1::uuid and p.list is not null",
        (user_id,),
    )


def clear_all_tokens(user_id: str) -> Statement:
    """Forget every pending token of the user (a password change, models.User.UpdatePassword)."""
    return Statement(
        "with u as (update auth.users set confirmation_token = '', confirmation_sent_at = null,"
        " recovery_token = '', recovery_sent_at = null, email_change_token_current = '',"
        " email_change_token_new = '', email_change_sent_at = null, phone_change_token = '',"
        " phone_change_sent_at = null, reauthentication_token = '',"
        " reauthentication_sent_at = null where id = $1::uuid returning id)"
        " delete from auth.one_time_tokens where user_id = $1::uuid",
        (user_id,),
    )


def email_taken(email: str, user_id: str) -> Statement:
    """Whether another (non-SSO) user has this address: one row, one boolean."""
    return Statement(
        "select exists(select 1 from auth.users where lower(email) = lower($1)"
        " and id <> $2::uuid and is_sso_user = false and deleted_at is null)",
        (email, user_id),
    )


def session_started_since(session_id: str | None, since: datetime) -> Statement:
    """Whether the session was created after `since`: one row, one boolean; none: no session."""
    return Statement(
        "select created_at > $2::timestamptz from auth.sessions where id = $1::uuid",
        (session_id or NIL_UUID, stamp(since)),
    )
