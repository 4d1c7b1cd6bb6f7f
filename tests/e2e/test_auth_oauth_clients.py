"""OAuth sign-in through supabase-py: `sign_in_with_oauth` + `exchange_code_for_session` (PKCE),
the implicit flow's URL fragment with `set_session`, `sign_in_with_id_token`, and
`link_identity` / `get_user_identities` / `unlink_identity`.

The server runs in-process with GitHub and Google pointed at a fake provider on loopback; the
browser's part (following redirects) is played with httpx; supabase-py's sync client runs in a
worker thread.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import supabase
import trio
from supabase.lib.client_options import SyncClientOptions
from supabase_auth.errors import AuthApiError

from madbase.config import Config
from madbase.protocol.auth import AuthLimits, ExternalSettings, ProviderConfig
from madbase.protocol.http import Service
from madbase.runtime.auth import AuthService
from madbase.runtime.http import HttpServer
from madbase.runtime.serve import open_project
from tests.conftest import PgServer
from tests.oauth_provider import CLIENT_ID, CLIENT_SECRET, FakeProvider, running_provider

pytestmark = [pytest.mark.pg, pytest.mark.clients]

APP = "http://127.0.0.1:3000/welcome"


def browse(url: str, until: str) -> str:
    """Follow redirects like a browser until one leads to `until`; that URL."""
    with httpx.Client(trust_env=False) as browser:
        for _ in range(5):
            answer = browser.get(url, follow_redirects=False)
            assert answer.status_code in (302, 303), answer.text
            url = answer.headers["location"]
            if url.startswith(until):
                return url
    raise AssertionError(f"never reached {until}")


def client_session(url: str, anon_key: str, provider: FakeProvider) -> None:
    pkce = supabase.create_client(url, anon_key, SyncClientOptions(flow_type="pkce"))
    try:
        started = pkce.auth.sign_in_with_oauth(
            {"provider": "github", "options": {"redirect_to": APP, "scopes": "repo"}}
        )
        assert started.provider == "github"
        assert "code_challenge=" in started.url
        landed = browse(started.url, APP)
        code = dict(parse_qsl(urlsplit(landed).query))["code"]
        signed_in = pkce.auth.exchange_code_for_session({"auth_code": code})
        assert signed_in.session is not None
        assert signed_in.user is not None
        assert signed_in.user.email == "alice@example.com"
        assert signed_in.session.provider_token is not None
        assert signed_in.session.provider_token.startswith("gho_")
        identities = signed_in.user.identities or []
        assert [(i.provider, i.id) for i in identities] == [("github", "1001")]
        user_id = signed_in.user.id
        # The verifier went with the exchange: the code is single use anyway.
        with pytest.raises(AuthApiError) as again:
            pkce.auth.exchange_code_for_session({"auth_code": code, "code_verifier": "x" * 43})
        assert again.value.code == "flow_state_not_found"
    finally:
        pkce.auth._http_client.close()

    implicit = supabase.create_client(url, anon_key, SyncClientOptions(flow_type="implicit"))
    try:
        started = implicit.auth.sign_in_with_oauth({"provider": "github"})
        assert "code_challenge" not in started.url
        landed = browse(started.url, url + "#")  # no redirect_to: the site URL
        tokens = dict(parse_qsl(urlsplit(landed).fragment))
        session = implicit.auth.set_session(tokens["access_token"], tokens["refresh_token"])
        assert session.user is not None
        assert session.user.id == user_id
        me = implicit.auth.get_user()
        assert me is not None
        assert me.user.app_metadata["provider"] == "github"

        raw_nonce = "py-nonce"
        token = provider.id_token(nonce=raw_nonce, now=time.time())
        google = implicit.auth.sign_in_with_id_token(
            {"provider": "google", "token": token, "nonce": raw_nonce}
        )
        assert google.user is not None
        # The same verified address: the Google identity joins Alice's account.
        assert google.user.id == user_id
        assert sorted(i.provider for i in google.user.identities or []) == ["github", "google"]

        # Manual linking: a second GitHub account (Bob's) joins, then leaves again.
        linking = implicit.auth.link_identity(
            {
                "provider": "github",
                "options": {"redirect_to": APP, "query_params": {"login_hint": "bob"}},
            }
        )
        assert linking.url.startswith(provider.url + "/login/oauth/authorize?")
        linked = dict(parse_qsl(urlsplit(browse(linking.url, APP)).fragment))
        assert "access_token" in linked
        identities = implicit.auth.get_user_identities().identities
        assert sorted((i.provider, i.id) for i in identities) == [
            ("github", "1001"),
            ("github", "1002"),
            ("google", "g-1001"),
        ]
        bob = next(i for i in identities if i.id == "1002")
        assert implicit.auth.unlink_identity(bob).status_code == 200
        remaining = implicit.auth.get_user_identities().identities
        assert sorted(i.id for i in remaining) == ["1001", "g-1001"]

        with pytest.raises(AuthApiError) as disabled:
            implicit.auth.sign_in_with_id_token(
                {"provider": "keycloak", "token": token}  # type: ignore[typeddict-item]
            )
        assert disabled.value.code == "provider_disabled"
    finally:
        implicit.auth._http_client.close()


async def test_supabase_py_oauth(pg_server: PgServer, tmp_path: Path) -> None:
    name = pg_server.create_database()
    config = Config(data_dir=tmp_path, database_url=pg_server.url(name))
    with running_provider() as provider:
        async with open_project(config) as project:
            app = project.app
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            url = f"http://127.0.0.1:{port}"
            service = AuthService(
                pool=project.auth_pool,
                secret=project.secrets.jwt_secret,
                limits=AuthLimits(issuer=f"{url}/auth/v1"),
                site_url=url,
                external=ExternalSettings(
                    providers=tuple(
                        ProviderConfig(
                            name=p, client_ids=(CLIENT_ID,), secret=CLIENT_SECRET, url=provider.url
                        )
                        for p in ("github", "google")
                    ),
                    redirect_uri=f"{url}/auth/v1/callback",
                    manual_linking_enabled=True,
                ),
            )
            app.services[Service.AUTH] = service
            server = HttpServer(app, config.http)
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(server.serve, listeners)
                    await trio.to_thread.run_sync(
                        client_session, url, project.secrets.anon_key, provider
                    )
                    server.begin_shutdown()
            finally:
                await service.aclose()
