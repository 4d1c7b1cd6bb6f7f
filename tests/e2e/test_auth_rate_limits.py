"""/auth/v1 rate limits as configured for `madbase serve`, seen by supabase-py and over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest
import supabase
import trio
from supabase_auth.errors import AuthApiError

from madbase.config import AuthConfig, Config
from madbase.runtime.http import HttpServer
from madbase.runtime.serve import open_project
from tests.conftest import PgServer

pytestmark = [pytest.mark.pg, pytest.mark.clients]


def hammer_sign_in(url: str, anon_key: str) -> list[str]:
    """Wrong-password sign-ins until refused; the error codes supabase-py reports."""
    client = supabase.create_client(url, anon_key)
    codes: list[str] = []
    try:
        for _ in range(4):
            with pytest.raises(AuthApiError) as raised:
                client.auth.sign_in_with_password(
                    {"email": "x@example.com", "password": "nope-nope"}
                )
            codes.append(f"{raised.value.status} {raised.value.code}")
    finally:
        client.postgrest.aclose()
        client.auth._http_client.close()
    return codes


async def test_sign_in_limit_and_proxies(pg_server: PgServer, tmp_path: Path) -> None:
    name = pg_server.create_database()
    db_url = pg_server.url(name)
    config = Config(
        data_dir=tmp_path,
        database_url=db_url,
        auth_rate_limit_token=3,
        auth_rate_limit_address=0,
        auth_rate_limit_otp=2,
        trusted_proxies=("127.0.0.1/32",),
    )
    async with open_project(config) as project:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        server = HttpServer(project.app, config.http)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listeners)
            anon = project.secrets.anon_key
            codes = await trio.to_thread.run_sync(hammer_sign_in, url, anon)
            assert codes == [
                "400 invalid_credentials",
                "400 invalid_credentials",
                "400 invalid_credentials",
                "429 over_request_rate_limit",
            ]
            async with httpx.AsyncClient(base_url=url, headers={"apikey": anon}) as http:
                # Still refused, with the wait in Retry-After (300 s / 3 tokens).
                refused = await http.post(
                    "/auth/v1/token?grant_type=password",
                    json={"email": "x@example.com", "password": "nope-nope"},
                    headers={"x-forwarded-for": "127.0.0.1"},
                )
                assert refused.status_code == 429
                assert 1 <= int(refused.headers["retry-after"]) <= 100
                assert refused.json()["error_code"] == "over_request_rate_limit"

                # Behind the trusted proxy (the loopback peer), each forwarded client counts on
                # its own, and the session records the forwarded address.
                for n in range(2):
                    signed = await http.post(
                        "/auth/v1/signup",
                        json={"email": f"p{n}@example.com", "password": "s3cret-pass"},
                        headers={"x-forwarded-for": "198.51.100.7"},
                    )
                    assert signed.status_code == 200, signed.text
                third = await http.post(
                    "/auth/v1/signup",
                    json={"email": "p2@example.com", "password": "s3cret-pass"},
                    headers={"x-forwarded-for": "198.51.100.7"},
                )
                assert third.status_code == 429
                other = await http.post(
                    "/auth/v1/signup",
                    json={"email": "p3@example.com", "password": "s3cret-pass"},
                    headers={"x-forwarded-for": "203.0.113.9"},
                )
                assert other.status_code == 200, other.text
                # Health and reads are never limited.
                for _ in range(10):
                    assert (await http.get("/auth/v1/health")).status_code == 200
            server.begin_shutdown()
    with psycopg.connect(db_url, autocommit=True) as conn:
        ips = sorted(str(r[0]) for r in conn.execute("select ip from auth.sessions"))
        users = [r[0] for r in conn.execute("select email from auth.users order by email")]
    assert ips == ["198.51.100.7", "198.51.100.7", "203.0.113.9"]
    # The refused sign-up wrote nothing.
    assert users == ["p0@example.com", "p1@example.com", "p3@example.com"]


async def test_project_mail_quota(pg_server: PgServer, tmp_path: Path) -> None:
    name = pg_server.create_database()
    db_url = pg_server.url(name)
    config = Config(
        data_dir=tmp_path,
        database_url=db_url,
        auth=AuthConfig(autoconfirm=False),
        auth_rate_limit_email_sent=2,
    )
    async with open_project(config) as project:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        server = HttpServer(project.app, config.http)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listeners)
            headers = {"apikey": project.secrets.anon_key, "x-supabase-api-version": "2024-01-01"}
            async with httpx.AsyncClient(base_url=url, headers=headers) as http:
                statuses = []
                for n in range(3):
                    answer = await http.post(
                        "/auth/v1/signup",
                        json={"email": f"q{n}@example.com", "password": "s3cret-pass"},
                    )
                    statuses.append((answer.status_code, answer.json().get("code")))
            server.begin_shutdown()
    assert statuses[:2] == [(200, None), (200, None)]
    assert statuses[2] == (429, "over_email_send_rate_limit")
    mails = sorted(p.name for p in config.outbox_dir.glob("*.json"))
    assert len(mails) == 2
