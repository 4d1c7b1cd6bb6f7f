"""Mailed links in the PKCE flow, through supabase-py with `flow_type="pkce"`.

The client sends a `code_challenge` with sign-up, magic link, recovery and email change; the
mailed link carries a `pkce_` token; following it redirects to `redirect_to?code=…`, and the
client trades the code (with the verifier it kept) for a session. A code works once. (The first
of a secure email change's two links only says the other one is still to be opened.)
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import supabase
import trio
from supabase.lib.client_options import SyncClientOptions
from supabase_auth.errors import AuthApiError

from madbase.config import AuthConfig, Config
from madbase.runtime.http import HttpServer
from madbase.runtime.serve import open_project
from tests.conftest import PgServer
from tests.e2e.test_auth_mail_clients import Outbox, close

pytestmark = [pytest.mark.pg, pytest.mark.clients]

APP = "http://127.0.0.1:3000/welcome"


def open_link(outbox: Outbox, to: str) -> str:
    """Open the last mailed link like a browser would (no redirect followed); where it leads."""
    found = re.search(r"(http://\S+/verify\?\S+)", outbox.last(to)["text"])
    assert found
    link = found.group(1)
    assert parse_qs(urlsplit(link).query)["token"][0].startswith("pkce_")
    answer = httpx.get(link, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(APP)
    assert "access_token" not in location
    return str(location)


def follow(outbox: Outbox, to: str) -> str:
    """Open the mailed link; the `code` it ends with."""
    location = open_link(outbox, to)
    assert location.startswith(APP + "?")
    return parse_qs(urlsplit(location).query)["code"][0]


def exercise(url: str, anon_key: str, outbox: Outbox) -> None:
    client = supabase.create_client(url, anon_key, SyncClientOptions(flow_type="pkce"))
    try:
        # Sign-up confirmation (autoconfirm off).
        signed_up = client.auth.sign_up(
            {
                "email": "pkce@example.com",
                "password": "s3cret-pass",
                "options": {"email_redirect_to": APP},
            }
        )
        assert signed_up.session is None
        code = follow(outbox, "pkce@example.com")
        auth = client.auth
        verifier = auth._storage.get_item(f"{auth._storage_key}-code-verifier")
        assert verifier
        with pytest.raises(AuthApiError) as wrong:
            client.auth.exchange_code_for_session({"auth_code": code, "code_verifier": "x" * 43})
        assert wrong.value.code == "bad_code_verifier"
        session = client.auth.exchange_code_for_session(
            {"auth_code": code, "code_verifier": verifier}
        )
        assert session.user is not None
        assert session.user.email == "pkce@example.com"
        assert session.user.email_confirmed_at is not None
        assert session.session is not None
        with pytest.raises(AuthApiError) as again:  # a code works once
            client.auth.exchange_code_for_session({"auth_code": code, "code_verifier": verifier})
        assert again.value.code == "flow_state_not_found"
        client.auth.sign_out()

        # Magic link for another (new) address.
        client.auth.sign_in_with_otp(
            {"email": "magic@example.com", "options": {"email_redirect_to": APP}}
        )
        magic = client.auth.exchange_code_for_session(
            {"auth_code": follow(outbox, "magic@example.com")}
        )
        assert magic.user is not None
        assert magic.user.email == "magic@example.com"
        client.auth.sign_out()

        # Password recovery: the code signs in, then the password can be set.
        client.auth.reset_password_for_email("pkce@example.com", {"redirect_to": APP})
        recovered = client.auth.exchange_code_for_session(
            {"auth_code": follow(outbox, "pkce@example.com")}
        )
        assert recovered.user is not None
        assert recovered.user.email == "pkce@example.com"
        client.auth.update_user({"password": "an0ther-pass"})
        client.auth.sign_out()
        again_in = client.auth.sign_in_with_password(
            {"email": "pkce@example.com", "password": "an0ther-pass"}
        )
        assert again_in.session is not None

        # Email change (secure: both addresses confirm): the first link opened only says so,
        # the second ends in a code that signs in with the new address.
        pending = client.auth.update_user(
            {"email": "moved@example.com"}, {"email_redirect_to": APP}
        )
        assert pending.user.new_email == "moved@example.com"
        half = open_link(outbox, "pkce@example.com")
        assert "message=" in urlsplit(half).fragment
        assert "code=" not in half
        changed = client.auth.exchange_code_for_session(
            {"auth_code": follow(outbox, "moved@example.com")}
        )
        assert changed.user is not None
        assert changed.user.email == "moved@example.com"
    finally:
        close(client)


async def test_supabase_py_pkce_mail_links(pg_server: PgServer, tmp_path: Path) -> None:
    name = pg_server.create_database()
    db_url = pg_server.url(name)
    config = Config(data_dir=tmp_path, database_url=db_url, auth=AuthConfig(autoconfirm=False))
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
    async with open_project(config, url=url) as project:
        server = HttpServer(project.app, config.http)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listeners)
            await trio.to_thread.run_sync(
                exercise, url, project.secrets.anon_key, Outbox(config.outbox_dir)
            )
            server.begin_shutdown()
