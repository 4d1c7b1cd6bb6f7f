"""`POST /token` (password and refresh_token grants, the refusals of every grant) and `POST /logout`
driven by hand through `auth_flow`, with the fake runtime of `tests/protocol/auth/test_flows.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import attrs
import pytest

from madbase.protocol.auth import (
    AuthSettings,
    CheckPassword,
    DrawRandom,
    HashPassword,
    RunTransaction,
)
from madbase.protocol.auth.flows import DUMMY_HASH
from madbase.protocol.auth.refresh import new_refresh_token
from madbase.protocol.http import Response
from tests.protocol.auth.test_flows import (
    ARGON2ID,
    BCRYPT,
    LIMITS,
    LOGIN,
    NEW_HASH,
    NIL,
    PASSWORD,
    PRESENTED,
    RANDOM,
    SESSION_ID,
    SETTINGS,
    STAMP,
    USER_ID,
    VERSION,
    Answer,
    Rows,
    Run,
    access_token,
    check,
    decode,
    drive,
    fail,
    hashed,
    me,
    rand,
    session_json,
    sql_starts,
    token_json,
    tx,
    user_json,
    uuid_at,
)

# --- POST /token?grant_type=password -------------------------------------------------------------

GRANT_RANDOM = 3 * 16 + 8
GRANT_TOKEN = new_refresh_token(RANDOM[48:56])


def password_grant(
    row: bytes | None,
    *,
    ok: bool = True,
    more: Sequence[Answer] | None = None,
    body: object = None,
    settings: AuthSettings = SETTINGS,
) -> Run:
    found: Rows = () if row is None else ((row,),)
    answers: list[Answer] = [tx(first=found, read_only=True), check(ok)]
    if more is None:
        more = [rand, tx(last=((row or user_json(),),), read_only=False)]
    answers += more
    return drive(
        "POST",
        "/token?grant_type=password",
        LOGIN if body is None else body,
        answers,
        settings=settings,
    )


def test_password_grant_signs_in() -> None:
    run = password_grant(user_json())
    assert run.status == 200, run.body
    assert run.kinds == [RunTransaction, CheckPassword, DrawRandom, RunTransaction]
    lookup = run.transactions[0]
    assert lookup.read_only is True
    assert "lower(u.email) = $1" in lookup.statements[0].sql
    assert lookup.statements[0].params == ("alice@example.com",)
    assert run.commands[1] == CheckPassword(encrypted_password=ARGON2ID, password=PASSWORD)
    assert run.commands[2] == DrawRandom(size=GRANT_RANDOM)
    session_id, claim_id, audit_id = uuid_at(0), uuid_at(1), uuid_at(2)
    assert sql_starts(run)[1:] == [
        "insert into auth.sessions",
        "insert into auth.mfa_amr_claims",
        "insert into auth.refresh_tokens",
        "with i as",
        "insert into auth.audit_log_entries",
        "select jsonb_build_object( 'user',",
    ]
    _, session, claim, token, sign_in, audit, select = run.statements
    assert session.params == (session_id, USER_ID, STAMP, "pytest", "127.0.0.1")
    assert claim.params == (claim_id, session_id, STAMP, "password")
    assert token.params == (NIL, GRANT_TOKEN, USER_ID, STAMP, None, session_id)
    assert sign_in.params == (USER_ID, STAMP, "email")
    assert audit.params[1:5] == (audit_id, "login", "account", '{"provider":"email"}')
    assert select.params == (USER_ID,)
    body = run.body
    assert body["refresh_token"] == GRANT_TOKEN
    assert "weak_password" not in body
    claims = decode(body["access_token"])
    assert (claims["sub"], claims["session_id"], claims["email"]) == (
        USER_ID,
        session_id,
        "alice@example.com",
    )
    assert PASSWORD not in run.params()


def test_password_grant_by_phone() -> None:
    row = user_json(email=None, phone="15550100", phone_confirmed_at="2024-05-01T08:30:00Z")
    run = password_grant(row, body={"phone": "+1 555 0100", "password": PASSWORD})
    assert run.status == 200, run.body
    lookup = run.statements[0]
    assert "u.phone = $1" in lookup.sql
    assert lookup.params == ("15550100",)
    assert run.statements[4].params == (USER_ID, STAMP, "phone")
    assert run.statements[5].params[4] == '{"provider":"phone"}'


@pytest.mark.parametrize(
    ("row", "ok", "stored"),
    [
        (None, False, DUMMY_HASH),  # unknown user: the dummy hash is still checked
        (None, True, DUMMY_HASH),  # even a (impossible) dummy match is refused
        (user_json(), False, ARGON2ID),  # wrong password
        (user_json(encrypted_password=""), True, DUMMY_HASH),  # no password (OAuth, OTP)
        (user_json(encrypted_password=None), True, DUMMY_HASH),
    ],
)
def test_password_grant_invalid_credentials_look_alike(
    row: bytes | None, ok: bool, stored: str
) -> None:
    run = password_grant(row, ok=ok, more=[])
    assert run.kinds == [RunTransaction, CheckPassword]
    assert run.commands[1] == CheckPassword(encrypted_password=stored, password=PASSWORD)
    assert run.status == 400
    assert (
        run.response.body == b'{"code":"invalid_credentials","message":"Invalid login credentials"}'
    )


@pytest.mark.parametrize(
    ("row", "body", "code"),
    [
        (user_json(banned_until="2999-01-01T00:00:00+00:00"), LOGIN, "user_banned"),
        (user_json(email_confirmed_at=None), LOGIN, "email_not_confirmed"),
        (
            user_json(email=None, phone="15550100"),
            {"phone": "15550100", "password": PASSWORD},
            "phone_not_confirmed",
        ),
    ],
)
def test_password_grant_refusals_after_the_check(row: bytes, body: object, code: str) -> None:
    run = password_grant(row, body=body, more=[])
    assert (run.status, run.code) == (400, code)
    assert len(run.transactions) == 1


def test_password_grant_ban_in_the_past_is_ignored() -> None:
    run = password_grant(user_json(banned_until="2024-01-01T00:00:00+00:00"))
    assert run.status == 200


@pytest.mark.parametrize("stored", [BCRYPT, "$argon2i$v=19$m=4096,t=3,p=1$c2FsdA$aGFzaA"])
def test_password_grant_rehashes_legacy_hashes_in_the_sign_in_transaction(stored: str) -> None:
    row = user_json(encrypted_password=stored)
    run = password_grant(
        row, more=[hashed(), rand, tx(last=((user_json(encrypted_password=NEW_HASH),),))]
    )
    assert run.status == 200, run.body
    assert run.kinds == [RunTransaction, CheckPassword, HashPassword, DrawRandom, RunTransaction]
    assert run.commands[2] == HashPassword(password=PASSWORD)
    writes = run.transactions[1].statements
    assert writes[0].sql.startswith("update auth.users set encrypted_password = $2")
    # A silent rehash leaves updated_at alone (NULL stamp).
    assert writes[0].params == (USER_ID, NEW_HASH, None)
    assert len(writes) == 7
    assert PASSWORD not in run.params()


def test_password_grant_argon2id_is_not_rehashed() -> None:
    run = password_grant(user_json())
    assert HashPassword not in run.kinds


def test_password_grant_reports_a_weak_password_in_the_session() -> None:
    limits = attrs.evolve(LIMITS, password_min_length=20)
    run = password_grant(user_json(), settings=attrs.evolve(SETTINGS, limits=limits))
    assert run.status == 200
    assert run.body["weak_password"] == {
        "message": "Password should be at least 20 characters.",
        "reasons": ["length"],
    }


def test_password_grant_long_password_does_not_commit_then_fail() -> None:
    long_password = "p" * 80
    run = password_grant(
        user_json(), body={"email": "alice@example.com", "password": long_password}
    )
    # Either refuse before writing anything, or answer the session that was written.
    assert run.status == 200 or len(run.transactions) == 1, (run.status, run.body)


@pytest.mark.parametrize("where", ["lookup", "write"])
def test_password_grant_database_failure_is_500(where: str) -> None:
    if where == "lookup":
        run = drive("POST", "/token?grant_type=password", LOGIN, [fail()])
    else:
        run = password_grant(user_json(), more=[rand, fail("40001", "could not serialize")])
    assert (run.status, run.code) == (500, "unexpected_failure")
    assert "serialize" not in run.body["message"]
    assert "does not exist" not in run.body["message"]


@pytest.mark.parametrize(
    ("query", "body", "status", "code"),
    [
        (
            "grant_type=id_token",
            {"id_token": "x", "provider": "google"},
            400,
            "provider_disabled",
        ),
        ("grant_type=pkce", {"auth_code": "", "code_verifier": "b"}, 400, "validation_failed"),
        ("grant_type=magic", {}, 400, "invalid_credentials"),
        ("", {}, 400, "invalid_credentials"),
        ("grant_type=web3", {}, 422, "web3_provider_disabled"),
        ("grant_type=password", {"password": "x"}, 400, "validation_failed"),
        ("grant_type=password", [1], 400, "bad_json"),
        ("grant_type=refresh_token", {"refresh_token": "short"}, 400, "validation_failed"),
        ("grant_type=refresh_token", {"refresh_token": "ABCDEFGHIJKL"}, 400, "validation_failed"),
    ],
)
def test_token_refusals_before_any_io(query: str, body: object, status: int, code: str) -> None:
    run = drive("POST", f"/token?{query}", body)
    assert run.commands == []
    assert (run.status, run.code) == (status, code)


def test_token_unsupported_grant_message() -> None:
    run = drive("POST", "/token?grant_type=magic", {"auth_code": "a", "code_verifier": "b"})
    assert run.body["message"] == "unsupported_grant_type"


def test_token_id_token_missing_parameters_is_oauth_shaped() -> None:
    run = drive("POST", "/token?grant_type=id_token", {})
    assert run.status == 400
    assert run.body == {"error": "invalid request", "error_description": "id_token required"}


# --- POST /token?grant_type=refresh_token --------------------------------------------------------

CHILD = new_refresh_token(RANDOM[:8])


def state(
    token: bytes | None = None,
    *,
    user: bytes | None = None,
    session: bytes | None = None,
    active: bytes | None = None,
) -> Answer:
    row = (
        token or token_json(),
        user if user is not None else user_json(),
        session if session is not None else session_json(),
        active,
    )
    return tx(first=(row,), read_only=True)


def refresh(answers: Sequence[Answer], *, settings: AuthSettings = SETTINGS) -> Run:
    return drive(
        "POST",
        "/token?grant_type=refresh_token",
        {"refresh_token": PRESENTED},
        answers,
        settings=settings,
    )


ROTATED: Answer = tx(first=((CHILD.encode(),),), read_only=False)


def test_refresh_rotates_the_token() -> None:
    run = refresh([state(), rand, ROTATED])
    assert run.status == 200, run.body
    assert run.kinds == [RunTransaction, DrawRandom, RunTransaction]
    read = run.transactions[0]
    assert read.read_only is True
    assert read.statements[0].params == (PRESENTED,)
    assert "where rt.token = $1" in read.statements[0].sql
    assert run.commands[1] == DrawRandom(size=8)
    rotate, touch = run.transactions[1].statements
    assert rotate.sql.startswith("with p as (update auth.refresh_tokens set revoked = true")
    assert "p.token" in rotate.sql
    # parent id, parent's revoked state as read, child token, parent's user, the session.
    assert rotate.params == (STAMP, "41", "false", NIL, CHILD, USER_ID, SESSION_ID)
    assert touch.params == (STAMP, SESSION_ID)
    assert touch.sql.startswith("update auth.sessions set refreshed_at")
    assert run.body["refresh_token"] == CHILD
    claims = decode(run.body["access_token"])
    assert (claims["sub"], claims["session_id"]) == (USER_ID, SESSION_ID)
    # The session's own AMR claims go into the new access token.
    assert claims["amr"][0]["method"] == "password"


def test_refresh_revoked_within_reuse_interval_rotates_again() -> None:
    revoked = token_json(revoked=True, updated_at="2024-06-01T11:59:55+00:00")
    active = token_json("bbbbbbbbbbbb", id=42, parent="zzzzzzzzzzzz")
    run = refresh([state(revoked, active=active), rand, ROTATED])
    assert run.status == 200
    rotate = run.transactions[1].statements[0]
    assert rotate.params[1:3] == ("41", "true")


def test_refresh_returns_the_current_token_to_a_client_that_lost_it() -> None:
    revoked = token_json(revoked=True, updated_at="2024-06-01T11:00:00+00:00")
    active = token_json("cccccccccccc", id=42, parent=PRESENTED)
    run = refresh([state(revoked, active=active)])
    assert run.status == 200, run.body
    assert run.kinds == [RunTransaction]
    assert run.body["refresh_token"] == "cccccccccccc"


def test_refresh_reuse_outside_the_interval_revokes_the_family() -> None:
    revoked = token_json(revoked=True, updated_at="2024-06-01T11:00:00+00:00")
    active = token_json("cccccccccccc", id=42, parent="dddddddddddd")
    run = refresh([state(revoked, active=active), tx(read_only=False)])
    assert (run.status, run.code) == (400, "refresh_token_already_used")
    (revoke,) = run.transactions[1].statements
    assert revoke.sql.startswith("update auth.refresh_tokens set revoked = true")
    assert revoke.params == (STAMP, SESSION_ID)


def test_refresh_reuse_without_rotation_is_refused_without_writes() -> None:
    limits = attrs.evolve(LIMITS, refresh_token_rotation_enabled=False)
    revoked = token_json(revoked=True, updated_at="2024-06-01T11:00:00+00:00")
    run = refresh([state(revoked)], settings=attrs.evolve(SETTINGS, limits=limits))
    assert (run.status, run.code) == (400, "refresh_token_already_used")
    assert len(run.transactions) == 1


def test_refresh_unknown_token() -> None:
    run = refresh([tx(read_only=True)])
    assert (run.status, run.code) == (400, "refresh_token_not_found")
    assert run.body["message"] == "Invalid Refresh Token: Refresh Token Not Found"
    assert len(run.commands) == 1


def test_refresh_token_whose_user_is_gone() -> None:
    row = ((token_json(), None, session_json(), None),)
    run = refresh([tx(first=row)])
    assert (run.status, run.code) == (400, "refresh_token_not_found")
    assert len(run.commands) == 1


def test_refresh_token_whose_session_is_gone_is_deleted() -> None:
    row = ((token_json(), user_json(), None, None),)
    run = refresh([tx(first=row), tx(read_only=False)])
    assert (run.status, run.code) == (400, "session_not_found")
    (delete,) = run.transactions[1].statements
    assert delete.sql == "delete from auth.refresh_tokens where id = $1::bigint"
    assert delete.params == ("41",)


def test_refresh_banned_user_and_expired_session() -> None:
    banned = refresh([state(user=user_json(banned_until="2999-01-01T00:00:00Z"))])
    assert (banned.status, banned.code) == (400, "user_banned")
    limits = attrs.evolve(LIMITS, session_timebox=timedelta(seconds=10))
    expired = refresh([state()], settings=attrs.evolve(SETTINGS, limits=limits))
    assert (expired.status, expired.code) == (400, "session_expired")
    assert len(expired.commands) == 1


def test_refresh_retries_a_conflicting_rotation() -> None:
    conflict = tx(read_only=False)
    run = refresh([state(), rand, conflict, state(), rand, ROTATED])
    assert run.status == 200
    assert run.kinds == [RunTransaction, DrawRandom, RunTransaction] * 2


def test_refresh_gives_up_after_three_conflicts() -> None:
    conflict = tx(read_only=False)
    run = refresh([state(), rand, conflict] * 3)
    assert (run.status, run.code) == (500, "unexpected_failure")
    assert len(run.transactions) == 6


@pytest.mark.parametrize("step", [0, 1])
def test_refresh_database_failure_is_500(step: int) -> None:
    answers = [fail()] if step == 0 else [state(), rand, fail()]
    run = refresh(answers)
    assert (run.status, run.code) == (500, "unexpected_failure")


# --- POST /logout --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "session_claim", "expected"),
    [
        ("", SESSION_ID, (USER_ID, None, None)),
        ("?scope=global", SESSION_ID, (USER_ID, None, None)),
        ("?scope=", SESSION_ID, (USER_ID, None, None)),
        ("?scope=local", SESSION_ID, (USER_ID, SESSION_ID, None)),
        ("?scope=others", SESSION_ID, (USER_ID, None, SESSION_ID)),
        ("?scope=local", None, (USER_ID, NIL, None)),
        ("?scope=others", None, (USER_ID, None, NIL)),
    ],
)
def test_logout_scopes(
    query: str, session_claim: str | None, expected: tuple[str | None, ...]
) -> None:
    token = access_token(session_id=session_claim)
    answers = [me(), rand, tx(read_only=False)]
    run = drive("POST", f"/logout{query}", token=token, answers=answers)
    assert run.kinds == [RunTransaction, DrawRandom, RunTransaction]
    assert run.response == Response(status=204, headers=(("x-supabase-api-version", "2024-01-01"),))
    _, delete, audit = run.statements
    assert delete.sql.startswith("delete from auth.sessions where user_id = $1::uuid")
    assert delete.params == expected
    assert audit.params[1:5] == (uuid_at(0), "logout", "account", None)
    assert audit.params[7] == USER_ID


def test_logout_bad_scope_is_refused_before_the_token_is_read() -> None:
    run = drive("POST", "/logout?scope=all", headers=VERSION)
    assert run.commands == []
    assert (run.status, run.code) == (400, "validation_failed")
    assert run.body["message"] == 'Unsupported logout scope "all"'


def test_logout_database_failure_is_500() -> None:
    run = drive("POST", "/logout", token=access_token(), answers=[me(), rand, fail()])
    assert (run.status, run.code) == (500, "unexpected_failure")


@pytest.mark.parametrize(
    ("answer", "code"),
    [(me(b"f"), "session_not_found"), (tx(read_only=True), "user_not_found")],
)
def test_logout_with_a_session_or_user_gone_is_403_and_deletes_nothing(
    answer: Answer, code: str
) -> None:
    run = drive("POST", "/logout", token=access_token(), answers=[answer])
    assert (run.status, run.code) == (403, code)
    assert run.kinds == [RunTransaction]  # the look-up only


def test_a_banned_user_can_log_out() -> None:
    banned = me(row=user_json(banned_until="2999-01-01T00:00:00+00:00"))
    run = drive("POST", "/logout", token=access_token(), answers=[banned, rand, tx()])
    assert run.status == 204
    assert run.statements[1].sql.startswith("delete from auth.sessions")
