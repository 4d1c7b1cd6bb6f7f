"""`/factors` and `/admin/users` flows driven by hand: every command answered by a fake runtime."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import attrs
import jwt
import pytest

from madbase.protocol.auth import (
    AuthCommand,
    DrawRandom,
    HashPassword,
    RunTransaction,
)
from madbase.protocol.auth.mfa.totp import encode_secret, totp_at
from madbase.protocol.auth.refresh import new_refresh_token
from madbase.protocol.identity import DEFAULT_TOKEN_ROLES, BearerVerifier
from madbase.protocol.sql import DbError, DbResult
from tests.protocol.auth.test_flows import (
    NOW,
    RANDOM,
    SECRET,
    SESSION_ID,
    SETTINGS,
    USER_ID,
    Answer,
    access_token,
    decode,
    drive,
    hashed,
    rand,
    tx,
    uuid_at,
)

FACTOR_ID = "44444444-4444-4444-8444-444444444444"
CHALLENGE_ID = "55555555-5555-4555-8555-555555555555"
TOTP_SECRET = encode_secret(b"12345678901234567890")


def factor_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": FACTOR_ID,
        "user_id": USER_ID,
        "friendly_name": "",
        "factor_type": "totp",
        "status": "unverified",
        "created_at": "2024-06-01T11:58:00+00:00",
        "updated_at": "2024-06-01T11:58:00+00:00",
        "phone": None,
        "last_challenged_at": None,
    }
    row.update(overrides)
    return row


def user_row(factors: list[dict[str, Any]] = (), **overrides: Any) -> bytes:  # type: ignore[assignment]
    row: dict[str, Any] = {
        "id": USER_ID,
        "aud": "authenticated",
        "role": "authenticated",
        "email": "alice@example.com",
        "phone": None,
        "email_confirmed_at": "2024-05-01T08:30:00+00:00",
        "raw_app_meta_data": {"provider": "email", "providers": ["email"]},
        "raw_user_meta_data": {},
        "created_at": "2024-05-01T08:30:00+00:00",
        "updated_at": "2024-05-01T08:30:00+00:00",
        "is_anonymous": False,
    }
    row.update(overrides)
    return json.dumps({"user": row, "identities": [], "factors": list(factors)}).encode()


def session_row(aal: str = "aal1", methods: tuple[str, ...] = ("password",)) -> bytes:
    row = {
        "id": SESSION_ID,
        "user_id": USER_ID,
        "created_at": "2024-06-01T11:59:00+00:00",
        "updated_at": "2024-06-01T11:59:00+00:00",
        "aal": aal,
    }
    amr = [{"method": m, "updated_at": "2024-06-01T11:59:00+00:00"} for m in methods]
    return json.dumps({"session": row, "amr": amr}).encode()


def principal(user: bytes | None = None, session: bytes | None = None) -> Answer:
    return tx(last=((user or user_row(), session or session_row()),))


def results(*rows_by_index: tuple[int, tuple[tuple[bytes | None, ...], ...]]) -> Answer:
    def answer(command: AuthCommand) -> object:
        assert isinstance(command, RunTransaction), command
        out = [DbResult(rows=(), command="OK") for _ in command.tx.statements]
        for index, rows in rows_by_index:
            out[index] = DbResult(rows=rows, command="SELECT 1")
        return out

    return answer


def unique_violation(constraint: str) -> Answer:
    def answer(command: AuthCommand) -> object:
        assert isinstance(command, RunTransaction), command
        return DbError(
            sqlstate="23505",
            message=f'duplicate key value violates unique constraint "{constraint}"',
        )

    return answer


def service_token(role: str = "service_role") -> str:
    return jwt.encode(
        {"role": role, "iss": "supabase", "exp": 4_102_444_800}, SECRET, algorithm="HS256"
    )


# --- POST /factors -------------------------------------------------------------------------------


def test_enroll_totp_returns_secret_uri_and_qr() -> None:
    run = drive(
        "POST",
        "/factors",
        {"factor_type": "totp", "friendly_name": "app"},
        [principal(), rand, tx()],
        token=access_token(),
    )
    assert run.status == 200, run.body
    assert run.kinds == [RunTransaction, DrawRandom, RunTransaction]
    assert run.commands[1] == DrawRandom(size=2 * 16 + 20)
    first_tx = run.transactions[0]
    assert not first_tx.read_only
    assert "delete from auth.mfa_factors" in first_tx.statements[0].sql
    # Unverified factors created before now - 300 s are swept first.
    assert first_tx.statements[0].params == (USER_ID, (NOW - timedelta(seconds=300)).isoformat())
    secret = encode_secret(RANDOM[32:52])
    assert run.body["id"] == uuid_at(0)
    assert (run.body["type"], run.body["friendly_name"]) == ("totp", "app")
    assert run.body["totp"]["secret"] == secret
    assert run.body["totp"]["uri"] == (
        "otpauth://totp/localhost:3000:alice@example.com?algorithm=SHA1&digits=6"
        f"&issuer=localhost%3A3000&period=30&secret={secret}"
    )
    assert run.body["totp"]["qr_code"].startswith("<?xml")
    insert = run.transactions[1].statements[0]
    assert insert.params[:4] == (uuid_at(0), USER_ID, "app", "totp")
    assert insert.params[-1] == secret


def test_enroll_uses_given_issuer() -> None:
    run = drive(
        "POST",
        "/factors",
        {"factor_type": "totp", "issuer": "My App"},
        [principal(), rand, tx()],
        token=access_token(),
    )
    assert run.body["totp"]["uri"].startswith("otpauth://totp/My%20App:alice@example.com?")
    assert "&issuer=My+App&" in run.body["totp"]["uri"]


@pytest.mark.parametrize(
    ("factors", "session", "status", "code"),
    [
        ([factor_row()], session_row(), 422, "mfa_factor_name_conflict"),
        (
            [
                factor_row(id=f"{i:08d}-0000-4000-8000-000000000000", friendly_name=str(i))
                for i in range(10)
            ],
            session_row(),
            422,
            "too_many_enrolled_mfa_factors",
        ),
        (
            [factor_row(status="verified", friendly_name="x")],
            session_row(),
            403,
            "insufficient_aal",
        ),
    ],
)
def test_enroll_refusals(
    factors: list[dict[str, Any]], session: bytes, status: int, code: str
) -> None:
    run = drive(
        "POST",
        "/factors",
        {"factor_type": "totp"},
        [principal(user_row(factors), session)],
        token=access_token(),
    )
    assert (run.status, run.code) == (status, code)


def test_enroll_allowed_at_aal2_with_a_verified_factor() -> None:
    verified = [factor_row(status="verified", friendly_name="x")]
    run = drive(
        "POST",
        "/factors",
        {"factor_type": "totp"},
        [principal(user_row(verified), session_row("aal2", ("password", "totp"))), rand, tx()],
        token=access_token(),
    )
    assert run.status == 200, run.body


def test_enroll_name_race_is_a_conflict() -> None:
    run = drive(
        "POST",
        "/factors",
        {"factor_type": "totp", "friendly_name": "n"},
        [principal(), rand, unique_violation("mfa_factors_user_friendly_name_unique")],
        token=access_token(),
    )
    assert (run.status, run.code) == (422, "mfa_factor_name_conflict")
    assert run.body["message"] == 'A factor with the friendly name "n" for this user already exists'


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        ({"factor_type": "phone", "phone": "+15551234567"}, "mfa_phone_enroll_not_enabled", 422),
        ({"factor_type": "webauthn"}, "mfa_webauthn_enroll_not_enabled", 422),
        ({"factor_type": "sms"}, "validation_failed", 400),
        ({"factor_type": 3}, "bad_json", 400),
    ],
)
def test_enroll_bad_bodies(body: dict[str, Any], code: str, status: int) -> None:
    run = drive("POST", "/factors", body, [principal()], token=access_token())
    assert (run.status, run.code) == (status, code)


def test_factors_need_a_session_token() -> None:
    assert drive("POST", "/factors", {"factor_type": "totp"}).code == "no_authorization"
    bad = drive("POST", "/factors", {"factor_type": "totp"}, token="a.b.c")
    assert (bad.status, bad.code) == (403, "bad_jwt")
    no_session = drive("POST", "/factors", {}, token=access_token(session_id=None))
    assert (no_session.status, no_session.code) == (403, "session_not_found")
    gone = drive("POST", "/factors", {}, [tx(last=((user_row(), None),))], token=access_token())
    assert (gone.status, gone.code) == (403, "session_not_found")
    anonymous = drive("POST", "/factors", {}, [principal()], token=access_token(is_anonymous=True))
    assert (anonymous.status, anonymous.code) == (403, "no_authorization")
    banned = drive(
        "POST",
        "/factors",
        {},
        [principal(user_row(banned_until="2099-01-01T00:00:00+00:00"))],
        token=access_token(),
    )
    assert (banned.status, banned.code) == (403, "user_banned")


# --- challenge / verify / unenroll ---------------------------------------------------------------


def test_challenge_records_ip_and_expiry() -> None:
    run = drive(
        "POST",
        f"/factors/{FACTOR_ID}/challenge",
        {},
        [principal(user_row([factor_row()])), rand, tx()],
        token=access_token(),
    )
    assert run.status == 200, run.body
    assert run.body == {
        "id": uuid_at(0),
        "type": "totp",
        "expires_at": int(NOW.timestamp()) + 300,
    }
    assert run.transactions[1].statements[0].params == (
        uuid_at(0),
        FACTOR_ID,
        NOW.isoformat(),
        "127.0.0.1",
    )


@pytest.mark.parametrize(
    ("factor_id", "status", "code"),
    [
        ("nope", 404, "validation_failed"),
        ("66666666-6666-4666-8666-666666666666", 404, "mfa_factor_not_found"),
    ],
)
def test_unknown_factor(factor_id: str, status: int, code: str) -> None:
    run = drive(
        "POST",
        f"/factors/{factor_id}/challenge",
        {},
        [principal(user_row([factor_row()]))],
        token=access_token(),
    )
    assert (run.status, run.code) == (status, code)


def challenge_row(**overrides: Any) -> Answer:
    challenge = {
        "id": CHALLENGE_ID,
        "created_at": "2024-06-01T11:59:30+00:00",
        "verified_at": None,
        "ip_address": "127.0.0.1",
        **overrides,
    }
    return tx(last=((json.dumps(challenge).encode(), TOTP_SECRET.encode()),), read_only=True)


def verify(code: str, answers: list[Answer], *, challenge: str = CHALLENGE_ID) -> Any:
    return drive(
        "POST",
        f"/factors/{FACTOR_ID}/verify",
        {"challenge_id": challenge, "code": code},
        [principal(user_row([factor_row()])), *answers],
        token=access_token(),
    )


def test_verify_lifts_the_session_to_aal2() -> None:
    code = totp_at(b"12345678901234567890", NOW)
    upgraded = session_row("aal2", ("password", "totp"))
    fresh = user_row([factor_row(status="verified")])
    run = verify(code, [challenge_row(), rand, results((-2, ((fresh,),)), (-1, ((upgraded,),)))])
    assert run.status == 200, run.body
    assert run.body["refresh_token"] == new_refresh_token(RANDOM[32:40])
    claims = decode(run.body["access_token"])
    assert claims["aal"] == "aal2"
    assert {entry["method"] for entry in claims["amr"]} == {"password", "totp"}
    assert claims["session_id"] == SESSION_ID
    assert run.body["user"]["factors"][0]["status"] == "verified"
    sqls = [" ".join(s.sql.split()[:3]) for s in run.transactions[-1].statements]
    assert "update auth.sessions set" in sqls
    assert "delete from auth.sessions" in sqls
    assert any("set status = 'verified'" in s.sql for s in run.statements)


def test_verify_of_a_verified_factor_leaves_its_status_alone() -> None:
    code = totp_at(b"12345678901234567890", NOW)
    upgraded = session_row("aal2", ("password", "totp"))
    verified = user_row([factor_row(status="verified")])
    run = drive(
        "POST",
        f"/factors/{FACTOR_ID}/verify",
        {"challenge_id": CHALLENGE_ID, "code": code},
        [
            principal(verified),
            challenge_row(),
            rand,
            results((-2, ((verified,),)), (-1, ((upgraded,),))),
        ],
        token=access_token(),
    )
    assert run.status == 200, run.body
    assert not any("set status = 'verified'" in s.sql for s in run.statements)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"verified_at": "2024-06-01T11:59:40+00:00"}, "mfa_ip_address_mismatch"),
        ({"ip_address": "10.0.0.1"}, "mfa_ip_address_mismatch"),
    ],
)
def test_verify_refuses_used_or_foreign_challenges(overrides: dict[str, Any], code: str) -> None:
    run = verify(totp_at(b"12345678901234567890", NOW), [challenge_row(**overrides)])
    assert (run.status, run.code) == (422, code)


def test_verify_expired_challenge_is_deleted() -> None:
    run = verify(
        totp_at(b"12345678901234567890", NOW),
        [challenge_row(created_at="2024-06-01T11:54:59+00:00"), tx()],
    )
    assert (run.status, run.code) == (422, "mfa_challenge_expired")
    assert run.body["message"].startswith(f"MFA challenge {CHALLENGE_ID} has expired")
    assert "delete from auth.mfa_challenges" in run.transactions[-1].statements[0].sql


def test_verify_wrong_code_and_unknown_challenge() -> None:
    wrong = verify("123456", [challenge_row()])
    assert (wrong.status, wrong.code) == (422, "mfa_verification_failed")
    unknown = verify("123456", [tx(read_only=True)])
    assert (unknown.status, unknown.code) == (422, "mfa_factor_not_found")
    empty = verify("", [])
    assert (empty.status, empty.body["message"]) == (400, "Code needs to be non-empty")
    malformed = verify("123456", [], challenge="x")
    assert (malformed.status, malformed.code) == (400, "bad_json")


def test_unenroll_verified_factor_needs_aal2() -> None:
    verified = user_row([factor_row(status="verified")])
    refused = drive(
        "DELETE", f"/factors/{FACTOR_ID}", None, [principal(verified)], token=access_token()
    )
    assert (refused.status, refused.code) == (422, "insufficient_aal")
    run = drive(
        "DELETE",
        f"/factors/{FACTOR_ID}",
        None,
        [principal(verified, session_row("aal2", ("password", "totp"))), rand, tx()],
        token=access_token(),
    )
    assert (run.status, run.body) == (200, {"id": FACTOR_ID})
    downgrade = run.transactions[-1].statements[-1]
    assert downgrade.params == (USER_ID, FACTOR_ID, "totp")


# --- /admin/users ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        (None, 401, "no_authorization"),
        ("x.y.z", 403, "bad_jwt"),
        (service_token("anon"), 403, "not_admin"),
        (service_token("authenticated"), 403, "not_admin"),
    ],
)
def test_admin_refuses_non_admins_without_io(token: str | None, status: int, code: str) -> None:
    run = drive("GET", "/admin/users", token=token)
    assert run.commands == []
    assert (run.status, run.code) == (status, code)


def test_admin_token_of_a_dead_session_is_refused() -> None:
    token = access_token(role="service_role")
    run = drive("GET", "/admin/users", None, [tx(last=((user_row(), b"f"),))], token=token)
    assert (run.status, run.code) == (403, "session_not_found")


def test_admin_list_headers_and_rendering() -> None:
    users = json.dumps([json.loads(user_row())]).encode()
    run = drive(
        "GET",
        "/admin/users?per_page=1&page=1",
        None,
        [tx(last=((b"3", users),), read_only=True)],
        token=service_token(),
    )
    assert run.status == 200, run.body
    assert run.response.header("x-total-count") == "3"
    assert run.response.header("link") == (
        '</admin/users?page=2&per_page=1>; rel="next", </admin/users?page=3&per_page=1>; rel="last"'
    )
    assert run.body["aud"] == "authenticated"
    assert run.body["users"][0]["identities"] is None
    statement = run.statements[0]
    assert statement.params[1:] == ("authenticated", "", "1", "0")
    assert "order by u.created_at desc" in statement.sql


def test_admin_list_sort_and_audience() -> None:
    run = drive(
        "GET",
        "/admin/users?sort=created_at%20asc",
        None,
        [tx(last=((b"0", b"[]"),))],
        token=service_token(),
        headers=(("x-supabase-api-version", "2024-01-01"), ("x-jwt-aud", "other")),
    )
    assert run.body == {"users": [], "aud": "other"}
    assert "order by u.created_at asc" in run.statements[0].sql
    bad = drive("GET", "/admin/users?sort=email", token=service_token())
    assert (bad.status, bad.body["message"]) == (
        400,
        "Bad Sort Parameters: bad field for sort 'email'",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Cannot create a user without either an email or phone"),
        ({"email": "nope"}, "Unable to validate email address: invalid format"),
        ({"phone": "+1 abc"}, "Invalid phone number format (E.164 required)"),
        (
            {"email": "a@b.co", "password": "", "password_hash": "$2a$10$x"},
            "Only a password or a password hash should be provided",
        ),
    ],
)
def test_admin_create_validation(body: dict[str, Any], message: str) -> None:
    run = drive("POST", "/admin/users", body, token=service_token())
    assert run.commands == []
    assert (run.status, run.code, run.body["message"]) == (400, "validation_failed", message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"email": "a@b.co", "id": "nope"}, "ID must conform to the uuid v4 format"),
        (
            {"email": "a@b.co", "id": "00000000-0000-0000-0000-000000000000"},
            "ID cannot be a nil uuid",
        ),
        ({"email": "a@b.co", "ban_duration": "3d"}, None),
    ],
)
def test_admin_create_checks_after_hashing(body: dict[str, Any], message: str | None) -> None:
    run = drive("POST", "/admin/users", body, [rand, hashed()], token=service_token())
    assert (run.status, run.code) == (400, "validation_failed")
    if message is not None:
        assert run.body["message"] == message


# A role the owner granted the authenticator, besides Supabase's three.
EDITOR_ALLOWED = attrs.evolve(
    SETTINGS, bearer=BearerVerifier(SECRET, roles=DEFAULT_TOKEN_ROLES | {"editor"})
)


def test_admin_create_writes_user_identity_role_and_ban() -> None:
    row = user_row(id=uuid_at(0))
    run = drive(
        "POST",
        "/admin/users",
        {
            "email": "A@B.co",
            "password": "pw-123456",
            "role": "editor",
            "ban_duration": "1h",
            "app_metadata": {"provider": None, "x": 1},
        },
        [rand, hashed(), tx(last=((row,),))],
        token=service_token(),
        settings=EDITOR_ALLOWED,
    )
    assert run.status == 200, run.body
    assert run.kinds == [DrawRandom, HashPassword, RunTransaction]
    assert run.commands[1] == HashPassword(password="pw-123456")
    insert = run.statements[0]
    assert insert.params[1:5] == (uuid_at(0), "authenticated", "a@b.co", None)
    assert json.loads(insert.params[9] or "") == {"providers": ["email"], "x": 1}
    identity = run.statements[1]
    assert json.loads(identity.params[3] or "") == {
        "sub": uuid_at(0),
        "email": "a@b.co",
        "email_verified": False,
        "phone_verified": False,
    }
    audit_payload = json.loads(run.statements[2].params[2] or "")
    assert (audit_payload["action"], audit_payload["actor_username"]) == (
        "user_signedup",
        "service_role",
    )
    assert run.statements[3].params[1] == "editor"
    assert run.statements[4].params[1] == (NOW + timedelta(hours=1)).isoformat()


@pytest.mark.parametrize("role", ["postgres", "authenticator", "editor", " pg_read_server_files "])
def test_admin_create_and_update_refuse_roles_tokens_may_not_name(role: str) -> None:
    # Its tokens would carry the role: only those the authenticator may switch to are given.
    created = drive(
        "POST",
        "/admin/users",
        {"email": "a@b.co", "password": "pw-123456", "role": role},
        token=service_token(),
    )
    assert (created.status, created.code) == (400, "validation_failed")
    assert created.body["message"] == (
        f'Role "{role.strip()}" is not allowed: a user\'s role must be one of'
        " anon, authenticated, service_role"
    )
    assert created.commands == []
    updated = drive(
        "PUT", f"/admin/users/{USER_ID}", {"role": role}, [principal()], token=service_token()
    )
    assert (updated.status, updated.code) == (400, "validation_failed")
    assert updated.kinds == [RunTransaction]  # the user was read, nothing written


@pytest.mark.parametrize(
    ("constraint", "code"),
    [("users_email_partial_key", "email_exists"), ("users_phone_key", "phone_exists")],
)
def test_admin_create_duplicates(constraint: str, code: str) -> None:
    run = drive(
        "POST",
        "/admin/users",
        {"email": "a@b.co"},
        [rand, hashed(), unique_violation(constraint)],
        token=service_token(),
    )
    assert (run.status, run.code) == (422, code)


def test_admin_user_routes_load_the_user() -> None:
    missing = drive(
        "GET", f"/admin/users/{USER_ID}", None, [tx(read_only=True)], token=service_token()
    )
    assert (missing.status, missing.code) == (404, "user_not_found")
    malformed = drive("PUT", "/admin/users/12", {}, token=service_token())
    assert (malformed.status, malformed.code, malformed.body["message"]) == (
        404,
        "validation_failed",
        "user_id must be an UUID",
    )


def test_admin_update_merges_metadata() -> None:
    current = user_row(raw_app_meta_data={"provider": "email", "plan": "pro"})
    run = drive(
        "PUT",
        f"/admin/users/{USER_ID}",
        {
            "app_metadata": {"plan": None, "tier": 1},
            "email_confirm": True,
            "user_metadata": {"a": 1},
        },
        [tx(last=((current,),)), rand, tx(last=((current,),))],
        token=service_token(),
    )
    assert run.status == 200, run.body
    writes = {
        s.sql.split()[3]: s.params
        for s in run.transactions[-1].statements
        if s.sql.startswith("update auth.users set raw")
    }
    assert json.loads(writes["raw_app_meta_data"][1] or "") == {"provider": "email", "tier": 1}
    assert json.loads(writes["raw_user_meta_data"][1] or "") == {"email_verified": True, "a": 1}


def test_admin_update_password_is_checked_and_ends_sessions() -> None:
    weak = drive(
        "PUT",
        f"/admin/users/{USER_ID}",
        {"password": "123"},
        [tx(last=((user_row(),),))],
        token=service_token(),
    )
    assert (weak.status, weak.code) == (422, "weak_password")
    run = drive(
        "PUT",
        f"/admin/users/{USER_ID}",
        {"password": "long-enough"},
        [tx(last=((user_row(),),)), hashed(), rand, tx(last=((user_row(),),))],
        token=service_token(),
    )
    assert run.status == 200, run.body
    assert any(s.sql.startswith("delete from auth.sessions") for s in run.statements)


def test_admin_soft_delete_obfuscates_and_hard_delete_removes() -> None:
    soft = drive(
        "DELETE",
        f"/admin/users/{USER_ID}",
        {"should_soft_delete": True},
        [tx(last=((user_row(),),)), rand, tx()],
        token=service_token(),
    )
    assert (soft.status, soft.body) == (200, {})
    update = next(s for s in soft.statements if "deleted_at" in s.sql)
    email, phone = update.params[1], update.params[2]
    assert email is not None
    assert len(email) == 43
    assert "@" not in email
    assert phone is not None
    assert len(phone) == 15
    hard = drive(
        "DELETE",
        f"/admin/users/{USER_ID}",
        None,
        [tx(last=((user_row(),),)), rand, tx()],
        token=service_token(),
    )
    assert hard.statements[-1].sql == "delete from auth.users where id = $1::uuid"


def test_admin_factor_routes() -> None:
    with_factor = user_row([factor_row(status="verified")])
    listed = drive(
        "GET",
        f"/admin/users/{USER_ID}/factors",
        None,
        [tx(last=((with_factor,),))],
        token=service_token(),
    )
    assert [f["id"] for f in listed.body] == [FACTOR_ID]
    renamed = drive(
        "PUT",
        f"/admin/users/{USER_ID}/factors/{FACTOR_ID}",
        {"friendly_name": "key"},
        [tx(last=((with_factor,),)), rand, tx()],
        token=service_token(),
    )
    assert (renamed.body["friendly_name"], renamed.body["updated_at"]) == (
        "key",
        "2024-06-01T12:00:00Z",
    )
    deleted = drive(
        "DELETE",
        f"/admin/users/{USER_ID}/factors/{FACTOR_ID}",
        None,
        [tx(last=((with_factor,),)), rand, tx()],
        token=service_token(),
    )
    assert (deleted.status, deleted.body["id"], deleted.body["status"]) == (
        200,
        FACTOR_ID,
        "verified",
    )
