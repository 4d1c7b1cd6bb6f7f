"""Bootstrap migrations: Supabase's roles, schemas, grants and helpers; applying twice changes nothing."""

from __future__ import annotations

import psycopg
import pytest

from madbase.config import DbSettings
from madbase.runtime.db import Pool
from madbase.runtime.migrate import Migration, MigrationError, load_migrations, migrate

pytestmark = pytest.mark.pg

# Everything the bootstrap creates or changes, as text, to compare before and after a re-run.
CATALOG_FINGERPRINT = """
select string_agg(line, E'\\n' order by line) from (
  select 'role ' || rolname || ' ' || concat_ws(',', rolcanlogin, rolinherit, rolbypassrls, rolsuper) || ' '
         || coalesce(array_to_string(rolconfig, ','), '') as line
    from pg_roles where rolname not like 'pg\\_%'
  union all
  select 'member ' || r.rolname || ' in ' || g.rolname
    from pg_auth_members m join pg_roles r on r.oid = m.member join pg_roles g on g.oid = m.roleid
   where g.rolname not like 'pg\\_%'
  union all
  select 'schema ' || nspname || ' ' || coalesce(nspacl::text, '') from pg_namespace
  union all
  select 'func ' || p.oid::regprocedure::text || ' ' || md5(prosrc) || ' ' || coalesce(proacl::text, '')
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where nspname in ('auth', 'storage', 'realtime', 'extensions', 'public', 'madbase')
  union all
  select 'defacl ' || defaclrole::regrole::text || ' ' || coalesce(defaclnamespace::regnamespace::text, '')
         || ' ' || defaclobjtype::text || ' ' || defaclacl::text from pg_default_acl
  union all
  select 'pub ' || pubname || concat_ws(',', pubinsert, pubupdate, pubdelete) from pg_publication
  union all
  select 'table ' || schemaname || '.' || tablename from pg_tables where schemaname = 'madbase'
) lines
"""


def fingerprint(conninfo: str) -> str:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(CATALOG_FINGERPRINT).fetchone()
    assert row is not None
    return str(row[0])


async def test_migrate_applies_each_migration_once(database: str) -> None:
    pool = Pool(database, DbSettings())
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions)
    assert versions[0] == "0001_roles_and_schemas"
    assert await migrate(pool) == versions
    first = fingerprint(database)
    assert await migrate(pool) == []
    assert fingerprint(database) == first
    pool.close()


async def test_migration_sql_is_idempotent_when_run_again(database: str) -> None:
    pool = Pool(database, DbSettings())
    await migrate(pool)
    before = fingerprint(database)
    for migration in load_migrations():
        assert await pool.execute_script(migration.sql) is None
    assert fingerprint(database) == before
    pool.close()


async def test_bootstrap_creates_supabase_roles_and_schemas(database: str) -> None:
    pool = Pool(database, DbSettings())
    await migrate(pool)
    pool.close()
    with psycopg.connect(database) as conn:
        roles = {
            name: flags
            for name, *flags in conn.execute(
                "select rolname, rolcanlogin, rolinherit, rolbypassrls from pg_roles "
                "where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')"
            )
        }
        assert roles == {
            "anon": [False, False, False],
            "authenticated": [False, False, False],
            "service_role": [False, False, True],
            "authenticator": [True, False, False],
        }
        members = {
            r[0]
            for r in conn.execute(
                "select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid "
                "join pg_roles r on r.oid = m.member where r.rolname = 'authenticator'"
            )
        }
        assert members == {"anon", "authenticated", "service_role"}
        schemas = {r[0] for r in conn.execute("select nspname from pg_namespace")}
        assert {"auth", "storage", "realtime", "extensions", "public"} <= schemas
        pubs = [r[0] for r in conn.execute("select pubname from pg_publication")]
        assert pubs == ["supabase_realtime"]


async def test_bootstrap_grants_and_auth_helpers_work_under_rls(database: str) -> None:
    pool = Pool(database, DbSettings())
    await migrate(pool)
    pool.close()
    claims = '{"sub":"6f1c7a8e-0000-4000-8000-000000000001","role":"authenticated","email":"a@b.c"}'
    with psycopg.connect(database) as conn:
        # a table created after bootstrap is granted to the API roles by default privileges
        conn.execute("create table public.notes (owner uuid, body text)")
        conn.execute("alter table public.notes enable row level security")
        conn.execute("create policy own on public.notes using (owner = auth.uid())")
        conn.execute(
            "insert into public.notes values ('6f1c7a8e-0000-4000-8000-000000000001', 'mine'), "
            "('6f1c7a8e-0000-4000-8000-000000000002', 'theirs')"
        )
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        conn.execute("set local role authenticated")
        row = conn.execute(
            "select auth.uid()::text, auth.role(), auth.email(), auth.jwt() ->> 'sub'"
        ).fetchone()
        assert row == (
            "6f1c7a8e-0000-4000-8000-000000000001",
            "authenticated",
            "a@b.c",
            "6f1c7a8e-0000-4000-8000-000000000001",
        )
        assert [r[0] for r in conn.execute("select body from public.notes")] == ["mine"]
        conn.execute("reset role")
        conn.execute("set local role service_role")
        assert conn.execute("select count(*) from public.notes").fetchone() == (2,)
        conn.execute("reset role")
        conn.execute("""select set_config('request.jwt.claims', '{"role":"anon"}', true)""")
        conn.execute("set local role anon")
        assert conn.execute("select auth.uid()").fetchone() == (None,)
        assert conn.execute("select count(*) from public.notes").fetchone() == (0,)


async def test_failed_migration_leaves_nothing_behind(database: str) -> None:
    pool = Pool(database, DbSettings())
    await migrate(pool)
    broken = Migration(
        "9999_broken", "create table half_done (id int);\nselect no_such_function();"
    )
    with pytest.raises(MigrationError, match="9999_broken"):
        await migrate(pool, (broken,))
    with psycopg.connect(database) as conn:
        assert conn.execute("select to_regclass('public.half_done')").fetchone() == (None,)
        versions = [r[0] for r in conn.execute("select version from madbase.schema_migrations")]
        assert "9999_broken" not in versions
    # the pool still works after the failure
    assert await pool.ping()
    pool.close()
