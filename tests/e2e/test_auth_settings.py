"""Auth settings from `Config` reach `/auth/v1`: password policy, token lifetime, anonymous sign-in,
sign-ups switched off."""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt
import pytest
import trio

from madbase.config import AuthConfig, Config
from madbase.runtime.http import HttpServer
from madbase.runtime.serve import open_project
from tests.conftest import PgServer

pytestmark = [pytest.mark.pg]


async def serve_and(config: Config, check) -> None:  # type: ignore[no-untyped-def]
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
    async with open_project(config, url=url) as project:
        server = HttpServer(project.app, config.http)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listeners)
            headers = {"apikey": project.secrets.anon_key, "x-supabase-api-version": "2024-01-01"}
            async with httpx.AsyncClient(base_url=url, headers=headers) as http:
                await check(http)
            server.begin_shutdown()


async def test_password_policy_expiry_and_anonymous(pg_server: PgServer, tmp_path: Path) -> None:
    config = Config(
        data_dir=tmp_path,
        database_url=pg_server.url(pg_server.create_database()),
        auth=AuthConfig(
            password_min_length=10,
            password_required_characters="0123456789",
            jwt_expiry=600,
            anonymous_users=True,
        ),
    )

    async def check(http: httpx.AsyncClient) -> None:
        weak = await http.post(
            "/auth/v1/signup", json={"email": "w@example.com", "password": "short"}
        )
        assert weak.status_code == 422
        assert weak.json()["code"] == "weak_password"
        assert sorted(weak.json()["weak_password"]["reasons"]) == ["characters", "length"]
        ok = await http.post(
            "/auth/v1/signup", json={"email": "w@example.com", "password": "long-enough-1"}
        )
        assert ok.status_code == 200, ok.text
        claims = jwt.decode(ok.json()["access_token"], options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 600
        assert ok.json()["expires_in"] == 600
        anonymous = await http.post("/auth/v1/signup", json={})
        assert anonymous.status_code == 200, anonymous.text
        assert anonymous.json()["user"]["is_anonymous"] is True
        settings = (await http.get("/auth/v1/settings")).json()
        assert settings["external"]["anonymous_users"] is True

    await serve_and(config, check)


async def test_signup_disabled(pg_server: PgServer, tmp_path: Path) -> None:
    config = Config(
        data_dir=tmp_path,
        database_url=pg_server.url(pg_server.create_database()),
        auth=AuthConfig(disable_signup=True),
    )

    async def check(http: httpx.AsyncClient) -> None:
        refused = await http.post(
            "/auth/v1/signup", json={"email": "n@example.com", "password": "long-enough-1"}
        )
        assert (refused.status_code, refused.json()["code"]) == (422, "signup_disabled")
        assert (await http.get("/auth/v1/settings")).json()["disable_signup"] is True

    await serve_and(config, check)
