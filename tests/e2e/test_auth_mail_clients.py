"""The mailing flows of `/auth/v1` through supabase-py, with autoconfirm off and the outbox mailer.

Sign-up with a confirmation code, password sign-in before and after, magic link / OTP, password
recovery, a secure email change from both addresses, reauthentication, phone OTP by SMS and a
phone change, and the admin invite and generate_link calls with the service_role key. Mails and
texts are read from the outbox directory.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import supabase
import trio
from supabase_auth.errors import AuthApiError

from madbase.config import AuthConfig, Config
from madbase.protocol.http import Service
from madbase.runtime.auth import auth_service
from madbase.runtime.http import HttpServer
from madbase.runtime.serve import open_project
from tests.conftest import PgServer

pytestmark = [pytest.mark.pg, pytest.mark.clients]

PASSWORD = "s3cret-pass"


class Outbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def mails(self, to: str) -> list[dict[str, Any]]:
        found = []
        for path in sorted(self.directory.glob("*.json")):
            record = json.loads(path.read_text())
            if record["to"] == to:
                found.append(record)
        return found

    def last(self, to: str) -> dict[str, Any]:
        mails = self.mails(to)
        assert mails, f"no mail to {to}"
        return mails[-1]

    def otp(self, to: str) -> str:
        found = re.search(r"\b(\d{6})\b", self.last(to)["text"])
        assert found
        return found.group(1)

    def token_hash(self, to: str) -> str:
        found = re.search(r"(http://\S+/verify\?\S+)", self.last(to)["text"])
        assert found
        return parse_qs(urlsplit(found.group(1)).query)["token"][0]


def close(client: supabase.Client) -> None:
    client.postgrest.aclose()
    client.auth._http_client.close()


def exercise(url: str, anon_key: str, service_key: str, outbox: Outbox) -> None:
    client = supabase.create_client(url, anon_key)
    admin = supabase.create_client(url, service_key)
    try:
        user_flows(client, outbox)
        phone_flows(client, outbox)
        admin_flows(client, admin, outbox)
    finally:
        close(client)
        close(admin)


def user_flows(client: supabase.Client, outbox: Outbox) -> None:
    signed_up = client.auth.sign_up({"email": "py@example.com", "password": PASSWORD})
    assert signed_up.session is None
    assert signed_up.user is not None
    assert signed_up.user.confirmation_sent_at is not None
    assert outbox.last("py@example.com")["subject"] == "Confirm your email address"
    with pytest.raises(AuthApiError) as unconfirmed:
        client.auth.sign_in_with_password({"email": "py@example.com", "password": PASSWORD})
    assert unconfirmed.value.code == "email_not_confirmed"

    verified = client.auth.verify_otp(
        {"email": "py@example.com", "token": outbox.otp("py@example.com"), "type": "signup"}
    )
    assert verified.session is not None
    assert verified.user is not None
    assert verified.user.email_confirmed_at is not None
    client.auth.sign_out()

    # Magic link / OTP sign-in for a known address.
    client.auth.sign_in_with_otp(
        {"email": "py@example.com", "options": {"should_create_user": False}}
    )
    assert outbox.last("py@example.com")["kind"] == "magic_link"
    otp_session = client.auth.verify_otp(
        {"email": "py@example.com", "token": outbox.otp("py@example.com"), "type": "email"}
    )
    assert otp_session.session is not None
    with pytest.raises(AuthApiError) as disabled:
        client.auth.sign_in_with_otp(
            {"email": "nobody@example.com", "options": {"should_create_user": False}}
        )
    assert disabled.value.code == "otp_disabled"
    with pytest.raises(AuthApiError) as too_soon:
        client.auth.sign_in_with_otp({"email": "py@example.com"})
    assert too_soon.value.code == "over_email_send_rate_limit"
    assert too_soon.value.status == 429

    # Secure email change: links to both addresses.
    changed = client.auth.update_user({"email": "py2@example.com"})
    assert changed.user.new_email == "py2@example.com"
    half = client.auth.verify_otp(
        {"email": "py@example.com", "token": outbox.otp("py@example.com"), "type": "email_change"}
    )
    assert half.session is None
    done = client.auth.verify_otp(
        {"token_hash": outbox.token_hash("py2@example.com"), "type": "email_change"}
    )
    assert done.user is not None
    assert done.user.email == "py2@example.com"

    # Reauthentication sends a nonce; the password change accepts it.
    client.auth.reauthenticate()
    nonce_mail = outbox.last("py2@example.com")
    assert nonce_mail["kind"] == "reauthentication"
    nonce = outbox.otp("py2@example.com")
    client.auth.update_user({"password": "second-pass", "nonce": nonce})
    client.auth.sign_out()

    # Recovery: same answer for an unknown address; the link's hash signs in.
    client.auth.reset_password_for_email("ghost@example.com")
    assert outbox.mails("ghost@example.com") == []
    client.auth.reset_password_for_email("py2@example.com")
    assert outbox.last("py2@example.com")["kind"] == "recovery"
    recovered = client.auth.verify_otp(
        {"token_hash": outbox.token_hash("py2@example.com"), "type": "recovery"}
    )
    assert recovered.session is not None
    client.auth.update_user({"password": "third-pass"})
    client.auth.sign_out()
    again = client.auth.sign_in_with_password(
        {"email": "py2@example.com", "password": "third-pass"}
    )
    assert again.session is not None
    client.auth.sign_out()


def phone_flows(client: supabase.Client, outbox: Outbox) -> None:
    client.auth.sign_in_with_otp({"phone": "+15550100"})
    code = outbox.last("15550100")["text"].removeprefix("Your code is ")
    signed_in = client.auth.verify_otp({"phone": "+15550100", "token": code, "type": "sms"})
    assert signed_in.user is not None
    assert signed_in.user.phone == "15550100"
    assert signed_in.user.phone_confirmed_at is not None
    # Phone change: a code texted to the new number, typed with it.
    pending = client.auth.update_user({"phone": "+15550177"})
    assert pending.user.new_phone == "15550177"
    code = outbox.last("15550177")["text"].removeprefix("Your code is ")
    changed = client.auth.verify_otp({"phone": "+15550177", "token": code, "type": "phone_change"})
    assert changed.user is not None
    assert changed.user.phone == "15550177"
    assert client.auth.get_user().user.phone == "15550177"
    client.auth.sign_out()


def admin_flows(client: supabase.Client, admin: supabase.Client, outbox: Outbox) -> None:
    with pytest.raises(AuthApiError) as refused:
        client.auth.admin.invite_user_by_email("inv@example.com")
    assert refused.value.code == "not_admin"
    invited = admin.auth.admin.invite_user_by_email("inv@example.com", {"data": {"team": "a"}})
    assert invited.user.invited_at is not None
    assert outbox.last("inv@example.com")["kind"] == "invite"
    accepted = client.auth.verify_otp(
        {"email": "inv@example.com", "token": outbox.otp("inv@example.com"), "type": "invite"}
    )
    assert accepted.user is not None
    assert accepted.user.user_metadata["team"] == "a"
    client.auth.sign_out()

    link = admin.auth.admin.generate_link({"type": "magiclink", "email": "inv@example.com"})
    assert link.user.email == "inv@example.com"
    assert link.properties.verification_type == "magiclink"
    assert link.properties.action_link.split("?")[0].endswith("/auth/v1/verify")
    via_link = client.auth.verify_otp(
        {"email": "inv@example.com", "token": link.properties.email_otp, "type": "magiclink"}
    )
    assert via_link.session is not None
    client.auth.sign_out()


async def test_supabase_py_mail_flows(pg_server: PgServer, tmp_path: Path) -> None:
    name = pg_server.create_database()
    db_url = pg_server.url(name)
    config = Config(
        data_dir=tmp_path,
        database_url=db_url,
        auth=AuthConfig(autoconfirm=False, secure_password_change=True, phone=True),
    )
    async with open_project(config) as project:
        app = project.app
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        app.services[Service.AUTH] = auth_service(
            config, project.auth_pool, project.secrets.jwt_secret, url=url
        )
        server = HttpServer(app, config.http)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listeners)
            await trio.to_thread.run_sync(
                exercise,
                url,
                project.secrets.anon_key,
                project.secrets.service_role_key,
                Outbox(config.outbox_dir),
            )
            server.begin_shutdown()
