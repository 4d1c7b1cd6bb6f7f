"""The `/auth/v1` flows driven by hand: every command answered with a fake result, no database.

A flow is a generator of commands (`RunTransaction`, `HashPassword`, `CheckPassword`,
`DrawRandom`); `drive` plays the runtime's part from a script of answers, one per command, and
records what the flow asked for. Rows are shaped as `tests/runtime/test_auth_service.py` sees them
from the real database: a user is one `jsonb` text value, a session another, a refresh token a
third.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Generator, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import jwt
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from madbase.protocol.auth import (
    AuthAnswer,
    AuthCommand,
    AuthLimits,
    AuthSettings,
    CheckPassword,
    DrawRandom,
    HashPassword,
    RunTransaction,
    SendMail,
    auth_answer,
)
from madbase.protocol.auth.flows import auth_flow
from madbase.protocol.auth.mail.messages import MailKind
from madbase.protocol.auth.refresh import new_refresh_token
from madbase.protocol.http import Request, Response
from madbase.protocol.sql import DbError, DbResult, Statement, Transaction

SECRET = "super-secret-jwt-token-with-at-least-32-characters"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
STAMP = "2024-06-01T12:00:00+00:00"
T0 = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
LIMITS = AuthLimits(anonymous_users_enabled=True, phone_enabled=True)
SETTINGS = AuthSettings(limits=LIMITS, secret=SECRET, site_url="http://localhost:3000")
USER_ID = "11111111-1111-4111-8111-111111111111"
SESSION_ID = "22222222-2222-4222-8222-222222222222"
OTHER_SESSION = "33333333-3333-4333-8333-333333333333"
ARGON2ID = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
NEW_HASH = "$argon2id$v=19$m=65536,t=3,p=4$bmV3c2FsdG5ld3NhbHQ$bmV3aGFzaG5ld2hhc2g"
BCRYPT = "$2a$10$" + "N" * 53
PASSWORD = "s3cret-pass"
# What the fake CSPRNG answers: a fixed, recognisable byte sequence.
RANDOM = bytes(range(7, 256))
VERSION = (("x-supabase-api-version", "2024-01-01"),)
NIL = "00000000-0000-0000-0000-000000000000"


def uuid_at(index: int, random: bytes = RANDOM) -> str:
    """The uuid a flow makes of the `index`-th 16 bytes of its random draw."""
    return str(uuid.UUID(bytes=random[index * 16 : (index + 1) * 16], version=4))


# --- rows ----------------------------------------------------------------------------------------


def user_json(**overrides: Any) -> bytes:
    row: dict[str, Any] = {
        "id": USER_ID,
        "aud": "authenticated",
        "role": "authenticated",
        "email": "alice@example.com",
        "phone": None,
        "encrypted_password": ARGON2ID,
        "email_confirmed_at": "2024-05-01T08:30:00+00:00",
        "phone_confirmed_at": None,
        "last_sign_in_at": None,
        "raw_app_meta_data": {"provider": "email", "providers": ["email"]},
        "raw_user_meta_data": {"email_verified": True},
        "created_at": "2024-05-01T08:30:00+00:00",
        "updated_at": "2024-05-01T08:30:00+00:00",
        "banned_until": None,
        "is_anonymous": False,
        "is_sso_user": False,
    }
    row.update(overrides)
    return json.dumps({"user": row, "identities": [], "factors": []}).encode()


def session_json(**overrides: Any) -> bytes:
    row: dict[str, Any] = {
        "id": SESSION_ID,
        "user_id": USER_ID,
        "created_at": "2024-06-01T11:59:00+00:00",
        "updated_at": "2024-06-01T11:59:00+00:00",
        "aal": "aal1",
        "refreshed_at": None,
    }
    row.update(overrides)
    amr = [{"method": "password", "updated_at": "2024-06-01T11:59:00+00:00"}]
    return json.dumps({"session": row, "amr": amr}).encode()


def token_json(token: str = "aaaaaaaaaaaa", **overrides: Any) -> bytes:
    row: dict[str, Any] = {
        "id": 41,
        "token": token,
        "user_id": USER_ID,
        "session_id": SESSION_ID,
        "revoked": False,
        "parent": None,
        "created_at": "2024-06-01T11:59:00+00:00",
        "updated_at": "2024-06-01T11:59:00+00:00",
    }
    row.update(overrides)
    return json.dumps(row).encode()


Rows = tuple[tuple[bytes | None, ...], ...]


# --- the fake runtime ----------------------------------------------------------------------------

Answer = Callable[[AuthCommand], object]


def tx(*, first: Rows = (), last: Rows = (), read_only: bool | None = None) -> Answer:
    """Answer a `RunTransaction`: one `DbResult` per statement, `first`/`last` rows where given."""

    def answer(command: AuthCommand) -> object:
        assert isinstance(command, RunTransaction), command
        if read_only is not None:
            assert command.tx.read_only is read_only
        count = len(command.tx.statements)
        results = [DbResult(rows=(), command="OK") for _ in range(count)]
        if first:
            results[0] = DbResult(rows=first, command="SELECT 1")
        if last:
            results[-1] = DbResult(rows=last, command="SELECT 1")
        return results

    return answer


def fail(sqlstate: str = "42P01", message: str = 'relation "auth.users" does not exist') -> Answer:
    def answer(command: AuthCommand) -> object:
        assert isinstance(command, RunTransaction), command
        return DbError(
            sqlstate=sqlstate,
            message=message,
            detail="Key (email)=(alice@example.com) already exists.",
            hint="secret-hint",
        )

    return answer


def rand(command: AuthCommand) -> object:
    assert isinstance(command, DrawRandom), command
    return RANDOM[: command.size]


def hashed(value: str = NEW_HASH) -> Answer:
    def answer(command: AuthCommand) -> object:
        assert isinstance(command, HashPassword), command
        return value

    return answer


def check(ok: bool) -> Answer:
    def answer(command: AuthCommand) -> object:
        assert isinstance(command, CheckPassword), command
        return ok

    return answer


@attrs.frozen
class Run:
    response: Response
    commands: list[AuthCommand]

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def body(self) -> Any:
        return json.loads(self.response.body)

    @property
    def code(self) -> Any:
        return self.body["code"]

    @property
    def kinds(self) -> list[type]:
        return [type(c) for c in self.commands]

    @property
    def transactions(self) -> list[Transaction]:
        return [c.tx for c in self.commands if isinstance(c, RunTransaction)]

    @property
    def statements(self) -> list[Statement]:
        return [s for t in self.transactions for s in t.statements]

    def params(self) -> list[str | None]:
        return [p for s in self.statements for p in s.params]


def make_request(
    method: str,
    path: str,
    body: object = None,
    *,
    token: str | None = None,
    headers: tuple[tuple[str, str], ...] = VERSION,
    raw: bytes | None = None,
    client: str | None = "127.0.0.1",
) -> Request:
    if token is not None:
        headers += (("authorization", f"Bearer {token}"),)
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return Request(
        method=method,
        target="/auth/v1" + path,
        headers=(("content-type", "application/json"), ("user-agent", "pytest"), *headers),
        body=data,
        client=client,
    )


def drive_request(
    request: Request,
    answers: Sequence[Answer],
    *,
    settings: AuthSettings = SETTINGS,
    now: datetime = NOW,
) -> Run:
    subpath = request.path.removeprefix("/auth/v1")
    flow = auth_flow(request, subpath, settings, now=now)
    commands: list[AuthCommand] = []
    pending = list(answers)
    result: object = None
    try:
        while True:
            command = flow.send(result)
            commands.append(command)
            assert pending, f"unexpected command {command!r} after {commands[:-1]!r}"
            result = pending.pop(0)(command)
    except StopIteration as stop:
        response = stop.value
    assert isinstance(response, Response)
    assert not pending, f"unused answers; commands were {commands!r}"
    return Run(response, commands)


def drive(
    method: str,
    path: str,
    body: object = None,
    answers: Sequence[Answer] = (),
    *,
    settings: AuthSettings = SETTINGS,
    now: datetime = NOW,
    **kwargs: Any,
) -> Run:
    return drive_request(
        make_request(method, path, body, **kwargs), answers, settings=settings, now=now
    )


def access_token(
    sub: object = USER_ID, session_id: object = SESSION_ID, *, exp: int | None = None, **extra: Any
) -> str:
    claims: dict[str, Any] = {
        "aud": "authenticated",
        "role": "authenticated",
        "exp": exp if exp is not None else int(NOW.timestamp()) + 3600,
        **extra,
    }
    if sub is not None:
        claims["sub"] = sub
    if session_id is not None:
        claims["session_id"] = session_id
    return jwt.encode(claims, SECRET, algorithm="HS256")


def decode(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token, SECRET, algorithms=["HS256"], audience="authenticated", options={"verify_exp": False}
    )
    return claims


def sql_starts(run: Run) -> list[str]:
    """The first words of every statement the flow ran, in order."""
    return [" ".join(s.sql.split()[:3]) for s in run.statements]


# The password grant's body and a refresh token, also used by the tests of request details.
LOGIN = {"email": "Alice@Example.com", "password": PASSWORD}
PRESENTED = "aaaaaaaaaaaa"


# --- routing, settings, error shapes -------------------------------------------------------------


def test_health_answers_without_io() -> None:
    run = drive("GET", "/health")
    assert run.commands == []
    assert (run.status, run.body["name"], run.body["version"]) == (200, "GoTrue", "v2.180.0")
    assert run.response.header("x-supabase-api-version") == "2024-01-01"
    assert run.response.header("content-type") == "application/json; charset=utf-8"


@pytest.mark.parametrize("autoconfirm", [True, False])
def test_settings_reflect_limits_and_autoconfirm(autoconfirm: bool) -> None:
    limits = AuthLimits(disable_signup=True, phone_enabled=True, email_enabled=False)
    settings = attrs.evolve(SETTINGS, limits=limits, autoconfirm=autoconfirm)
    run = drive("GET", "/settings", settings=settings)
    assert run.commands == []
    body = run.body
    external = body["external"]
    assert {k: external.pop(k) for k in ("anonymous_users", "email", "phone")} == {
        "anonymous_users": False,
        "email": False,
        "phone": True,
    }
    # Every OAuth provider GoTrue lists, none configured.
    assert {"github", "google", "apple", "azure", "gitlab", "discord"} <= set(external)
    assert not any(external.values())
    assert body == {
        "external": external,
        "disable_signup": True,
        "mailer_autoconfirm": autoconfirm,
        "phone_autoconfirm": autoconfirm,
        "sms_provider": "",
        "saml_enabled": False,
        "passkeys_enabled": False,
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", ""),
        ("GET", "/"),
        ("GET", "/signup"),
        ("POST", "/health"),
        ("DELETE", "/user"),
        ("GET", "/token"),
        ("GET", "/logout"),
        ("GET", "/user/extra"),
        ("GET", "/healthz"),
    ],
)
def test_unknown_routes_are_404_without_io(method: str, path: str) -> None:
    versioned = drive(method, path)
    assert versioned.commands == []
    assert (versioned.status, versioned.body) == (404, {"code": "unknown", "message": "Not Found"})
    assert versioned.response.header("x-supabase-api-version") == "2024-01-01"
    assert versioned.response.header("x-sb-error-code") is None
    legacy = drive(method, path, headers=())
    assert legacy.body == {"code": 404, "error_code": "unknown", "msg": "Not Found"}
    assert legacy.response.header("x-supabase-api-version") is None


@pytest.mark.parametrize("path", ["/health/", "/settings//", "/health"])
def test_trailing_slashes_route_the_same(path: str) -> None:
    assert drive("GET", path).status == 200


@pytest.mark.parametrize(
    ("headers", "expected_body", "echoed"),
    [
        ((), {"code": 400, "error_code": "bad_json"}, None),
        (
            (("x-supabase-api-version", "2023-12-31"),),
            {"code": 400, "error_code": "bad_json"},
            None,
        ),
        ((("x-supabase-api-version", "nonsense"),), {"code": 400, "error_code": "bad_json"}, None),
        (VERSION, {"code": "bad_json"}, "2024-01-01"),
        ((("x-supabase-api-version", "2031-02-03"),), {"code": "bad_json"}, "2024-01-01"),
    ],
)
def test_error_shape_follows_api_version(
    headers: tuple[tuple[str, str], ...], expected_body: dict[str, Any], echoed: str | None
) -> None:
    run = drive("POST", "/signup", raw=b"{nope", headers=headers)
    assert run.commands == []
    assert run.status == 400
    assert expected_body.items() <= run.body.items()
    assert ("msg" in run.body) is (echoed is None)
    assert ("message" in run.body) is (echoed is not None)
    assert run.response.header("x-supabase-api-version") == echoed
    assert run.response.header("x-sb-error-code") == "bad_json"


@pytest.mark.parametrize(
    ("headers", "echoed"),
    [((), None), (VERSION, "2024-01-01"), ((("x-supabase-api-version", "2023-01-01"),), None)],
)
def test_success_echoes_api_version_only_when_versioned(
    headers: tuple[tuple[str, str], ...], echoed: str | None
) -> None:
    run = drive("GET", "/health", headers=headers)
    assert run.response.header("x-supabase-api-version") == echoed


# --- POST /signup --------------------------------------------------------------------------------

SIGNUP_RANDOM = 6 * 16 + 8
SIGNUP_TOKEN = new_refresh_token(RANDOM[96:104])


def signup_answers(row: bytes) -> list[Answer]:
    return [rand, hashed(), tx(last=((row,),), read_only=False)]


def test_signup_email_autoconfirm_signs_in() -> None:
    row = user_json(id=uuid_at(0), encrypted_password=NEW_HASH)
    run = drive(
        "POST",
        "/signup",
        {"email": "Alice@Example.com", "password": PASSWORD, "data": {"name": "Al"}},
        signup_answers(row),
    )
    assert run.status == 200, run.body
    assert run.kinds == [DrawRandom, HashPassword, RunTransaction]
    assert run.commands[0] == DrawRandom(size=SIGNUP_RANDOM)
    assert run.commands[1] == HashPassword(password=PASSWORD)
    user_id, identity_id, session_id, claim_id, audit1, audit2 = (uuid_at(i) for i in range(6))
    assert sql_starts(run) == [
        "insert into auth.users",
        "insert into auth.identities",
        "insert into auth.audit_log_entries",
        "insert into auth.sessions",
        "insert into auth.mfa_amr_claims",
        "insert into auth.refresh_tokens",
        "insert into auth.audit_log_entries",
        "select jsonb_build_object( 'user',",
    ]
    user, identity, signed_up, session, claim, token, login, select = run.statements
    assert user.params == (
        NIL,
        user_id,
        "authenticated",
        "alice@example.com",
        None,
        NEW_HASH,
        STAMP,
        None,
        STAMP,
        '{"provider":"email","providers":["email"]}',
        json.dumps(
            {
                "name": "Al",
                "sub": user_id,
                "email_verified": True,
                "phone_verified": False,
                "email": "alice@example.com",
            },
            separators=(",", ":"),
        ),
        STAMP,
        "false",
    )
    assert identity.params[:3] == (identity_id, user_id, user_id)
    assert identity.params[4:] == ("email", STAMP, STAMP)
    assert json.loads(identity.params[3] or "") == {
        "sub": user_id,
        "email_verified": True,
        "phone_verified": False,
        "email": "alice@example.com",
    }
    assert signed_up.params[1:5] == (audit1, "user_signedup", "team", '{"provider":"email"}')
    assert signed_up.params[6:] == ("127.0.0.1", user_id)
    assert session.params == (session_id, user_id, STAMP, "pytest", "127.0.0.1")
    assert claim.params == (claim_id, session_id, STAMP, "password")
    assert token.params == (NIL, SIGNUP_TOKEN, user_id, STAMP, None, session_id)
    assert login.params[1:4] == (audit2, "login", "account")
    assert select.params == (user_id,)
    body = run.body
    assert body["refresh_token"] == SIGNUP_TOKEN
    assert (body["token_type"], body["expires_in"]) == ("bearer", 3600)
    assert body["expires_at"] == int(NOW.timestamp()) + 3600
    assert body["user"]["id"] == user_id
    claims = decode(body["access_token"])
    assert (claims["sub"], claims["session_id"]) == (user_id, session_id)
    assert claims["amr"] == [{"method": "password", "timestamp": int(NOW.timestamp())}]
    assert claims["iat"] == int(NOW.timestamp())
    assert PASSWORD not in run.params()


def sent(command: AuthCommand) -> object:
    assert isinstance(command, SendMail), command
    return None


def test_signup_without_autoconfirm_returns_the_user_only() -> None:
    settings = attrs.evolve(SETTINGS, autoconfirm=False)
    row = user_json(id=uuid_at(0), email_confirmed_at=None, email="c@example.com")
    stored = ((uuid_at(0).encode(),),)
    run = drive(
        "POST",
        "/signup",
        {"email": "c@example.com", "password": PASSWORD},
        [*signup_answers(row), rand, tx(first=stored, last=((row,),)), sent],
        settings=settings,
    )
    assert run.status == 200
    assert sql_starts(run) == [
        "insert into auth.users",
        "insert into auth.identities",
        "insert into auth.audit_log_entries",
        "select jsonb_build_object( 'user',",
        "with u as",
        "select jsonb_build_object( 'user',",
    ]
    mail = run.commands[-1]
    assert isinstance(mail, SendMail)
    assert (mail.to, mail.kind, mail.subject) == (
        "c@example.com",
        MailKind.CONFIRMATION,
        "Confirm your email address",
    )
    user, identity, *_ = run.statements
    # email_confirmed_at, phone_confirmed_at, last_sign_in_at
    assert user.params[6:9] == (None, None, None)
    assert identity.params[5] is None
    assert json.loads(identity.params[3] or "")["email_verified"] is False
    assert "access_token" not in run.body
    assert run.body["id"] == uuid_at(0)
    assert "email_confirmed_at" not in run.body


def test_signup_phone_autoconfirm() -> None:
    row = user_json(id=uuid_at(0), email=None, phone="15550100")
    run = drive(
        "POST", "/signup", {"phone": "+1 555 0100", "password": PASSWORD}, signup_answers(row)
    )
    assert run.status == 200, run.body
    user, identity, signed_up, *_ = run.statements
    assert user.params[3:5] == (None, "15550100")
    assert user.params[6:9] == (None, STAMP, STAMP)
    assert json.loads(user.params[9] or "") == {"provider": "phone", "providers": ["phone"]}
    assert json.loads(identity.params[3] or "") == {
        "sub": uuid_at(0),
        "email_verified": False,
        "phone_verified": True,
        "phone": "15550100",
    }
    assert identity.params[4] == "phone"
    assert signed_up.params[4] == '{"provider":"phone"}'


def test_signup_anonymous_skips_hash_and_identity() -> None:
    settings = attrs.evolve(SETTINGS, autoconfirm=False)  # anonymous users are always confirmed
    row = user_json(id=uuid_at(0), email=None, encrypted_password="", is_anonymous=True)
    run = drive(
        "POST",
        "/signup",
        {"data": {"theme": "dark"}},
        [rand, tx(last=((row,),))],
        settings=settings,
    )
    assert run.status == 200, run.body
    assert run.kinds == [DrawRandom, RunTransaction]
    assert sql_starts(run) == [
        "insert into auth.users",
        "insert into auth.audit_log_entries",
        "insert into auth.sessions",
        "insert into auth.mfa_amr_claims",
        "insert into auth.refresh_tokens",
        "insert into auth.audit_log_entries",
        "select jsonb_build_object( 'user',",
    ]
    user = run.statements[0]
    assert user.params[3:9] == (None, None, "", None, None, STAMP)
    assert (user.params[9], user.params[10], user.params[12]) == ("{}", '{"theme":"dark"}', "true")
    assert run.statements[1].params[4] == '{"provider":"anonymous"}'
    assert run.statements[3].params[3] == "anonymous"
    claims = decode(run.body["access_token"])
    assert claims["is_anonymous"] is True
    assert claims["amr"][0]["method"] == "anonymous"


def test_signup_identity_fields_override_user_data() -> None:
    row = user_json(id=uuid_at(0))
    run = drive(
        "POST",
        "/signup",
        {"email": "a@b.co", "password": PASSWORD, "data": {"email": "spoof", "sub": "x", "k": 1}},
        signup_answers(row),
    )
    metadata = json.loads(run.statements[0].params[10] or "")
    assert metadata == {
        "email": "a@b.co",
        "sub": uuid_at(0),
        "k": 1,
        "email_verified": True,
        "phone_verified": False,
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"email": "alice@example.com", "password": PASSWORD}, "user_already_exists"),
        ({"phone": "15550100", "password": PASSWORD}, "phone_exists"),
    ],
)
def test_signup_duplicate_is_422(body: dict[str, str], code: str) -> None:
    run = drive("POST", "/signup", body, [rand, hashed(), fail("23505", "duplicate key")])
    assert (run.status, run.code) == (422, code)
    assert run.response.header("x-sb-error-code") == code


def test_signup_database_failure_is_500_without_details() -> None:
    run = drive(
        "POST",
        "/signup",
        {"email": "alice@example.com", "password": PASSWORD},
        [rand, hashed(), fail("57014", "canceling statement due to statement timeout")],
    )
    assert (run.status, run.code) == (500, "unexpected_failure")
    text = run.response.body.decode()
    for leaked in ("canceling statement", "Key (email)", "secret-hint", "alice@example.com"):
        assert leaked not in text


@pytest.mark.parametrize(
    ("body", "limits", "status", "code"),
    [
        ({"email": "a@b.co", "password": "abc"}, LIMITS, 422, "weak_password"),
        ({"email": "a@b.co"}, LIMITS, 400, "validation_failed"),
        ({"email": "a@b.co", "password": "x" * 73}, LIMITS, 400, "validation_failed"),
        ({"email": "nope", "password": PASSWORD}, LIMITS, 400, "validation_failed"),
        ({}, AuthLimits(), 422, "anonymous_provider_disabled"),
        (
            {"email": "a@b.co", "password": PASSWORD},
            AuthLimits(disable_signup=True),
            422,
            "signup_disabled",
        ),
        ({"phone": "15550100", "password": PASSWORD}, AuthLimits(), 400, "phone_provider_disabled"),
        ([1, 2], LIMITS, 400, "bad_json"),
        ({"email": 5}, LIMITS, 400, "bad_json"),
    ],
)
def test_signup_refused_before_any_io(
    body: object, limits: AuthLimits, status: int, code: str
) -> None:
    run = drive("POST", "/signup", body, settings=attrs.evolve(SETTINGS, limits=limits))
    assert run.commands == []
    assert (run.status, run.code) == (status, code)


def test_signup_weak_password_lists_reasons() -> None:
    limits = attrs.evolve(LIMITS, password_required_characters=("0123456789",))
    run = drive(
        "POST",
        "/signup",
        {"email": "a@b.co", "password": "abc"},
        settings=attrs.evolve(SETTINGS, limits=limits),
    )
    assert run.body["weak_password"] == {"reasons": ["length", "characters"]}


# --- GET /user -----------------------------------------------------------------------------------


def me(flag: bytes | None = b"t", row: bytes | None = None) -> Answer:
    return tx(first=((row or user_json(), flag),), read_only=True)


def test_get_user() -> None:
    run = drive("GET", "/user", token=access_token(), answers=[me()])
    assert run.status == 200
    assert run.body["id"] == USER_ID
    assert run.body["email"] == "alice@example.com"
    (lookup,) = run.statements
    assert lookup.params == (USER_ID, SESSION_ID)
    assert "exists(select 1 from auth.sessions s" in lookup.sql


def test_get_user_without_session_claim_does_not_check_a_session() -> None:
    run = drive("GET", "/user", token=access_token(session_id=None), answers=[me(b"f")])
    assert run.status == 200
    assert run.statements[0].params == (USER_ID, None)
    odd = drive("GET", "/user", token=access_token(session_id="not-a-uuid"), answers=[me(b"f")])
    assert odd.status == 200
    assert odd.statements[0].params == (USER_ID, None)


@pytest.mark.parametrize(
    ("authorization", "status", "code", "message"),
    [
        (None, 401, "no_authorization", None),
        ("   ", 401, "no_authorization", None),
        ("Bearer a.b.c", 403, "bad_jwt", None),
        ("Basic Zm9vOmJhcg==", 403, "bad_jwt", None),
        (f"Bearer {access_token(sub=None)}", 403, "bad_jwt", "invalid claim: missing sub claim"),
        (f"Bearer {access_token(sub='bob')}", 403, "bad_jwt", "invalid claim: missing sub claim"),
        # pyjwt itself refuses a non-string `sub`.
        (f"Bearer {access_token(sub=7)}", 403, "bad_jwt", None),
        (
            f"Bearer {access_token(exp=int(NOW.timestamp()) - 3600)}",
            403,
            "bad_jwt",
            "invalid JWT: unable to parse or verify signature, JWT expired",
        ),
        (
            "Bearer " + jwt.encode({"sub": USER_ID}, "another-secret-of-at-least-32-chars!"),
            403,
            "bad_jwt",
            None,
        ),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/user"), ("PUT", "/user"), ("POST", "/logout")]
)
def test_bearer_refusals_before_any_io(
    method: str, path: str, authorization: str | None, status: int, code: str, message: str | None
) -> None:
    headers = VERSION if authorization is None else (*VERSION, ("authorization", authorization))
    run = drive(method, path, {} if method == "PUT" else None, headers=headers)
    assert run.commands == []
    assert (run.status, run.code) == (status, code)
    if message is not None:
        assert run.body["message"] == message


def test_update_user_checks_the_token_before_the_body() -> None:
    no_token = drive_request(make_request("PUT", "/user", raw=b"{not json"), [])
    assert (no_token.status, no_token.code) == (401, "no_authorization")
    run = drive_request(make_request("PUT", "/user", raw=b"{not json", token=access_token()), [])
    assert run.commands == []
    assert (run.status, run.code) == (400, "bad_json")


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        (tx(read_only=True), 403, "user_not_found"),
        (me(b"f"), 403, "session_not_found"),
        (me(b"t", user_json(banned_until="2999-01-01T00:00:00Z")), 403, "user_banned"),
        (fail(), 500, "unexpected_failure"),
    ],
)
def test_get_user_refusals_after_lookup(answer: Answer, status: int, code: str) -> None:
    run = drive("GET", "/user", token=access_token(), answers=[answer])
    assert (run.status, run.code) == (status, code)


# --- PUT /user -----------------------------------------------------------------------------------


def put_user(body: object, answers: Sequence[Answer], **kwargs: Any) -> Run:
    kwargs.setdefault("token", access_token())
    return drive("PUT", "/user", body, answers, **kwargs)


def updated(row: bytes | None = None) -> Answer:
    return tx(last=((row or user_json(),),), read_only=False)


def test_put_user_merges_metadata() -> None:
    row = user_json(raw_user_meta_data={"a": 1, "b": 2, "email_verified": True})
    fresh = user_json(raw_user_meta_data={"a": 1, "c": [3]})
    run = put_user(
        {"data": {"b": None, "c": [3], "missing": None, "email_verified": None}},
        [me(b"t", row), rand, updated(fresh)],
    )
    assert run.status == 200, run.body
    assert run.kinds == [RunTransaction, DrawRandom, RunTransaction]
    assert run.commands[1] == DrawRandom(size=16)
    assert sql_starts(run)[1:] == [
        "update auth.users set",
        "insert into auth.audit_log_entries",
        "select jsonb_build_object( 'user',",
    ]
    metadata, audit, select = run.transactions[1].statements
    assert "raw_user_meta_data = $2::jsonb" in metadata.sql
    assert metadata.params == (USER_ID, '{"a":1,"c":[3]}', STAMP)
    assert audit.params[1:5] == (uuid_at(0), "user_modified", "user", None)
    assert select.params == (USER_ID,)
    assert run.body["user_metadata"] == {"a": 1, "c": [3]}


@pytest.mark.parametrize("app_metadata", [{}, {"plan": "pro"}, {"provider": None}])
def test_put_user_app_metadata_needs_an_admin_user(app_metadata: dict[str, Any]) -> None:
    run = put_user({"data": {"a": 1}, "app_metadata": app_metadata}, [me()])
    assert (run.status, run.code) == (403, "not_admin")
    assert run.body["message"] == "Updating app_metadata requires admin privileges"
    assert run.kinds == [RunTransaction]  # the user was read, nothing written


def test_put_user_app_metadata_null_is_no_update() -> None:
    run = put_user({"app_metadata": None}, [me(), rand, updated()])
    assert run.status == 200, run.body
    assert sql_starts(run)[1:] == [
        "insert into auth.audit_log_entries",
        "select jsonb_build_object( 'user',",
    ]


def test_put_user_app_metadata_of_an_admin_group_user_is_merged() -> None:
    # GoTrue's isAdmin: a user in the project's audience whose role is the admin group.
    row = user_json(role="admin", raw_app_meta_data={"provider": "email", "plan": "free"})
    run = put_user(
        {"app_metadata": {"plan": "pro", "provider": None}}, [me(b"t", row), rand, updated()]
    )
    assert run.status == 200, run.body
    app, _, _ = run.transactions[1].statements
    assert json.loads(app.params[1] or "") == {"plan": "pro"}


def test_put_user_changes_the_password_and_ends_other_sessions() -> None:
    run = put_user({"password": "new-s3cret"}, [me(), rand, check(False), hashed(), updated()])
    assert run.status == 200, run.body
    assert run.kinds == [RunTransaction, DrawRandom, CheckPassword, HashPassword, RunTransaction]
    assert run.commands[2] == CheckPassword(encrypted_password=ARGON2ID, password="new-s3cret")
    assert run.commands[3] == HashPassword(password="new-s3cret")
    password, sessions, tokens, audit, _ = run.transactions[1].statements
    assert password.params == (USER_ID, NEW_HASH, STAMP)
    assert sessions.sql.startswith("delete from auth.sessions")
    # Pending mailed tokens die with the old password.
    assert "delete from auth.one_time_tokens" in tokens.sql
    assert tokens.params == (USER_ID,)
    assert sessions.params == (USER_ID, None, SESSION_ID)
    assert audit.params[2:4] == ("user_updated_password", "user")
    assert "new-s3cret" not in run.params()


def test_put_user_password_without_session_claim_ends_every_session() -> None:
    run = put_user(
        {"password": "new-s3cret"},
        [me(b"f"), rand, check(False), hashed(), updated()],
        token=access_token(session_id=None),
    )
    assert run.status == 200
    assert run.transactions[1].statements[1].params == (USER_ID, None, NIL)


def test_put_user_password_for_a_user_without_one_skips_the_check() -> None:
    row = user_json(encrypted_password="", is_anonymous=True)
    run = put_user({"password": "new-s3cret"}, [me(b"t", row), rand, hashed(), updated()])
    assert run.status == 200
    assert CheckPassword not in run.kinds


def test_put_user_same_password_is_refused() -> None:
    run = put_user({"password": PASSWORD}, [me(), rand, check(True)])
    assert (run.status, run.code) == (422, "same_password")
    assert len(run.transactions) == 1


def test_put_user_metadata_and_password_together() -> None:
    run = put_user(
        {"data": {"x": 1}, "password": "new-s3cret"},
        [me(), rand, check(False), hashed(), updated()],
    )
    assert run.status == 200
    statements = run.transactions[1].statements
    assert len(statements) == 6
    assert statements[4].params[2] == "user_updated_password"


def test_put_user_empty_body_only_audits() -> None:
    run = put_user({}, [me(), rand, updated()])
    assert run.status == 200
    assert sql_starts(run)[1:] == [
        "insert into auth.audit_log_entries",
        "select jsonb_build_object( 'user',",
    ]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"password": "abc"}, 422, "weak_password"),
        ({"password": ""}, 422, "weak_password"),
        ({"email": "not-an-email"}, 400, "validation_failed"),
        ({"data": "x"}, 400, "bad_json"),
        ([], 400, "bad_json"),
    ],
)
def test_put_user_body_refused_before_any_io(body: object, status: int, code: str) -> None:
    run = put_user(body, [])
    assert run.commands == []
    assert (run.status, run.code) == (status, code)


def test_put_user_database_failure_is_500() -> None:
    run = put_user({"data": {"x": 1}}, [me(), rand, fail()])
    assert (run.status, run.code) == (500, "unexpected_failure")


# --- request details that reach the SQL ----------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "session_ip", "audit_ip"),
    [
        ("127.0.0.1", "127.0.0.1", "127.0.0.1"),
        ("::1", "::1", "::1"),
        ("unix:/tmp/socket", None, "unix:/tmp/socket"),
        (None, None, ""),
        ("x" * 100, None, "x" * 64),
    ],
)
def test_client_address_is_an_inet_or_null(
    client: str | None, session_ip: str | None, audit_ip: str
) -> None:
    run = drive_request(
        make_request("POST", "/token?grant_type=password", LOGIN, client=client),
        [tx(first=((user_json(),),)), check(True), rand, tx(last=((user_json(),),))],
    )
    assert run.status == 200
    assert run.statements[1].params[4] == session_ip
    assert run.statements[5].params[6] == audit_ip


# --- every database error is a 500 that leaks nothing --------------------------------------------

FIRST_TX: list[tuple[str, str, object, list[Answer]]] = [
    ("POST", "/signup", {"email": "a@b.co", "password": PASSWORD}, [rand, hashed()]),
    ("POST", "/signup", {}, [rand]),
    ("POST", "/token?grant_type=password", LOGIN, []),
    ("POST", "/token?grant_type=refresh_token", {"refresh_token": PRESENTED}, []),
    ("GET", "/user", None, []),
    ("PUT", "/user", {"data": {}}, []),
    ("POST", "/logout", None, []),
]


@pytest.mark.parametrize(("method", "path", "body", "before"), FIRST_TX)
@pytest.mark.parametrize("sqlstate", ["42P01", "XX000", "53300", "23503"])
@pytest.mark.parametrize("headers", [(), VERSION])
def test_database_errors_are_unexpected_failure(
    method: str,
    path: str,
    body: object,
    before: list[Answer],
    sqlstate: str,
    headers: tuple[tuple[str, str], ...],
) -> None:
    run = drive(
        method,
        path,
        body,
        [*before, fail(sqlstate, "internal detail: pg_catalog oid 1234")],
        token=access_token(),
        headers=headers,
    )
    assert run.status == 500
    body_json = run.body
    if headers:
        assert body_json["code"] == "unexpected_failure"
        assert set(body_json) == {"code", "message"}
    else:
        assert (body_json["code"], body_json["error_code"]) == (500, "unexpected_failure")
        assert set(body_json) == {"code", "error_code", "msg"}
    text = run.response.body.decode()
    for leaked in ("pg_catalog", "Key (email)", "secret-hint", "relation"):
        assert leaked not in text


def answered(request: Request, result: object) -> AuthAnswer:
    """`auth_answer` for a request whose first command gets `result`."""
    flow = auth_answer(
        request, request.path.removeprefix("/auth/v1"), SETTINGS, now=NOW, request_id="req-7"
    )
    assert isinstance(next(flow), RunTransaction)
    with pytest.raises(StopIteration) as stop:
        flow.send(result)
    answer = stop.value.value
    assert isinstance(answer, AuthAnswer)
    return answer


def test_database_error_cause_goes_to_the_log_and_the_request_id_to_the_client() -> None:
    error = DbError(
        sqlstate="42501",
        message='permission denied for table users: "x"',
        detail="Key (email)=(alice@example.com) already exists.",
        statement=0,
    )
    answer = answered(make_request("GET", "/user", token=access_token(), headers=()), error)
    assert json.loads(answer.response.body) == {
        "code": 500,
        "error_code": "unexpected_failure",
        "msg": "Unexpected failure, please check server logs for more information",
        "error_id": "req-7",
    }
    assert answer.failure is not None
    assert answer.failure.startswith(
        'database error 42501 permission denied for table users: "…" in statement 1 of 1: select '
    )
    assert "alice" not in answer.failure
    assert USER_ID not in answer.failure  # a parameter


def test_client_errors_are_not_failures() -> None:
    answer = answered(
        make_request("GET", "/user", token=access_token()), [DbResult(rows=(), command="SELECT 0")]
    )
    assert answer.response.status == 403
    assert answer.failure is None


# --- the flows are total -------------------------------------------------------------------------


def empty(command: AuthCommand) -> object:
    """The fake runtime where the database has no rows at all."""
    match command:
        case RunTransaction(tx=transaction):
            return [DbResult(rows=(), command="OK") for _ in transaction.statements]
        case HashPassword():
            return NEW_HASH
        case CheckPassword():
            return False
        case DrawRandom(size=size):
            return RANDOM[:size]
    raise AssertionError(command)


ROUTES = [
    ("GET", "/health"),
    ("GET", "/settings"),
    ("POST", "/signup"),
    ("POST", "/token?grant_type=password"),
    ("POST", "/token?grant_type=refresh_token"),
    ("POST", "/token?grant_type=pkce"),
    ("POST", "/token?grant_type=id_token"),
    ("GET", "/user"),
    ("PUT", "/user"),
    ("POST", "/logout"),
    ("POST", "/logout?scope=others"),
    ("GET", "/nope"),
]
BODIES = st.one_of(
    st.binary(max_size=200),
    st.dictionaries(
        st.sampled_from(
            ["email", "phone", "password", "data", "refresh_token", "grant_type", "id_token"]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.text(max_size=20),
            st.sampled_from(["alice@example.com", "15550100", PASSWORD, PRESENTED]),
            st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
        ),
        max_size=4,
    ).map(lambda value: json.dumps(value).encode()),
)
AUTHORIZATION = st.one_of(
    st.none(),
    st.just(f"Bearer {access_token()}"),
    st.just(f"Bearer {access_token(session_id=None)}"),
    st.text(max_size=40),
)


def finish(flow: Generator[AuthCommand, object, Response], answer: Answer) -> Response:
    """Drive `flow` to its end, answering every command with `answer` (at most 50 of them)."""
    result: object = None
    for _ in range(50):
        try:
            command = flow.send(result)
        except StopIteration as stop:
            response = stop.value
            break
        result = answer(command)
    else:
        raise AssertionError("the flow did not finish")
    assert isinstance(response, Response), response
    return response


def run_empty(method: str, path: str, body: bytes, authorization: str | None) -> Response:
    headers: tuple[tuple[str, str], ...] = VERSION
    if authorization is not None:
        headers += (("authorization", authorization),)
    request = make_request(method, path, raw=body, headers=headers)
    flow = auth_flow(request, request.path.removeprefix("/auth/v1"), SETTINGS, now=NOW)
    return finish(flow, empty)


@given(
    route=st.sampled_from([r for r in ROUTES if r[1] != "/signup"]),
    body=BODIES,
    authorization=AUTHORIZATION,
)
@example(
    route=("POST", "/token?grant_type=password"),
    body=json.dumps(LOGIN).encode(),
    authorization=None,
)
@example(
    route=("POST", "/token?grant_type=refresh_token"),
    body=json.dumps({"refresh_token": PRESENTED}).encode(),
    authorization=None,
)
@example(
    route=("PUT", "/user"),
    body=b'{"password":"new-s3cret"}',
    authorization=f"Bearer {access_token()}",
)
@example(route=("POST", "/logout"), body=b"", authorization=f"Bearer {access_token()}")
def test_flows_answer_every_request_when_the_database_is_empty(
    route: tuple[str, str], body: bytes, authorization: str | None
) -> None:
    method, path = route
    response = run_empty(method, path, body, authorization)
    assert 200 <= response.status < 600
    if response.status >= 400:
        json.loads(response.body)


@given(
    body=BODIES,
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    path=st.text(max_size=20),
)
def test_any_method_and_path_ends_in_a_response(method: str, path: str, body: bytes) -> None:
    request = make_request(method, "/" + path, raw=body)
    flow = auth_flow(request, "/" + path, SETTINGS, now=NOW)
    assert 200 <= finish(flow, empty).status < 600


@given(body=BODIES, autoconfirm=st.booleans(), duplicate=st.booleans())
@example(body=b"{}", autoconfirm=False, duplicate=False)
@example(body=json.dumps(LOGIN).encode(), autoconfirm=True, duplicate=True)
@example(body=b'{"password":"      ","email":"!@0"}', autoconfirm=False, duplicate=True)
def test_signup_answers_any_body(body: bytes, autoconfirm: bool, duplicate: bool) -> None:
    """Signup's write ends in a select of the row it inserted: answer that row (or 23505).

    With `duplicate` only the first transaction (the insert) fails: the reads and writes after it
    (a repeated sign-up looks the user up and mails again) are answered like any other.
    """
    settings = attrs.evolve(SETTINGS, autoconfirm=autoconfirm)
    succeed = tx(last=((user_json(),),))
    to_fail = [duplicate]

    def answer(command: AuthCommand) -> object:
        if isinstance(command, RunTransaction):
            if to_fail.pop() if to_fail else False:
                return fail("23505")(command)
            return succeed(command)
        return empty(command)

    request = make_request("POST", "/signup", raw=body)
    response = finish(auth_flow(request, "/signup", settings, now=NOW), answer)
    # 429: without autoconfirm the token's write matches no row here (this fake answers every
    # transaction alike), which the flow reads as a concurrent request that mailed first.
    if response.status == 500:
        # SETTINGS enable phone sign-up without an SMS sender (a server misconfiguration `serve`
        # cannot make): GoTrue's own 500, before anything is written.
        assert json.loads(response.body)["message"] == "Unable to get SMS provider"
        assert not settings.mail.sms_enabled
        return
    assert response.status in {200, 400, 413, 422, 429}


def test_put_user_whose_user_was_deleted_meanwhile() -> None:
    run = put_user({"data": {"x": 1}}, [me(), rand, tx(read_only=False)])
    assert run.status in {403, 404, 500}


def test_signup_with_no_row_from_the_final_select() -> None:
    response = run_empty(
        "POST", "/signup", json.dumps({"email": "a@b.co", "password": PASSWORD}).encode(), None
    )
    assert response.status == 500
