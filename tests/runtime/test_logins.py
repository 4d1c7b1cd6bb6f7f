"""The services' database logins (runtime/logins.py, migration 0004) and the pool's reset.

A function called through the data API runs on a pooled connection; whatever it leaves behind
(`set_config(..., false)` of the role or any setting) must not reach the next borrower, and it can
never become an administrator: the data pool logs in as `authenticator`, a non-superuser that may
switch to the API roles only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import trio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from madbase.config import Config, DbSettings
from madbase.protocol.sql import DbError, Statement, Transaction
from madbase.runtime.db import Pool
from madbase.runtime.logins import (
    AUTH_LOGIN,
    DATA_LOGIN,
    login_conninfo,
    login_password,
    scram_verifier,
    set_login_passwords,
)
from madbase.runtime.migrate import migrate
from madbase.runtime.serve import open_project
from tests.conftest import PgServer

pytestmark = pytest.mark.pg

SECRET = "a-jwt-secret-of-at-least-32-characters!"

# Functions a hostile (or careless) user could expose through /rest/v1/rpc: each tries to leave
# something on the session for the next borrower of the connection.
HOSTILE_SQL = """
create function public.leave_role(r text) returns text language sql as
  $$ select set_config('role', r, false) $$;
create function public.leave_setting(n text, v text) returns text language sql as
  $$ select set_config(n, v, false) $$;
create function public.leave_then_fail() returns void language plpgsql as
  $$ begin perform set_config('role', 'service_role', false); raise exception 'boom'; end $$;
create function public.whoami() returns json language sql as $$
  select json_build_object(
    'current_user', current_user,
    'session_user', session_user,
    -- every setting not at its built-in default, with where it came from (a library loaded on
    -- the way, plpgsql's, adds settings at their defaults: not a leak)
    'settings', (select json_object_agg(name, json_build_array(setting, source) order by name)
                   from pg_settings where source <> 'default'
                    and name not like 'request.%' and name not like 'madbase.%'),
    'custom', json_build_array(
      nullif(current_setting('madbase.leak', true), ''),
      nullif(current_setting('request.jwt.claims', true), '')))
$$;
grant execute on all functions in schema public to anon, authenticated, service_role;
"""

# (function, arguments) calls; the role and setting values are what an attacker would try.
HOSTILE_CALLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("leave_role", ("service_role",)),
    ("leave_role", ("authenticated",)),
    ("leave_role", ("postgres",)),
    ("leave_role", ("supabase_auth_admin",)),
    ("leave_role", ("pg_read_server_files",)),
    ("leave_setting", ("search_path", "pg_temp")),
    ("leave_setting", ("statement_timeout", "1")),
    ("leave_setting", ("default_transaction_read_only", "on")),
    ("leave_setting", ("session_replication_role", "replica")),
    ("leave_setting", ("madbase.leak", "yes")),
    ("leave_setting", ("request.jwt.claims", '{"role":"service_role"}')),
    ("leave_then_fail", ()),
)


def call(name: str, args: tuple[str, ...], *, role: str = "anon") -> Transaction:
    """The transaction shape REST uses for an rpc call: local role and claims, then the call."""
    placeholders = ", ".join(f"${i + 1}" for i in range(len(args)))
    return Transaction(
        settings=(("role", role), ("request.jwt.claims", json.dumps({"role": role}))),
        statements=(Statement(f"select public.{name}({placeholders})::text", args),),
    )


@pytest.fixture(scope="module")
def logins(pg_server: PgServer) -> Iterator[tuple[str, str]]:
    """A migrated database with the hostile functions: (administrator, data login) conninfos."""
    admin = pg_server.conninfo(pg_server.create_database())

    async def prepare() -> None:
        pool = Pool(admin, DbSettings(pool_size=1))
        try:
            await migrate(pool)
            await set_login_passwords(pool, SECRET)
        finally:
            pool.close()

    trio.run(prepare)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(HOSTILE_SQL)
    return admin, login_conninfo(admin, DATA_LOGIN, SECRET)


async def whoami(pool: Pool) -> dict[str, object]:
    result = await pool.run(call("whoami", ()))
    assert not isinstance(result, DbError), result
    raw = result[0].rows[0][0]
    assert raw is not None
    value = json.loads(raw)
    assert isinstance(value, dict)
    return value


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(HOSTILE_CALLS), max_size=6))
@example(calls=[("leave_role", ("service_role",))])
@example(calls=[("leave_setting", ("statement_timeout", "1")), ("leave_role", ("postgres",))])
def test_pool_next_borrower_gets_the_defaults_after_any_hostile_calls(
    logins: tuple[str, str], calls: list[tuple[str, tuple[str, ...]]]
) -> None:
    async def main() -> None:
        pool = Pool(logins[1], DbSettings(pool_size=1))  # one connection: every call reuses it
        try:
            fresh = await whoami(pool)
            assert fresh["current_user"] == "anon"
            assert fresh["session_user"] == DATA_LOGIN
            for name, args in calls:
                result = await pool.run(call(name, args))
                if args and args[0] in ("postgres", "supabase_auth_admin", "pg_read_server_files"):
                    # never reachable from the data login
                    assert isinstance(result, DbError)
                    assert result.sqlstate == "42501", result
                if isinstance(result, DbError) and name != "leave_then_fail":
                    assert result.sqlstate == "42501", result  # only refusals, nothing else broke
                assert await whoami(pool) == fresh
            # No role at all (as the health check and the schema loader run): the login itself.
            plain = await pool.run(Transaction(statements=(Statement("select current_user"),)))
            assert not isinstance(plain, DbError)
            assert plain[0].rows == ((DATA_LOGIN.encode(),),)
            assert pool.statistics().idle == 1  # the same connection throughout
        finally:
            pool.close()

    trio.run(main)


def test_logins_are_not_administrators(logins: tuple[str, str]) -> None:
    with psycopg.connect(logins[0]) as conn:
        rows = conn.execute(
            "select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolbypassrls,"
            " array(select b.rolname from pg_auth_members m join pg_roles b on b.oid = m.roleid"
            "       where m.member = r.oid order by 1)"
            " from pg_roles r where rolname in ('authenticator', 'supabase_auth_admin')"
            " order by 1"
        ).fetchall()
        owners = conn.execute(
            "select distinct tableowner from pg_tables where schemaname = 'auth'"
        ).fetchall()
    assert rows == [
        (
            "authenticator",
            False,
            False,
            False,
            False,
            False,
            ["anon", "authenticated", "service_role"],
        ),
        ("supabase_auth_admin", False, False, False, False, False, []),
    ]
    assert owners == [("supabase_auth_admin",)]


def test_migration_takes_administrative_roles_away_from_authenticator(
    pg_server: PgServer,
) -> None:
    """An authenticator someone made too powerful (before MadBase met the database) is tamed."""
    admin = pg_server.conninfo(pg_server.create_database())
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "do $$ begin if not exists (select 1 from pg_roles where rolname = 'custom_api')"
            " then create role custom_api nologin; end if; end $$"
        )
        conn.execute("grant pg_read_server_files, custom_api to authenticator")

    async def main() -> None:
        pool = Pool(admin, DbSettings(pool_size=1))
        try:
            await migrate(pool)
        finally:
            pool.close()

    try:
        trio.run(main)
        with psycopg.connect(admin) as conn:
            member_of = conn.execute(
                "select b.rolname from pg_auth_members m join pg_roles b on b.oid = m.roleid"
                " join pg_roles a on a.oid = m.member where a.rolname = 'authenticator' order by 1"
            ).fetchall()
        # a custom role granted for PostgREST stays; the built-in file-reading role goes
        assert member_of == [("anon",), ("authenticated",), ("custom_api",), ("service_role",)]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("revoke custom_api from authenticator")


def test_scram_verifier_matches_rfc7677_exchange() -> None:
    """RFC 7677 §3's example: the verifier's ServerKey must produce the server's signature."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = scram_verifier("pencil", salt=salt, iterations=4096)
    method, rest = verifier.split("$", 1)
    assert method == "SCRAM-SHA-256"
    params, keys = rest.split("$")
    assert params == "4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    auth_message = (
        b"n=user,r=rOprNGfwEbeRWgbNEkqO,"
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    assert base64.b64encode(signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_key = bytes(
        a ^ b
        for a, b in zip(
            proof, hmac.new(stored_key, auth_message, hashlib.sha256).digest(), strict=True
        )
    )
    assert hashlib.sha256(client_key).digest() == stored_key


def test_login_password_depends_on_secret_and_role() -> None:
    passwords = {
        login_password(secret, role)
        for secret in (SECRET, SECRET + "x")
        for role in (DATA_LOGIN, AUTH_LOGIN)
    }
    assert len(passwords) == 4
    assert login_password(SECRET, DATA_LOGIN) == login_password(SECRET, DATA_LOGIN)
    conninfo = login_conninfo("host=/tmp port=5432 user=postgres dbname=x", DATA_LOGIN, SECRET)
    assert psycopg.conninfo.conninfo_to_dict(conninfo) == {
        "host": "/tmp",
        "port": "5432",
        "user": DATA_LOGIN,
        "dbname": "x",
        "password": login_password(SECRET, DATA_LOGIN),
    }


async def test_services_log_in_with_their_passwords_where_the_server_checks_them(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """With scram required for the service logins (as an external server would), the project
    opens, the data API and auth answer, and a wrong secret's password is refused."""
    hba = pg_server.pg.pgdata / "pg_hba.conf"
    original = hba.read_text()
    name = pg_server.create_database()
    config = Config(data_dir=tmp_path, database_url=pg_server.url(name))
    try:
        hba.write_text(
            "local all authenticator scram-sha-256\n"
            "local all supabase_auth_admin scram-sha-256\n" + original
        )
        with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
            conn.execute("select pg_reload_conf()")
        async with open_project(config) as project:
            for pool in (project.app.pool, project.auth_pool):
                result = await pool.run(Transaction(statements=(Statement("select session_user"),)))
                assert not isinstance(result, DbError)
                assert result[0].rows[0][0] in (DATA_LOGIN.encode(), AUTH_LOGIN.encode())
            secret = project.secrets.jwt_secret
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(login_conninfo(pg_server.conninfo(name), DATA_LOGIN, secret + "x"))
        psycopg.connect(login_conninfo(pg_server.conninfo(name), DATA_LOGIN, secret)).close()
    finally:
        hba.write_text(original)
        with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
            conn.execute("select pg_reload_conf()")
