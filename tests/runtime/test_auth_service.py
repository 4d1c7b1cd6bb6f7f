"""`AuthService` against the embedded Postgres: signup, grants, rotation, /user, logout, rehash."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import jwt
import psycopg
import pytest

from madbase.config import DbSettings
from madbase.protocol.auth import AuthLimits, SendMail
from madbase.protocol.auth.flows import DUMMY_HASH
from madbase.protocol.http import Dispatch, Request, Response, Service
from madbase.runtime.auth import AuthService
from madbase.runtime.db import Pool
from madbase.runtime.migrate import migrate

pytestmark = pytest.mark.pg

SECRET = "super-secret-jwt-token-with-at-least-32-characters"
VERSION = (("x-supabase-api-version", "2024-01-01"),)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


class Auth:
    def __init__(self, service: AuthService, clock: Clock, conninfo: str) -> None:
        self.service = service
        self.clock = clock
        self.conninfo = conninfo

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: tuple[tuple[str, str], ...] = VERSION,
        raw: bytes | None = None,
    ) -> Response:
        if token is not None:
            headers += (("authorization", f"Bearer {token}"),)
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        request = Request(
            method=method,
            target="/auth/v1" + path,
            headers=(("content-type", "application/json"), *headers),
            body=data,
            client="127.0.0.1",
        )
        subpath = path.split("?", 1)[0]
        return await self.service(
            request, Dispatch(service=Service.AUTH, subpath=subpath, role="anon")
        )

    async def signup(
        self, email: str = "alice@example.com", password: str = "s3cret-pass"
    ) -> dict[str, Any]:
        response = await self.call("POST", "/signup", {"email": email, "password": password})
        assert response.status == 200, response.body
        return body(response)

    def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


def body(response: Response) -> dict[str, Any]:
    value = json.loads(response.body)
    assert isinstance(value, dict)
    return value


@pytest.fixture
async def auth(database: str) -> AsyncIterator[Auth]:
    pool = Pool(database, DbSettings())
    try:
        await migrate(pool)
        clock = Clock()
        service = AuthService(
            pool=pool,
            secret=SECRET,
            limits=AuthLimits(anonymous_users_enabled=True),
            site_url="http://localhost:3000",
            clock=clock,
        )
        yield Auth(service, clock, database)
    finally:
        pool.close()


def decode(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token, SECRET, algorithms=["HS256"], audience="authenticated"
    )
    return claims


async def test_health_and_settings(auth: Auth) -> None:
    health = await auth.call("GET", "/health")
    assert (health.status, body(health)["name"]) == (200, "GoTrue")
    settings = body(await auth.call("GET", "/settings"))
    assert settings["mailer_autoconfirm"] is True
    assert settings["external"]["email"] is True


async def test_signup_returns_session(auth: Auth) -> None:
    session = await auth.signup(password="s3cret-pass")
    assert session["token_type"] == "bearer"
    assert session["expires_in"] == 3600
    assert len(session["refresh_token"]) == 12
    user = session["user"]
    assert user["email"] == "alice@example.com"
    assert user["role"] == "authenticated"
    assert user["app_metadata"] == {"provider": "email", "providers": ["email"]}
    assert user["user_metadata"]["email_verified"] is True
    assert user["identities"][0]["provider"] == "email"
    assert user["is_anonymous"] is False
    claims = decode(session["access_token"])
    assert claims["sub"] == user["id"]
    assert claims["role"] == "authenticated"
    assert claims["aal"] == "aal1"
    assert claims["amr"][0]["method"] == "password"
    assert claims["email"] == "alice@example.com"
    assert claims["is_anonymous"] is False
    assert auth.sql("select count(*) from auth.sessions where id = %s", claims["session_id"]) == [
        (1,)
    ]
    actions = auth.sql(
        "select payload->>'action', payload->>'log_type' from auth.audit_log_entries"
    )
    assert sorted(actions) == [("login", "account"), ("user_signedup", "team")]
    hashed = auth.sql("select encrypted_password from auth.users")[0][0]
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    # An unknown email is checked against DUMMY_HASH: it must cost what a real hash costs.
    assert DUMMY_HASH.rsplit("$", 2)[0] == hashed.rsplit("$", 2)[0]


async def test_signup_duplicate_and_weak_password(auth: Auth) -> None:
    await auth.signup()
    duplicate = await auth.call(
        "POST", "/signup", {"email": "Alice@example.com", "password": "another-pass"}
    )
    assert (duplicate.status, body(duplicate)["code"]) == (422, "user_already_exists")
    weak = await auth.call("POST", "/signup", {"email": "bob@example.com", "password": "abc"})
    assert weak.status == 422
    assert body(weak)["code"] == "weak_password"
    assert body(weak)["weak_password"] == {"reasons": ["length"]}


async def test_signup_anonymous(auth: Auth) -> None:
    session = body(await auth.call("POST", "/signup", {}))
    assert session["user"]["is_anonymous"] is True
    claims = decode(session["access_token"])
    assert claims["is_anonymous"] is True
    assert claims["amr"][0]["method"] == "anonymous"


class Outbox:
    def __init__(self) -> None:
        self.mails: list[SendMail] = []

    async def send(self, message: SendMail) -> None:
        self.mails.append(message)


async def test_signup_without_autoconfirm_returns_user_only(database: str) -> None:
    pool = Pool(database, DbSettings())
    try:
        await migrate(pool)
        outbox = Outbox()
        service = AuthService(
            pool=pool,
            secret=SECRET,
            limits=AuthLimits(),
            site_url="http://x",
            autoconfirm=False,
            mailer=outbox,
        )
        auth = Auth(service, Clock(), database)
        response = await auth.call(
            "POST", "/signup", {"email": "c@example.com", "password": "s3cret-pass"}
        )
        assert response.status == 200
        assert [m.to for m in outbox.mails] == ["c@example.com"]
        user = body(response)
        assert "access_token" not in user
        assert "email_confirmed_at" not in user
        grant = await auth.call(
            "POST",
            "/token?grant_type=password",
            {"email": "c@example.com", "password": "s3cret-pass"},
        )
        assert (grant.status, body(grant)["code"]) == (400, "email_not_confirmed")
    finally:
        pool.close()


async def test_password_grant(auth: Auth) -> None:
    signed_up = await auth.signup()
    ok = await auth.call(
        "POST",
        "/token?grant_type=password",
        {"email": "ALICE@example.com", "password": "s3cret-pass"},
    )
    assert ok.status == 200, ok.body
    session = body(ok)
    assert session["user"]["id"] == signed_up["user"]["id"]
    assert "last_sign_in_at" in session["user"]
    assert (
        decode(session["access_token"])["session_id"]
        != decode(signed_up["access_token"])["session_id"]
    )
    wrong = await auth.call(
        "POST",
        "/token?grant_type=password",
        {"email": "alice@example.com", "password": "wrong-pass"},
    )
    unknown = await auth.call(
        "POST",
        "/token?grant_type=password",
        {"email": "nobody@example.com", "password": "s3cret-pass"},
    )
    assert wrong.status == unknown.status == 400
    assert (
        wrong.body
        == unknown.body
        == b'{"code":"invalid_credentials","message":"Invalid login credentials"}'
    )


async def test_password_grant_reports_weak_password(auth: Auth) -> None:
    await auth.signup(password="s3cret-pass")
    limits = AuthLimits(password_min_length=20)
    auth.service._settings = attrs_evolve(auth.service._settings, limits=limits)
    session = body(
        await auth.call(
            "POST",
            "/token?grant_type=password",
            {"email": "alice@example.com", "password": "s3cret-pass"},
        )
    )
    assert session["weak_password"]["reasons"] == ["length"]


def attrs_evolve(value: Any, **changes: Any) -> Any:
    import attrs

    return attrs.evolve(value, **changes)


async def test_get_user(auth: Auth) -> None:
    session = await auth.signup()
    me = await auth.call("GET", "/user", token=session["access_token"])
    assert me.status == 200
    assert body(me)["id"] == session["user"]["id"]
    missing = await auth.call("GET", "/user")
    assert (missing.status, body(missing)["code"]) == (401, "no_authorization")
    bad = await auth.call("GET", "/user", token="a.b.c")
    assert (bad.status, body(bad)["code"]) == (403, "bad_jwt")


async def test_refresh_rotation_and_reuse(auth: Auth) -> None:
    session = await auth.signup()
    first = session["refresh_token"]
    rotated = await auth.call("POST", "/token?grant_type=refresh_token", {"refresh_token": first})
    assert rotated.status == 200, rotated.body
    second = body(rotated)["refresh_token"]
    assert second != first
    assert len(second) == 12
    # The old token again, within the reuse interval: the current one comes back.
    again = body(
        await auth.call("POST", "/token?grant_type=refresh_token", {"refresh_token": first})
    )
    assert again["refresh_token"] == second
    # Outside the interval: reuse detected, the whole session's tokens are revoked.
    auth.clock.now += timedelta(seconds=30)
    third = body(
        await auth.call("POST", "/token?grant_type=refresh_token", {"refresh_token": second})
    )["refresh_token"]
    auth.clock.now += timedelta(seconds=30)
    reused = await auth.call("POST", "/token?grant_type=refresh_token", {"refresh_token": first})
    assert (reused.status, body(reused)["code"]) == (400, "refresh_token_already_used")
    session_id = decode(session["access_token"])["session_id"]
    assert auth.sql(
        "select count(*) from auth.refresh_tokens where session_id = %s and not revoked", session_id
    ) == [(0,)]
    auth.clock.now += timedelta(seconds=30)
    late = await auth.call("POST", "/token?grant_type=refresh_token", {"refresh_token": third})
    assert body(late)["code"] == "refresh_token_already_used"
    unknown = await auth.call(
        "POST", "/token?grant_type=refresh_token", {"refresh_token": "abcdefghijkl"}
    )
    assert (unknown.status, body(unknown)["code"]) == (400, "refresh_token_not_found")


async def test_update_user_metadata_and_password(auth: Auth) -> None:
    session = await auth.signup()
    token = session["access_token"]
    updated = await auth.call(
        "PUT", "/user", {"data": {"name": "Alice", "email_verified": None}}, token=token
    )
    assert updated.status == 200, updated.body
    metadata = body(updated)["user_metadata"]
    assert metadata["name"] == "Alice"
    assert "email_verified" not in metadata
    same = await auth.call("PUT", "/user", {"password": "s3cret-pass"}, token=token)
    assert (same.status, body(same)["code"]) == (422, "same_password")
    changed = await auth.call("PUT", "/user", {"password": "new-s3cret"}, token=token)
    assert changed.status == 200
    old = await auth.call(
        "POST",
        "/token?grant_type=password",
        {"email": "alice@example.com", "password": "s3cret-pass"},
    )
    assert old.status == 400
    new = await auth.call(
        "POST",
        "/token?grant_type=password",
        {"email": "alice@example.com", "password": "new-s3cret"},
    )
    assert new.status == 200


async def test_logout_scopes(auth: Auth) -> None:
    first = await auth.signup()
    login = {"email": "alice@example.com", "password": "s3cret-pass"}
    second = body(await auth.call("POST", "/token?grant_type=password", login))
    third = body(await auth.call("POST", "/token?grant_type=password", login))
    others = await auth.call("POST", "/logout?scope=others", token=third["access_token"])
    assert others.status == 204
    assert auth.sql("select count(*) from auth.sessions") == [(1,)]
    refused = await auth.call(
        "POST", "/token?grant_type=refresh_token", {"refresh_token": second["refresh_token"]}
    )
    assert body(refused)["code"] == "refresh_token_not_found"
    local = await auth.call("POST", "/logout?scope=local", token=third["access_token"])
    assert local.status == 204
    gone = await auth.call("GET", "/user", token=third["access_token"])
    assert (gone.status, body(gone)["code"]) == (403, "session_not_found")
    again = await auth.call("POST", "/logout", token=third["access_token"])
    assert (again.status, body(again)["code"]) == (403, "session_not_found")
    refused = await auth.call(
        "POST", "/token?grant_type=refresh_token", {"refresh_token": third["refresh_token"]}
    )
    assert refused.status == 400
    bad_scope = await auth.call("POST", "/logout?scope=all", token=first["access_token"])
    assert (bad_scope.status, body(bad_scope)["code"]) == (400, "validation_failed")
    assert ("logout",) in auth.sql("select payload->>'action' from auth.audit_log_entries")


async def test_bcrypt_user_is_rehashed(auth: Auth) -> None:
    user_id = "7cf66202-56e8-4531-a415-dddd2acbbe6c"
    hashed = bcrypt.hashpw(b"gotrue-pass", bcrypt.gensalt(10, prefix=b"2a")).decode()
    assert hashed.startswith("$2a$10$")
    auth.sql(
        "insert into auth.users (instance_id, id, aud, role, email, encrypted_password,"
        " email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)"
        " values ('00000000-0000-0000-0000-000000000000', %s, 'authenticated', 'authenticated',"
        ' \'legacy@example.com\', %s, now(), \'{"provider":"email","providers":["email"]}\','
        " '{}', now(), now())",
        user_id,
        hashed,
    )
    wrong = await auth.call(
        "POST",
        "/token?grant_type=password",
        {"email": "legacy@example.com", "password": "nope-nope"},
    )
    assert wrong.status == 400
    ok = await auth.call(
        "POST",
        "/token?grant_type=password",
        {"email": "legacy@example.com", "password": "gotrue-pass"},
    )
    assert ok.status == 200, ok.body
    assert auth.sql("select encrypted_password from auth.users where id = %s", user_id)[0][
        0
    ].startswith("$argon2id$")
    again = await auth.call(
        "POST",
        "/token?grant_type=password",
        {"email": "legacy@example.com", "password": "gotrue-pass"},
    )
    assert again.status == 200


async def test_error_shapes_and_unknown_paths(auth: Auth) -> None:
    legacy = await auth.call("POST", "/signup", raw=b"{nope", headers=())
    assert legacy.status == 400
    assert body(legacy)["error_code"] == "bad_json"
    assert body(legacy)["code"] == 400
    assert "msg" in body(legacy)
    versioned = await auth.call("POST", "/signup", raw=b"{nope")
    assert body(versioned)["code"] == "bad_json"
    assert versioned.header("x-supabase-api-version") == "2024-01-01"
    unknown = await auth.call("GET", "/nope")
    assert unknown.status == 404
    grant = await auth.call("POST", "/token?grant_type=magic", {})
    assert (grant.status, body(grant)["code"]) == (400, "invalid_credentials")
    array = await auth.call("POST", "/token?grant_type=password", [1])
    assert (array.status, body(array)["code"]) == (400, "bad_json")
