"""Who a token may be, through HTTP: the roles it may name, its claims' types, the configured
audience, one credential of each kind, `app_metadata` on `PUT /user`, and auth's 500s.

The server runs in-process (the project of `madbase serve`, configured from the environment);
httpx and supabase-py's sync clients run in a worker thread.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
import jwt
import psycopg
import pytest
import supabase
import trio
from supabase_auth.errors import AuthApiError

from madbase.config import Config, rate_limits_off
from madbase.runtime.http import HttpServer
from madbase.runtime.serve import open_project
from tests.conftest import PgServer
from tests.strategies import sign_raw_jwt

pytestmark = [pytest.mark.pg, pytest.mark.clients]

# Roles are the cluster's, not one database's: created once, idempotently. `web_user` is a role
# the owner granted the authenticator (as for PostgREST), so tokens may name it.
ROLES = """
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'web_user') then
    create role web_user nologin noinherit;
  end if;
end
$$;
grant web_user to authenticator;
"""
UNGRANT = "revoke web_user from authenticator"

SCHEMA = """
create table public.notes (id int primary key, body text);
insert into public.notes values (1, 'hello');
grant select on public.notes to anon, authenticated, service_role, web_user;
"""

PASSWORD = "s3cret-pass-word"


@attrs.frozen
class Served:
    url: str
    anon_key: str
    service_key: str
    secret: str
    db_url: str

    def token(self, claims: dict[str, object]) -> str:
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def raw_token(self, payload: bytes) -> str:
        return sign_raw_jwt(b'{"alg":"HS256","typ":"JWT"}', payload, self.secret)

    def rest(self, token: str | None = None, *, key: str | None = None) -> httpx.Response:
        headers = {"apikey": key or self.anon_key}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return httpx.get(f"{self.url}/rest/v1/notes?select=id,body", headers=headers)

    def user(self, token: str) -> httpx.Response:
        headers = {"apikey": self.anon_key, "authorization": f"Bearer {token}"}
        return httpx.get(f"{self.url}/auth/v1/user", headers=headers)

    def client(self, key: str | None = None) -> supabase.Client:
        return supabase.create_client(self.url, key or self.anon_key)


@contextlib.asynccontextmanager
async def serving(
    pg_server: PgServer, tmp_path: Path, env: dict[str, str] | None = None
) -> AsyncIterator[Served]:
    db_url = pg_server.url(pg_server.create_database())
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(ROLES)  # before the project opens: it reads the roles then
    environ = {
        **rate_limits_off(),
        "MADBASE_DATA_DIR": str(tmp_path),
        "MADBASE_DATABASE_URL": db_url,
        **(env or {}),
    }
    config = Config.from_sources(environ, {}, {})
    try:
        async with open_project(config) as project:
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute(SCHEMA)
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
            server = HttpServer(project.app, config.http)
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve, listeners)
                served = Served(
                    url=url,
                    anon_key=project.secrets.anon_key,
                    service_key=project.secrets.service_role_key,
                    secret=project.secrets.jwt_secret,
                    db_url=db_url,
                )
                await trio.to_thread.run_sync(wait_for_table, served)
                yield served
                server.begin_shutdown()
    finally:
        # The grant is the cluster's: other tests look at authenticator's roles too.
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(UNGRANT)


def wait_for_table(served: Served) -> None:
    """The schema cache sees `notes` a moment after it is created."""
    deadline = time.monotonic() + 15
    while served.rest().status_code != 200:
        assert time.monotonic() < deadline, served.rest().text
        time.sleep(0.1)


async def run_checks(
    pg_server: PgServer,
    tmp_path: Path,
    *checks: Callable[[Served], object],
    env: dict[str, str] | None = None,
) -> None:
    """Serve a fresh project and run each check against it, in a worker thread."""
    async with serving(pg_server, tmp_path, env) as served:
        for check in checks:
            await trio.to_thread.run_sync(check, served)


def signed_up(served: Served, email: str) -> tuple[str, str]:
    """A new user's id and access token."""
    answer = httpx.post(
        f"{served.url}/auth/v1/signup",
        headers={"apikey": served.anon_key},
        json={"email": email, "password": PASSWORD},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return body["user"]["id"], body["access_token"]


def rest_refusal(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert isinstance(body, dict), (response.status_code, body)
    assert set(body) == {"code", "message", "details", "hint"}, body
    return response.status_code, body["code"], body["message"]


def auth_refusal(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error_code"], body["msg"]


# --- the roles a token may name (issue 8, item 2) ---------------------------------------------------


FORBIDDEN_ROLES = ["postgres", "pg_read_server_files", "authenticator", "no_such_role"]


def check_roles(served: Served) -> None:
    for role in FORBIDDEN_ROLES:
        refused = served.rest(served.token({"role": role, "exp": int(time.time()) + 60}))
        assert rest_refusal(refused) == (401, "PGRST303", f'permission denied to set role "{role}"')
    # A role the owner granted the authenticator, and the usual ones, run.
    for role in ("web_user", "authenticated", "service_role", "anon"):
        answer = served.rest(served.token({"role": role}))
        assert answer.status_code == 200, (role, answer.text)
        assert answer.json() == [{"id": 1, "body": "hello"}]
    # The API key is a token too.
    forged_key = served.token({"role": "postgres", "exp": int(time.time()) + 60})
    assert served.rest(key=forged_key).status_code == 401

    # /auth/v1 checks the user's token the same way.
    user_id, access = signed_up(served, "roles@example.com")
    assert served.user(access).status_code == 200
    as_postgres = served.token({"sub": user_id, "role": "postgres", "aud": "authenticated"})
    status, code, message = auth_refusal(served.user(as_postgres))
    assert (status, code) == (403, "bad_jwt")
    assert message.endswith('permission denied to set role "postgres"')


def check_admin_roles(served: Served) -> None:
    admin = served.client(served.service_key)
    try:
        with pytest.raises(AuthApiError) as created:
            admin.auth.admin.create_user(
                {"email": "pg@example.com", "password": PASSWORD, "role": "postgres"}
            )
        assert (created.value.status, created.value.code) == (400, "validation_failed")
        assert 'Role "postgres" is not allowed' in created.value.message
        listed = admin.auth.admin.list_users()
        assert [u.email for u in listed] == ["roles@example.com"]

        user = admin.auth.admin.create_user(
            {
                "email": "web@example.com",
                "password": PASSWORD,
                "role": "web_user",
                "email_confirm": True,
            }
        ).user
        assert user.role == "web_user"
        with pytest.raises(AuthApiError) as updated:
            admin.auth.admin.update_user_by_id(user.id, {"role": "pg_read_server_files"})
        assert (updated.value.status, updated.value.code) == (400, "validation_failed")
        assert admin.auth.admin.get_user_by_id(user.id).user.role == "web_user"
    finally:
        admin.auth._http_client.close()

    # The user with a granted role signs in and reads as that role.
    client = served.client()
    try:
        session = client.auth.sign_in_with_password(
            {"email": "web@example.com", "password": PASSWORD}
        ).session
        assert session is not None
        assert jwt.decode(session.access_token, options={"verify_signature": False})["role"] == (
            "web_user"
        )
        assert client.table("notes").select("id").execute().data == [{"id": 1}]
    finally:
        client.postgrest.aclose()
        client.auth._http_client.close()


async def test_tokens_may_name_only_roles_the_authenticator_may_switch_to(
    pg_server: PgServer, tmp_path: Path
) -> None:
    await run_checks(pg_server, tmp_path, check_roles, check_admin_roles)


# --- claim types (item 4) ----------------------------------------------------------------------


def bad_claims(now: int) -> list[tuple[bytes, str]]:
    return [
        (b'{"role":"authenticated","exp":1e309}', "Parsing claims failed"),
        (b'{"role":"authenticated","exp":NaN}', "Parsing claims failed"),
        (b'{"role":"authenticated","iat":NaN}', "Parsing claims failed"),
        (b'{"role":"authenticated","exp":1e300}', "JWT expired"),
        (f'{{"role":"authenticated","exp":"{now + 60}"}}'.encode(), NUMBER.format("exp")),
        (b'{"role":"authenticated","nbf":"x"}', NUMBER.format("nbf")),
        (b'{"role":"authenticated","iat":true}', NUMBER.format("iat")),
        (b'{"role":"authenticated","aud":5}', AUD_TYPE),
        (b'{"role":"authenticated","aud":["x",3]}', AUD_TYPE),
        (b'{"role":5}', "The JWT 'role' claim must be a string"),
        (b'{"role":"authenticated","sub":5}', "The JWT 'sub' claim must be a string"),
    ]


NUMBER = "The JWT '{}' claim must be a number"
AUD_TYPE = "The JWT 'aud' claim must be a string or an array of strings"


def check_claim_types(served: Served) -> None:
    user_id, _ = signed_up(served, "claims@example.com")
    for payload, message in bad_claims(int(time.time())):
        token = served.raw_token(payload)
        assert rest_refusal(served.rest(token)) == (401, "PGRST303", message), payload
        # /auth/v1/user: the same check, GoTrue's answer for a token it refuses.
        with_sub = payload.replace(b"{", f'{{"sub":"{user_id}",'.encode(), 1)  # "sub":5 wins
        status, code, msg = auth_refusal(served.user(served.raw_token(with_sub)))
        assert (status, code) == (403, "bad_jwt"), payload
        assert msg == f"invalid JWT: unable to parse or verify signature, {message}"


async def test_token_claims_of_the_wrong_type_are_refused(
    pg_server: PgServer, tmp_path: Path
) -> None:
    await run_checks(pg_server, tmp_path, check_claim_types)


# --- MADBASE_JWT_AUD (item 5) ------------------------------------------------------------------


def check_audience(served: Served) -> None:
    # The API keys carry no `aud`: they stay valid.
    assert served.rest().status_code == 200
    assert served.rest(served.anon_key, key=served.service_key).status_code == 200
    other = served.token({"role": "authenticated", "aud": "authenticated"})
    assert rest_refusal(served.rest(other)) == (401, "PGRST303", "JWT not in audience")
    assert served.rest(key=other).status_code == 401  # as an API key, too
    listed = served.token({"role": "authenticated", "aud": ["x", "my-app"]})
    assert served.rest(listed).status_code == 200

    # Auth gives new users the audience, so their tokens pass everywhere.
    client = served.client()
    try:
        session = client.auth.sign_up({"email": "aud@example.com", "password": PASSWORD}).session
        assert session is not None
        assert jwt.decode(session.access_token, options={"verify_signature": False})["aud"] == (
            "my-app"
        )
        assert client.auth.get_user() is not None
        assert client.table("notes").select("id").execute().data == [{"id": 1}]
        user_id = session.user.id
    finally:
        client.postgrest.aclose()
        client.auth._http_client.close()
    foreign = served.token({"sub": user_id, "role": "authenticated", "aud": "authenticated"})
    status, code, message = auth_refusal(served.user(foreign))
    assert (status, code) == (403, "bad_jwt")
    assert message.endswith("JWT not in audience")


async def test_jwt_aud_setting_refuses_tokens_for_other_audiences(
    pg_server: PgServer, tmp_path: Path
) -> None:
    await run_checks(pg_server, tmp_path, check_audience, env={"MADBASE_JWT_AUD": "my-app"})


# --- one Authorization header, one apikey (item 6) -----------------------------------------------


def check_ambiguous_credentials(served: Served) -> None:
    key = ("apikey", served.anon_key)
    service = served.token({"role": "service_role"})
    anon = served.token({"role": "anon"})
    two_bearers = [key, ("authorization", f"Bearer {anon}"), ("authorization", f"Bearer {service}")]
    answer = httpx.get(f"{served.url}/rest/v1/notes", headers=two_bearers)
    assert rest_refusal(answer) == (400, "PGRST301", "Only one Authorization header may be sent")
    answer = httpx.get(f"{served.url}/auth/v1/user", headers=two_bearers)
    assert auth_refusal(answer) == (
        400,
        "validation_failed",
        "Only one Authorization header may be sent",
    )

    two_keys = [key, ("apikey", served.service_key)]
    answer = httpx.get(f"{served.url}/rest/v1/notes", headers=two_keys)
    assert rest_refusal(answer) == (400, "PGRST301", "Only one apikey may be sent")
    answer = httpx.get(f"{served.url}/auth/v1/admin/users", headers=two_keys)
    assert auth_refusal(answer) == (400, "validation_failed", "Only one apikey may be sent")
    answer = httpx.get(
        f"{served.url}/rest/v1/notes",
        params=[("apikey", served.anon_key), ("apikey", served.service_key)],
    )
    assert answer.status_code == 400


async def test_two_authorization_or_apikey_headers_are_400(
    pg_server: PgServer, tmp_path: Path
) -> None:
    await run_checks(pg_server, tmp_path, check_ambiguous_credentials)


# --- PUT /user with app_metadata (item 7) ---------------------------------------------------------


def check_app_metadata(served: Served) -> None:
    client = served.client()
    try:
        client.auth.sign_up({"email": "meta@example.com", "password": PASSWORD})
        attributes: Any = {"data": {"nickname": "m"}, "app_metadata": {"plan": "pro"}}
        with pytest.raises(AuthApiError) as refused:
            client.auth.update_user(attributes)
        assert (refused.value.status, refused.value.code) == (403, "not_admin")
        assert refused.value.message == "Updating app_metadata requires admin privileges"
        user = client.auth.get_user()
        assert user is not None
        assert "plan" not in user.user.app_metadata
        assert "nickname" not in user.user.user_metadata  # nothing of the request was applied
        # `null` is no update, as in GoTrue.
        kept: Any = {"data": {"nickname": "m"}, "app_metadata": None}
        assert client.auth.update_user(kept).user.user_metadata["nickname"] == "m"
    finally:
        client.auth._http_client.close()


async def test_update_user_with_app_metadata_is_403_not_admin(
    pg_server: PgServer, tmp_path: Path
) -> None:
    await run_checks(pg_server, tmp_path, check_app_metadata)


# --- auth's database failures (item 10) ------------------------------------------------------------

FAILING_AUDIT = """
create function public.refuse_audit() returns trigger language plpgsql as $$
begin
  raise exception using errcode = '42501', message = 'permission denied for table audit_log_entries';
end
$$;
create trigger refuse_audit before insert on auth.audit_log_entries
  for each row execute function public.refuse_audit();
"""


def check_database_failure(served: Served) -> tuple[str, str]:
    with psycopg.connect(served.db_url, autocommit=True) as conn:
        conn.execute(FAILING_AUDIT)
    answer = httpx.post(
        f"{served.url}/auth/v1/signup",
        headers={"apikey": served.anon_key},
        json={"email": "fail@example.com", "password": PASSWORD},
    )
    request_id = answer.headers["x-request-id"]
    assert answer.status_code == 500
    assert answer.json() == {
        "code": 500,
        "error_code": "unexpected_failure",
        "msg": "Unexpected failure, please check server logs for more information",
        "error_id": request_id,
    }
    client = served.client()
    try:
        with pytest.raises(AuthApiError) as failed:
            client.auth.sign_up({"email": "fail2@example.com", "password": PASSWORD})
        assert failed.value.status == 500
        assert failed.value.code == "unexpected_failure"
        assert "42501" not in failed.value.message
    finally:
        client.auth._http_client.close()
    return request_id, answer.text


async def test_auth_database_failure_is_a_generic_500_and_logged_whole(
    pg_server: PgServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(pg_server, tmp_path) as served:
        with caplog.at_level(logging.INFO, logger="madbase"):
            request_id, body = await trio.to_thread.run_sync(check_database_failure, served)
    assert "42501" not in body
    failures = [r for r in caplog.records if r.name == "madbase.runtime.auth"]
    assert [r.levelno for r in failures] == [logging.ERROR, logging.ERROR]
    first = failures[0]
    assert first.request_id == request_id  # type: ignore[attr-defined]
    message = first.getMessage()
    assert message.startswith("POST /auth/v1/signup failed: database error 42501 ")
    assert "permission denied for table audit_log_entries" in message
    assert "insert into auth.audit_log_entries" in message
    assert " of " in message  # which of the transaction's statements
    for record in caplog.records:  # parameters never reach the log
        text = record.getMessage()
        assert PASSWORD not in text
        assert "fail@example.com" not in text
