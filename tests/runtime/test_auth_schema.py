"""Migration 0003: GoTrue's `auth` schema as Supabase has it, loading Supabase dumps, locked to the API roles.

The expected shapes below are written from supabase/auth `migrations/` (up to
20260625000000_add_custom_claims_allowlist), not read back from our SQL file.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from madbase.config import DbSettings
from madbase.runtime.db import Pool
from madbase.runtime.migrate import load_migrations, migrate

pytestmark = pytest.mark.pg

DUMP = Path(__file__).parent.parent / "data" / "auth" / "supabase_users_dump.sql"
ALICE = "7cf66202-56e8-4531-a415-dddd2acbbe6c"
BOB = "e1d6513b-a56e-4abf-9c9c-2c7f05e48737"
LATEST_GOTRUE_MIGRATION = "20260625000000"

TABLES = frozenset(
    {
        "audit_log_entries",
        "custom_oauth_providers",
        "flow_state",
        "identities",
        "instances",
        "mfa_amr_claims",
        "mfa_challenges",
        "mfa_factors",
        "oauth_authorizations",
        "oauth_client_states",
        "oauth_clients",
        "oauth_consents",
        "one_time_tokens",
        "refresh_tokens",
        "saml_providers",
        "saml_relay_states",
        "schema_migrations",
        "sessions",
        "sso_domains",
        "sso_providers",
        "users",
        "webauthn_challenges",
        "webauthn_credentials",
    }
)

# GoTrue turned RLS on for the tables it had in 2024-06; later tables were created without it.
RLS_TABLES = TABLES - {
    "custom_oauth_providers",
    "oauth_authorizations",
    "oauth_client_states",
    "oauth_clients",
    "oauth_consents",
    "webauthn_challenges",
    "webauthn_credentials",
}

TSTZ = "timestamp with time zone"
VARCHAR = "character varying(255)"
VARCHAR_EMPTY = "default ''::character varying"

# One line per column, in table order: "name type [not null] [default ...] [generated ...]".
COLUMNS: dict[str, list[str]] = {
    "users": [
        "instance_id uuid",
        "id uuid not null",
        f"aud {VARCHAR}",
        f"role {VARCHAR}",
        f"email {VARCHAR}",
        f"encrypted_password {VARCHAR}",
        f"email_confirmed_at {TSTZ}",
        f"invited_at {TSTZ}",
        f"confirmation_token {VARCHAR}",
        f"confirmation_sent_at {TSTZ}",
        f"recovery_token {VARCHAR}",
        f"recovery_sent_at {TSTZ}",
        f"email_change_token_new {VARCHAR}",
        f"email_change {VARCHAR}",
        f"email_change_sent_at {TSTZ}",
        f"last_sign_in_at {TSTZ}",
        "raw_app_meta_data jsonb",
        "raw_user_meta_data jsonb",
        "is_super_admin boolean",
        f"created_at {TSTZ}",
        f"updated_at {TSTZ}",
        "phone text default NULL::character varying",
        f"phone_confirmed_at {TSTZ}",
        f"phone_change text {VARCHAR_EMPTY}",
        f"phone_change_token {VARCHAR} {VARCHAR_EMPTY}",
        f"phone_change_sent_at {TSTZ}",
        f"confirmed_at {TSTZ} generated LEAST(email_confirmed_at, phone_confirmed_at)",
        f"email_change_token_current {VARCHAR} {VARCHAR_EMPTY}",
        "email_change_confirm_status smallint default 0",
        f"banned_until {TSTZ}",
        f"reauthentication_token {VARCHAR} {VARCHAR_EMPTY}",
        f"reauthentication_sent_at {TSTZ}",
        "is_sso_user boolean not null default false",
        f"deleted_at {TSTZ}",
        "is_anonymous boolean not null default false",
    ],
    "identities": [
        "provider_id text not null",
        "user_id uuid not null",
        "identity_data jsonb not null",
        "provider text not null",
        f"last_sign_in_at {TSTZ}",
        f"created_at {TSTZ}",
        f"updated_at {TSTZ}",
        "email text generated lower((identity_data ->> 'email'::text))",
        "id uuid not null default gen_random_uuid()",
    ],
    "sessions": [
        "id uuid not null",
        "user_id uuid not null",
        f"created_at {TSTZ}",
        f"updated_at {TSTZ}",
        "factor_id uuid",
        "aal auth.aal_level",
        f"not_after {TSTZ}",
        "refreshed_at timestamp without time zone",
        "user_agent text",
        "ip inet",
        "tag text",
        "oauth_client_id uuid",
        "refresh_token_hmac_key text",
        "refresh_token_counter bigint",
        "scopes text",
    ],
    "refresh_tokens": [
        "instance_id uuid",
        "id bigint not null default nextval('auth.refresh_tokens_id_seq'::regclass)",
        f"token {VARCHAR}",
        f"user_id {VARCHAR}",
        "revoked boolean",
        f"created_at {TSTZ}",
        f"updated_at {TSTZ}",
        f"parent {VARCHAR}",
        "session_id uuid",
    ],
    "mfa_factors": [
        "id uuid not null",
        "user_id uuid not null",
        "friendly_name text",
        "factor_type auth.factor_type not null",
        "status auth.factor_status not null",
        f"created_at {TSTZ} not null",
        f"updated_at {TSTZ} not null",
        "secret text",
        "phone text",
        f"last_challenged_at {TSTZ}",
        "web_authn_credential jsonb",
        "web_authn_aaguid uuid",
        "last_webauthn_challenge_data jsonb",
    ],
    "flow_state": [
        "id uuid not null",
        "user_id uuid",
        "auth_code text",
        "code_challenge_method auth.code_challenge_method",
        "code_challenge text",
        "provider_type text not null",
        "provider_access_token text",
        "provider_refresh_token text",
        f"created_at {TSTZ}",
        f"updated_at {TSTZ}",
        "authentication_method text not null",
        f"auth_code_issued_at {TSTZ}",
        "invite_token text",
        "referrer text",
        "oauth_client_state_id uuid",
        "linking_target_id uuid",
        "email_optional boolean not null default false",
    ],
    "one_time_tokens": [
        "id uuid not null",
        "user_id uuid not null",
        "token_type auth.one_time_token_type not null",
        "token_hash text not null",
        "relates_to text not null",
        "created_at timestamp without time zone not null default now()",
        "updated_at timestamp without time zone not null default now()",
    ],
}

ENUMS = {
    "aal_level": ["aal1", "aal2", "aal3"],
    "code_challenge_method": ["s256", "plain"],
    "factor_status": ["unverified", "verified"],
    "factor_type": ["totp", "webauthn", "phone"],
    "oauth_authorization_status": ["pending", "approved", "denied", "expired"],
    "oauth_client_type": ["public", "confidential"],
    "oauth_registration_type": ["dynamic", "manual"],
    "oauth_response_type": ["code"],
    "one_time_token_type": [
        "confirmation_token",
        "reauthentication_token",
        "recovery_token",
        "email_change_token_new",
        "email_change_token_current",
        "phone_change_token",
    ],
}

# (table, constraint, referenced table); every one of them is ON DELETE CASCADE.
FOREIGN_KEYS = {
    ("identities", "identities_user_id_fkey", "users"),
    ("mfa_amr_claims", "mfa_amr_claims_session_id_fkey", "sessions"),
    ("mfa_challenges", "mfa_challenges_auth_factor_id_fkey", "mfa_factors"),
    ("mfa_factors", "mfa_factors_user_id_fkey", "users"),
    ("oauth_authorizations", "oauth_authorizations_client_id_fkey", "oauth_clients"),
    ("oauth_authorizations", "oauth_authorizations_user_id_fkey", "users"),
    ("oauth_consents", "oauth_consents_client_id_fkey", "oauth_clients"),
    ("oauth_consents", "oauth_consents_user_id_fkey", "users"),
    ("one_time_tokens", "one_time_tokens_user_id_fkey", "users"),
    ("refresh_tokens", "refresh_tokens_session_id_fkey", "sessions"),
    ("saml_providers", "saml_providers_sso_provider_id_fkey", "sso_providers"),
    ("saml_relay_states", "saml_relay_states_flow_state_id_fkey", "flow_state"),
    ("saml_relay_states", "saml_relay_states_sso_provider_id_fkey", "sso_providers"),
    ("sessions", "sessions_oauth_client_id_fkey", "oauth_clients"),
    ("sessions", "sessions_user_id_fkey", "users"),
    ("sso_domains", "sso_domains_sso_provider_id_fkey", "sso_providers"),
    ("webauthn_challenges", "webauthn_challenges_user_id_fkey", "users"),
    ("webauthn_credentials", "webauthn_credentials_user_id_fkey", "users"),
}

# Indexes GoTrue code and Supabase tooling rely on by name (partial and expression ones included).
INDEXES = {
    "users": {
        "users_pkey",
        "users_phone_key",
        "users_email_partial_key",
        "users_instance_id_idx",
        "users_instance_id_email_idx",
        "users_is_anonymous_idx",
        "confirmation_token_idx",
        "recovery_token_idx",
        "email_change_token_current_idx",
        "email_change_token_new_idx",
        "reauthentication_token_idx",
    },
    "identities": {
        "identities_pkey",
        "identities_provider_id_provider_unique",
        "identities_user_id_idx",
        "identities_email_idx",
    },
    "sessions": {
        "sessions_pkey",
        "sessions_user_id_idx",
        "user_id_created_at_idx",
        "sessions_not_after_idx",
        "sessions_oauth_client_id_idx",
    },
    "refresh_tokens": {
        "refresh_tokens_pkey",
        "refresh_tokens_token_unique",
        "refresh_tokens_instance_id_idx",
        "refresh_tokens_instance_id_user_id_idx",
        "refresh_tokens_parent_idx",
        "refresh_tokens_session_id_revoked_idx",
        "refresh_tokens_updated_at_idx",
    },
    "mfa_factors": {
        "mfa_factors_pkey",
        "mfa_factors_last_challenged_at_key",
        "mfa_factors_user_friendly_name_unique",
        "unique_phone_factor_per_user",
        "factor_id_created_at_idx",
        "mfa_factors_user_id_idx",
    },
    "flow_state": {
        "flow_state_pkey",
        "idx_auth_code",
        "idx_user_id_auth_method",
        "flow_state_created_at_idx",
    },
    "one_time_tokens": {
        "one_time_tokens_pkey",
        "one_time_tokens_token_hash_hash_idx",
        "one_time_tokens_relates_to_hash_idx",
        "one_time_tokens_user_id_token_type_key",
    },
}

COLUMNS_QUERY = """
select column_name
       || ' ' || case when data_type = 'USER-DEFINED' then udt_schema || '.' || udt_name
                      when character_maximum_length is not null
                        then data_type || '(' || character_maximum_length || ')'
                      else data_type end
       || case when is_nullable = 'NO' then ' not null' else '' end
       || coalesce(' default ' || column_default, '')
       || coalesce(' generated ' || generation_expression, '')
  from information_schema.columns
 where table_schema = 'auth' and table_name = %s
 order by ordinal_position
"""

# Everything 0003 defines, as text lines, to compare before and after running it again.
SNAPSHOT_QUERY = """
select line from (
  select 'column ' || table_name || ' ' || ordinal_position || ' ' || column_name || ' '
         || data_type || ' ' || udt_name || ' ' || is_nullable || ' '
         || coalesce(character_maximum_length::text, '') || ' ' || coalesce(column_default, '')
         || ' ' || coalesce(generation_expression, '') as line
    from information_schema.columns where table_schema = 'auth'
  union all
  select 'index ' || indexdef from pg_indexes where schemaname = 'auth'
  union all
  select 'constraint ' || conrelid::regclass::text || ' ' || conname || ' '
         || pg_get_constraintdef(oid)
    from pg_constraint where connamespace = 'auth'::regnamespace
  union all
  select 'enum ' || t.typname || ' ' || e.enumsortorder || ' ' || e.enumlabel
    from pg_enum e join pg_type t on t.oid = e.enumtypid
   where t.typnamespace = 'auth'::regnamespace
  union all
  select 'relation ' || relname || ' ' || relkind::text || ' ' || relrowsecurity || ' '
         || coalesce(relacl::text, '') || ' ' || coalesce(obj_description(oid, 'pg_class'), '')
    from pg_class where relnamespace = 'auth'::regnamespace
) lines order by line
"""


async def migrated(database: str) -> None:
    pool = Pool(database, DbSettings())
    await migrate(pool)
    pool.close()


def snapshot(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        return [row[0] for row in conn.execute(SNAPSHOT_QUERY)]


def insert_user(conn: psycopg.Connection, user_id: str, email: str) -> None:
    conn.execute(
        "insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data,"
        " raw_user_meta_data, created_at, updated_at)"
        " values ('00000000-0000-0000-0000-000000000000', %s, 'authenticated',"
        " 'authenticated', %s, '{}', '{}', now(), now())",
        (user_id, email),
    )


async def test_auth_schema_creates_gotrue_tables_and_enums(database: str) -> None:
    await migrated(database)
    with psycopg.connect(database) as conn:
        tables: dict[str, bool] = dict(
            conn.execute(
                "select relname, relrowsecurity from pg_class"
                " where relnamespace = 'auth'::regnamespace and relkind = 'r'"
            ).fetchall()
        )
        assert set(tables) == TABLES
        assert {name for name, rls in tables.items() if rls} == RLS_TABLES
        enums: dict[str, list[str]] = {}
        for name, label in conn.execute(
            "select t.typname, e.enumlabel from pg_enum e join pg_type t on t.oid = e.enumtypid"
            " where t.typnamespace = 'auth'::regnamespace order by t.typname, e.enumsortorder"
        ):
            enums.setdefault(name, []).append(label)
        assert enums == ENUMS


@pytest.mark.parametrize("table", sorted(COLUMNS))
async def test_auth_table_columns_match_gotrue(database: str, table: str) -> None:
    await migrated(database)
    with psycopg.connect(database) as conn:
        columns = [row[0] for row in conn.execute(COLUMNS_QUERY, (table,))]
        indexes = {
            row[0]
            for row in conn.execute(
                "select indexname from pg_indexes where schemaname = 'auth' and tablename = %s",
                (table,),
            )
        }
    assert columns == COLUMNS[table]
    assert indexes == INDEXES[table]


async def test_auth_foreign_keys_cascade_as_gotrue_defines(database: str) -> None:
    await migrated(database)
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "select c.conrelid::regclass::text, c.conname, c.confrelid::regclass::text,"
            " c.confdeltype from pg_constraint c"
            " where c.contype = 'f' and c.connamespace = 'auth'::regnamespace"
        ).fetchall()
    assert {(t.removeprefix("auth."), n, r.removeprefix("auth.")) for t, n, r, _ in rows} == (
        FOREIGN_KEYS
    )
    assert {action for *_, action in rows} == {"c"}


async def test_generated_columns_follow_their_sources(database: str) -> None:
    await migrated(database)
    user = "11111111-1111-4111-8111-111111111111"
    with psycopg.connect(database) as conn:
        insert_user(conn, user, "carol@example.com")
        confirmed = "select confirmed_at from auth.users where id = %s"
        assert conn.execute(confirmed, (user,)).fetchone() == (None,)
        conn.execute(
            "update auth.users set phone_confirmed_at = '2025-01-02T00:00:00Z' where id = %s",
            (user,),
        )
        row = conn.execute(
            "select confirmed_at = '2025-01-02T00:00:00Z'::timestamptz"
            " from auth.users where id = %s",
            (user,),
        ).fetchone()
        assert row == (True,)
        conn.execute(
            "update auth.users set email_confirmed_at = '2025-01-01T00:00:00Z' where id = %s",
            (user,),
        )
        row = conn.execute(
            "select confirmed_at = least(email_confirmed_at, phone_confirmed_at),"
            " confirmed_at = '2025-01-01T00:00:00Z'::timestamptz from auth.users where id = %s",
            (user,),
        ).fetchone()
        assert row == (True, True)

        conn.execute(
            "insert into auth.identities (provider_id, user_id, identity_data, provider)"
            " values (%s, %s, %s, 'email'), ('gh-42', %s, '{\"sub\": \"gh-42\"}', 'github')",
            (user, user, '{"sub": "x", "email": "Carol@Example.COM"}', user),
        )
        rows = conn.execute(
            "select provider, email, id is not null from auth.identities"
            " where user_id = %s order by provider",
            (user,),
        ).fetchall()
        assert rows == [("email", "carol@example.com", True), ("github", None, True)]
        with pytest.raises(psycopg.errors.GeneratedAlways):
            conn.execute("update auth.identities set email = 'x@y.z'")


async def test_deleting_a_user_cascades_to_its_auth_rows(database: str) -> None:
    await migrated(database)
    user = "22222222-2222-4222-8222-222222222222"
    other = "33333333-3333-4333-8333-333333333333"
    session = "44444444-4444-4444-8444-444444444444"
    factor = "55555555-5555-4555-8555-555555555555"
    with psycopg.connect(database) as conn:
        insert_user(conn, user, "dave@example.com")
        insert_user(conn, other, "erin@example.com")
        for uid in (user, other):
            conn.execute(
                "insert into auth.identities (provider_id, user_id, identity_data, provider)"
                " values (%s, %s, '{}', 'email')",
                (uid, uid),
            )
        conn.execute(
            "insert into auth.sessions (id, user_id, created_at, aal) values (%s, %s, now(), 'aal1')",
            (session, user),
        )
        conn.execute(
            "insert into auth.refresh_tokens (token, user_id, revoked, session_id)"
            " values ('tok-1', %s, true, %s), ('tok-2', %s, false, %s)",
            (user, session, user, session),
        )
        # A token without a session has no foreign key to the user (user_id is text in GoTrue).
        conn.execute(
            "insert into auth.refresh_tokens (token, user_id, revoked) values ('orphan', %s, false)",
            (user,),
        )
        conn.execute(
            "insert into auth.mfa_amr_claims (session_id, created_at, updated_at,"
            " authentication_method, id) values (%s, now(), now(), 'password', gen_random_uuid())",
            (session,),
        )
        conn.execute(
            "insert into auth.mfa_factors (id, user_id, factor_type, status, created_at, updated_at)"
            " values (%s, %s, 'totp', 'verified', now(), now())",
            (factor, user),
        )
        conn.execute(
            "insert into auth.mfa_challenges (id, factor_id, created_at, ip_address)"
            " values (gen_random_uuid(), %s, now(), '192.0.2.1')",
            (factor,),
        )
        conn.execute(
            "insert into auth.one_time_tokens (id, user_id, token_type, token_hash, relates_to)"
            " values (gen_random_uuid(), %s, 'recovery_token', 'abc123', 'dave@example.com')",
            (user,),
        )

        conn.execute("delete from auth.users where id = %s", (user,))

        counts = conn.execute(
            "select (select count(*) from auth.identities where user_id = %(u)s),"
            " (select count(*) from auth.sessions),"
            " (select count(*) from auth.mfa_amr_claims),"
            " (select count(*) from auth.mfa_factors),"
            " (select count(*) from auth.mfa_challenges),"
            " (select count(*) from auth.one_time_tokens),"
            " (select array_agg(token) from auth.refresh_tokens),"
            " (select count(*) from auth.identities where user_id = %(o)s)",
            {"u": user, "o": other},
        ).fetchone()
        assert counts == (0, 0, 0, 0, 0, 0, ["orphan"], 1)


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
async def test_api_roles_cannot_read_auth_tables(database: str, role: str) -> None:
    await migrated(database)
    with psycopg.connect(database) as conn:
        granted = conn.execute(
            "select c.relname, p.privilege from pg_class c,"
            " unnest(array['select', 'insert', 'update', 'delete', 'truncate', 'references',"
            " 'trigger']) as p(privilege)"
            " where c.relnamespace = 'auth'::regnamespace and c.relkind = 'r'"
            " and has_table_privilege(%s, c.oid, p.privilege)",
            (role,),
        ).fetchall()
        assert granted == []
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
        # the helper functions stay usable: that is what the API roles get from the auth schema
        assert conn.execute("select auth.uid()").fetchone() == (None,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as excinfo:
            conn.execute("select id from auth.users")
        assert excinfo.value.sqlstate == "42501"


async def test_supabase_data_only_dump_loads(database: str) -> None:
    await migrated(database)
    with psycopg.connect(database) as conn:
        # pg_dump --data-only --column-inserts: plain statements, no parameters.
        conn.execute(DUMP.read_text(encoding="utf-8"))
        conn.commit()
    with psycopg.connect(database) as conn:
        users = conn.execute(
            "select email, left(encrypted_password, 7) = '$2a$10$', confirmed_at = email_confirmed_at,"
            " raw_app_meta_data ->> 'provider', is_anonymous"
            " from auth.users order by email"
        ).fetchall()
        assert users == [
            ("alice@example.com", True, True, "email", False),
            ("bob@example.com", True, None, "email", False),
        ]
        identities = conn.execute(
            "select i.email, i.provider, i.provider_id = u.id::text from auth.identities i"
            " join auth.users u on u.id = i.user_id order by i.email"
        ).fetchall()
        assert identities == [
            ("alice@example.com", "email", True),
            ("bob@example.com", "email", True),
        ]
        tokens = conn.execute(
            "select r.id, r.token, r.parent, r.revoked, s.aal::text, s.user_id::text"
            " from auth.refresh_tokens r join auth.sessions s on s.id = r.session_id order by r.id"
        ).fetchall()
        assert tokens == [
            (1, "q4x7mvb2kd9z", None, True, "aal1", ALICE),
            (2, "w8n3hj5tcr1p", "q4x7mvb2kd9z", False, "aal1", ALICE),
        ]
        # the dump's setval carries over: the next token does not collide with the loaded ones
        assert conn.execute("select nextval('auth.refresh_tokens_id_seq')").fetchone() == (3,)
        actions = [
            row[0]
            for row in conn.execute(
                "select payload ->> 'action' from auth.audit_log_entries order by created_at"
            )
        ]
        assert actions == [
            "user_signedup",
            "login",
            "token_refreshed",
            "token_revoked",
            "user_confirmation_requested",
        ]
        assert conn.execute(
            "select user_id::text, token_type::text from auth.one_time_tokens"
        ).fetchall() == [(BOB, "confirmation_token")]
        assert conn.execute("select authentication_method from auth.mfa_amr_claims").fetchall() == [
            ("password",)
        ]
        versions = {row[0] for row in conn.execute("select version from auth.schema_migrations")}
        assert {"00", "20171026211738", LATEST_GOTRUE_MIGRATION} <= versions


async def test_auth_schema_sql_is_idempotent(database: str) -> None:
    pool = Pool(database, DbSettings())
    await migrate(pool)
    (migration,) = [m for m in load_migrations() if m.version == "0003_auth_schema"]
    before = snapshot(database)
    assert len([line for line in before if line.startswith("column ")]) > 200
    assert await pool.execute_script(migration.sql) is None
    assert snapshot(database) == before
    # also with data in the tables
    with psycopg.connect(database) as conn:
        conn.execute(DUMP.read_text(encoding="utf-8"))
    assert await pool.execute_script(migration.sql) is None
    assert snapshot(database) == before
    pool.close()
