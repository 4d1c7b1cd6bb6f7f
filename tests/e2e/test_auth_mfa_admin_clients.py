"""TOTP MFA and the admin users API through supabase-py (`auth.mfa.*`, `auth.admin.*`).

The server runs in-process (the project of `madbase serve`); supabase-py's sync clients run in a
worker thread. TOTP codes are computed from the enrolment's secret with the wall clock, as an
authenticator app would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import supabase
import trio
from supabase_auth.errors import AuthApiError

from madbase.config import Config
from madbase.protocol.auth.mfa.totp import decode_secret, totp_at
from madbase.runtime.http import HttpServer
from madbase.runtime.serve import open_project
from tests.conftest import PgServer

pytestmark = [pytest.mark.pg, pytest.mark.clients]


def code_for(secret: str) -> str:
    return totp_at(decode_secret(secret), datetime.now(UTC))


def exercise_mfa(client: supabase.Client) -> str:
    signed_up = client.auth.sign_up({"email": "mfa@example.com", "password": "s3cret-pass"})
    assert signed_up.user is not None
    enrolled = client.auth.mfa.enroll({"factor_type": "totp", "friendly_name": "authenticator"})
    assert enrolled.type == "totp"
    assert enrolled.friendly_name == "authenticator"
    assert enrolled.totp is not None
    assert enrolled.totp.qr_code.startswith("data:image/svg+xml;utf-8,<?xml")
    assert enrolled.totp.uri.startswith("otpauth://totp/")
    level = client.auth.mfa.get_authenticator_assurance_level()
    assert (level.current_level, level.next_level) == ("aal1", "aal1")

    challenge = client.auth.mfa.challenge({"factor_id": enrolled.id})
    assert challenge.factor_type == "totp"
    with pytest.raises(AuthApiError) as wrong:
        client.auth.mfa.verify(
            {"factor_id": enrolled.id, "challenge_id": challenge.id, "code": "000000"}
        )
    assert wrong.value.code == "mfa_verification_failed"
    verified = client.auth.mfa.verify(
        {
            "factor_id": enrolled.id,
            "challenge_id": challenge.id,
            "code": code_for(enrolled.totp.secret),
        }
    )
    assert verified.user.factors is not None
    assert verified.user.factors[0].status == "verified"
    level = client.auth.mfa.get_authenticator_assurance_level()
    assert (level.current_level, level.next_level) == ("aal2", "aal2")
    assert {m.method for m in level.current_authentication_methods} == {"password", "totp"}
    factors = client.auth.mfa.list_factors()
    assert [f.id for f in factors.totp] == [enrolled.id]

    # Refreshing keeps aal2.
    client.auth.refresh_session()
    assert client.auth.mfa.get_authenticator_assurance_level().current_level == "aal2"

    # A second factor through challenge_and_verify, then unenrolment of the first at aal2.
    second = client.auth.mfa.enroll({"factor_type": "totp", "friendly_name": "backup"})
    assert second.totp is not None
    client.auth.mfa.challenge_and_verify(
        {"factor_id": second.id, "code": code_for(second.totp.secret)}
    )
    removed = client.auth.mfa.unenroll({"factor_id": enrolled.id})
    assert removed.id == enrolled.id
    assert [f.id for f in client.auth.mfa.list_factors().all] == [second.id]
    return signed_up.user.id


def exercise_admin(admin: supabase.Client, mfa_user: str) -> None:
    created = admin.auth.admin.create_user(
        {
            "email": "admin-made@example.com",
            "password": "made-by-admin",
            "email_confirm": True,
            "user_metadata": {"name": "Made"},
            "app_metadata": {"plan": "pro"},
        }
    )
    user = created.user
    assert user.email == "admin-made@example.com"
    assert user.app_metadata["plan"] == "pro"
    assert user.email_confirmed_at is not None
    with pytest.raises(AuthApiError) as duplicate:
        admin.auth.admin.create_user({"email": "admin-made@example.com"})
    assert duplicate.value.code == "email_exists"

    listed = admin.auth.admin.list_users(page=1, per_page=1)
    assert len(listed) == 1
    everyone = admin.auth.admin.list_users()
    assert {u.id for u in everyone} >= {user.id, mfa_user}

    fetched = admin.auth.admin.get_user_by_id(user.id)
    assert fetched.user.user_metadata["name"] == "Made"
    updated = admin.auth.admin.update_user_by_id(
        user.id, {"user_metadata": {"age": 3}, "ban_duration": "24h"}
    )
    assert updated.user.user_metadata == {"name": "Made", "age": 3, "email_verified": True}
    assert updated.user.banned_until is not None
    unbanned = admin.auth.admin.update_user_by_id(user.id, {"ban_duration": "none"})
    assert unbanned.user.banned_until is None

    # supabase-py parses the list itself (auth-js wraps it in {factors}).
    factors = admin.auth.admin.mfa.list_factors({"user_id": mfa_user})
    assert [f.status for f in factors] == ["verified"]
    deleted = admin.auth.admin.mfa.delete_factor({"user_id": mfa_user, "id": factors[0].id})
    assert deleted.id == factors[0].id
    assert admin.auth.admin.mfa.list_factors({"user_id": mfa_user}) == []

    admin.auth.admin.delete_user(user.id, should_soft_delete=True)
    assert admin.auth.admin.get_user_by_id(user.id).user.deleted_at is not None
    admin.auth.admin.delete_user(mfa_user)
    with pytest.raises(AuthApiError) as gone:
        admin.auth.admin.get_user_by_id(mfa_user)
    assert (gone.value.status, gone.value.code) == (404, "user_not_found")


def client_session(url: str, anon_key: str, service_key: str) -> None:
    user_client = supabase.create_client(url, anon_key)
    admin_client = supabase.create_client(url, service_key)
    anon_client = supabase.create_client(url, anon_key)
    try:
        mfa_user = exercise_mfa(user_client)
        with pytest.raises(AuthApiError) as refused:
            anon_client.auth.admin.list_users()
        assert (refused.value.status, refused.value.code) == (403, "not_admin")
        exercise_admin(admin_client, mfa_user)
        # The deleted user's session is gone with it.
        with pytest.raises(AuthApiError):
            user_client.auth.get_user(user_client.auth.get_session().access_token)  # type: ignore[union-attr]
    finally:
        for client in (user_client, admin_client, anon_client):
            client.postgrest.aclose()
            client.auth._http_client.close()


async def test_supabase_py_mfa_and_admin(pg_server: PgServer, tmp_path: Path) -> None:
    name = pg_server.create_database()
    config = Config(data_dir=tmp_path, database_url=pg_server.url(name))
    async with open_project(config) as project:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        server = HttpServer(project.app, config.http)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listeners)
            await trio.to_thread.run_sync(
                client_session,
                f"http://127.0.0.1:{port}",
                project.secrets.anon_key,
                project.secrets.service_role_key,
            )
            server.begin_shutdown()
