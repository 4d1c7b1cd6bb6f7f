"""`/auth/v1` through supabase-py: sign-up, sign-in, /user, refresh, update, sign-out, and the
user's token reaching `/rest/v1` RLS.

The server runs in-process (the project of `madbase serve` with `AuthService` registered on it);
supabase-py's sync client runs in a worker thread.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
import supabase
import trio
from supabase_auth.errors import AuthApiError

from madbase.config import Config
from madbase.protocol.auth import AuthLimits
from madbase.protocol.http import Service
from madbase.runtime.auth import AuthService
from madbase.runtime.http import HttpServer
from madbase.runtime.serve import open_project
from tests.conftest import PgServer

pytestmark = [pytest.mark.pg, pytest.mark.clients]

SCHEMA = """
create table public.notes (id serial primary key, owner uuid not null, body text);
alter table public.notes enable row level security;
create policy own_notes on public.notes for all to authenticated
  using (owner = auth.uid());
grant select on public.notes to authenticated;
insert into public.notes (owner, body) values ('00000000-0000-4000-8000-000000000001', 'not yours');
"""


def client_session(url: str, anon_key: str, db_url: str) -> None:
    """Everything supabase-py does, run synchronously (in a worker thread)."""
    client = supabase.create_client(url, anon_key)
    try:
        exercise(client, db_url)
    finally:
        client.postgrest.aclose()
        client.auth._http_client.close()


def exercise(client: supabase.Client, db_url: str) -> None:
    signed_up = client.auth.sign_up({"email": "py@example.com", "password": "s3cret-pass"})
    assert signed_up.session is not None
    assert signed_up.user is not None
    user_id = signed_up.user.id
    assert signed_up.user.email == "py@example.com"

    client.auth.sign_out()
    signed_in = client.auth.sign_in_with_password(
        {"email": "py@example.com", "password": "s3cret-pass"}
    )
    assert signed_in.session is not None
    assert signed_in.user is not None
    assert signed_in.user.id == user_id

    me = client.auth.get_user()
    assert me is not None
    assert me.user.id == user_id

    old_refresh = signed_in.session.refresh_token
    refreshed = client.auth.refresh_session()
    assert refreshed.session is not None
    assert refreshed.session.refresh_token != old_refresh

    updated = client.auth.update_user({"data": {"nickname": "py"}})
    assert updated.user.user_metadata["nickname"] == "py"

    # The session's token reaches PostgREST: RLS sees auth.uid() (REST serves reads only so far).
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("insert into public.notes (owner, body) values (%s, 'mine')", (user_id,))
    wait_for_table(client)
    rows = client.table("notes").select("owner, body").execute()
    assert rows.data == [{"owner": user_id, "body": "mine"}]
    # Signing out makes supabase-py drop this PostgREST client without closing it.
    client.postgrest.aclose()

    current_refresh = refreshed.session.refresh_token
    client.auth.sign_out()
    assert client.auth.get_session() is None
    with pytest.raises(AuthApiError) as raised:
        client.auth.refresh_session(current_refresh)
    assert raised.value.status == 400

    with pytest.raises(AuthApiError) as wrong:
        client.auth.sign_in_with_password({"email": "py@example.com", "password": "not-it-at-all"})
    assert wrong.value.code == "invalid_credentials"

    with psycopg.connect(db_url, autocommit=True) as conn:
        actions = [
            r[0] for r in conn.execute("select payload->>'action' from auth.audit_log_entries")
        ]
    assert actions.count("logout") == 2
    assert "user_signedup" in actions


def wait_for_table(client: supabase.Client) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            client.table("notes").select("id").limit(1).execute()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


async def test_supabase_py_auth_round_trip(pg_server: PgServer, tmp_path: Path) -> None:
    name = pg_server.create_database()
    db_url = pg_server.url(name)
    config = Config(data_dir=tmp_path, database_url=db_url)
    async with open_project(config) as project:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(SCHEMA)
        app = project.app
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        app.services[Service.AUTH] = AuthService(
            pool=project.auth_pool,
            secret=project.secrets.jwt_secret,
            limits=AuthLimits(issuer=f"{url}/auth/v1"),
            site_url=url,
        )
        server = HttpServer(app, config.http)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listeners)
            await trio.to_thread.run_sync(client_session, url, project.secrets.anon_key, db_url)
            server.begin_shutdown()
