"""A hostile function called through `/rest/v1/rpc` cannot change who the next request is.

Regression for issue 8 (1): a function running `set_config('role', 'service_role', false)` left
that role on the pooled connection (RESET ALL does not reset it), so the next requests on that
connection ran as service_role and `/auth/v1/admin/users` answered 500; `set_config('role',
'postgres', false)` made an anonymous caller superuser. Served with one pooled connection per
service, so every request below reuses the connection the hostile call ran on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import postgrest
import psycopg
import pytest
import supabase

from tests.e2e.test_rest_clients import close
from tests.e2e.test_serve import Served, start

pytestmark = [pytest.mark.pg, pytest.mark.clients]

SQL = """
create table public.secrets (id int primary key, body text);
alter table public.secrets enable row level security;
insert into public.secrets values (1, 'only service_role sees this');
create function public.leave_role(r text) returns text language sql as
  $$ select set_config('role', r, false) $$;
create function public.whoami() returns json language sql as
  $$ select json_build_object('current_user', current_user, 'session_user', session_user,
                              'superuser', current_setting('is_superuser')) $$;
grant execute on all functions in schema public to anon, authenticated, service_role;
notify pgrst, 'reload schema';
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = start(tmp_path / "data", "--db-pool-size", "1")
    try:
        with psycopg.connect(server.db_url, autocommit=True) as conn:
            conn.execute(SQL)
        yield server
    finally:
        if server.proc.poll() is None:
            server.stop()


def wait_for_functions(client: supabase.Client) -> None:
    """The schema watcher picks the functions up shortly after the NOTIFY."""
    for _ in range(100):
        try:
            client.rpc("whoami").execute()
        except postgrest.APIError:
            time.sleep(0.1)
        else:
            return
    raise AssertionError("the functions never appeared")


def test_rpc_cannot_leave_a_role_on_the_pool_or_become_superuser(served: Served) -> None:
    anon = supabase.create_client(served.url, served.anon_key)
    service = supabase.create_client(served.url, served.service_role_key)
    try:
        check_logins(served, anon, service)
    finally:
        close(anon)
        close(service)


def check_logins(served: Served, anon: supabase.Client, service: supabase.Client) -> None:
    wait_for_functions(anon)
    before = anon.rpc("whoami").execute().data
    assert before == {"current_user": "anon", "session_user": "authenticator", "superuser": "off"}

    # Switching to another API role lasts for that call only.
    assert anon.rpc("leave_role", {"r": "service_role"}).execute().data == "service_role"
    assert anon.rpc("whoami").execute().data == before
    assert anon.table("secrets").select("*").execute().data == []  # RLS still applies to anon

    # An administrator is out of reach altogether.
    for role in ("postgres", "supabase_auth_admin", "pg_read_server_files"):
        with pytest.raises(postgrest.APIError) as refused:
            anon.rpc("leave_role", {"r": role}).execute()
        assert refused.value.code == "42501"
        assert anon.rpc("whoami").execute().data == before

    # Auth has its own login and keeps working whatever ran on the data API's connection.
    headers = {
        "apikey": served.service_role_key,
        "Authorization": f"Bearer {served.service_role_key}",
    }
    answer = httpx.get(f"{served.url}/auth/v1/admin/users", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["users"] == []
    assert service.rpc("whoami").execute().data == {
        "current_user": "service_role",
        "session_user": "authenticator",
        "superuser": "off",
    }
    assert httpx.get(f"{served.url}/health", timeout=10).status_code == 200
