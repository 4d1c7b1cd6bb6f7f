"""POST /verify and GET /verify driven by hand (see test_mail_flows.py for the fake runtime)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from madbase.protocol.auth import otp_token_hash
from tests.protocol.auth.test_flows import SECRET, Answer, Run, drive, rand, tx
from tests.protocol.auth.test_mail_flows import (
    EMAIL,
    LONG_AGO,
    MAIL_SETTINGS,
    MANUAL,
    SENT,
    found,
    post,
    signed_in,
    token_row,
    user,
)

# --- POST /verify --------------------------------------------------------------------------------


def test_verify_signup_with_token_hash() -> None:
    row = user(email_confirmed_at=None, confirmation_sent_at=SENT)
    run = post(
        "/verify",
        {"type": "signup", "token_hash": "abc"},
        [token_row(row, "confirmation_token"), *signed_in()],
    )
    assert run.status == 200, run.body
    assert run.body["token_type"] == "bearer"
    lookup = run.transactions[0]
    assert lookup.read_only
    assert lookup.statements[0].params == ("abc", "confirmation_token", None)
    sqls = [s.sql for s in run.transactions[1].statements]
    assert any("email_confirmed_at = $2::timestamptz" in s for s in sqls)
    claims = jwt.decode(
        run.body["access_token"],
        SECRET,
        algorithms=["HS256"],
        audience="authenticated",
        options={"verify_exp": False},
    )
    assert claims["amr"][0]["method"] == "otp"


def test_verify_email_otp_resolves_to_magiclink() -> None:
    row = user(recovery_sent_at=SENT)
    run = post(
        "/verify",
        {"type": "email", "email": EMAIL, "token": "123456"},
        [token_row(row, "recovery_token"), *signed_in()],
    )
    assert run.status == 200
    assert run.transactions[0].statements[0].params == (
        otp_token_hash(EMAIL, "123456"),
        "confirmation_token,recovery_token",
        EMAIL,
    )
    sqls = [s.sql for s in run.transactions[1].statements]
    assert any("recovery_token = ''" in s for s in sqls)


def test_verify_recovery_confirms_an_unconfirmed_user() -> None:
    row = user(email_confirmed_at=None, recovery_sent_at=SENT)
    run = post(
        "/verify",
        {"type": "recovery", "token_hash": "h"},
        [token_row(row, "recovery_token"), *signed_in()],
    )
    assert run.status == 200
    actions = [s.params[2] for s in run.transactions[1].statements if "audit_log" in s.sql]
    assert actions == ["user_signedup"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (found(), "Email link is invalid or has expired"),
        (
            token_row(user(confirmation_sent_at=LONG_AGO), "confirmation_token"),
            "Email link is invalid or has expired",
        ),
        (
            token_row(user(), "confirmation_token"),
            "Email link is invalid or has expired",
        ),  # never sent
    ],
)
def test_verify_refusals(answer: Answer, message: str) -> None:
    run = post("/verify", {"type": "signup", "token_hash": "h"}, [answer])
    assert (run.status, run.code, run.body["message"]) == (403, "otp_expired", message)


def test_verify_typed_token_message_and_banned_user() -> None:
    run = post("/verify", {"type": "signup", "email": EMAIL, "token": "1"}, [found()])
    assert run.body["message"] == "Token has expired or is invalid"
    banned = user(confirmation_sent_at=SENT, banned_until="2999-01-01T00:00:00+00:00")
    run = post(
        "/verify", {"type": "signup", "token_hash": "h"}, [token_row(banned, "confirmation_token")]
    )
    assert (run.status, run.code) == (403, "user_banned")


@pytest.mark.parametrize(
    "body",
    [
        {"type": "phone_change", "token_hash": "h"},
        {"type": "phone_change", "email": EMAIL, "token": "123456"},
        {"type": "sms", "token_hash": "h"},
        {"type": "sms", "email": EMAIL, "token": "123456"},
        {"type": "signup", "phone": "15550100", "token": "123456"},
    ],
)
def test_verify_phone_tokens_only_as_sms_with_the_number(body: object) -> None:
    run = post("/verify", body, [])
    assert (run.status, run.code) == (403, "otp_expired")


def test_verify_email_change_first_half() -> None:
    row = user(email_change="new@example.com", email_change_sent_at=SENT)
    run = post(
        "/verify",
        {"type": "email_change", "token_hash": "h"},
        [token_row(row, "email_change_token_current"), rand, tx(first=((b"0",),)), tx()],
        settings=MANUAL,
    )
    assert run.body == {
        "msg": "Confirmation link accepted. Please proceed to confirm link sent to the other email",
        "code": "200",
    }
    assert run.transactions[2].statements[0].params[1] == "email_change_token_current"


def test_verify_email_change_second_half_completes() -> None:
    row = user(email_change="new@example.com", email_change_sent_at=SENT)
    run = post(
        "/verify",
        {"type": "email_change", "token_hash": "h"},
        [
            token_row(row, "email_change_token_new"),
            rand,
            tx(first=((b"1",),)),
            tx(last=((user(email="new@example.com"),),)),
        ],
        settings=MANUAL,
    )
    assert run.status == 200
    assert run.body["user"]["email"] == "new@example.com"


def test_verify_email_change_with_autoconfirm_completes_at_once() -> None:
    row = user(email_change="new@example.com", email_change_sent_at=SENT)
    run = post(
        "/verify",
        {"type": "email_change", "token_hash": "h"},
        [token_row(row, "email_change_token_new"), *signed_in()],
    )
    assert run.status == 200


# --- GET /verify ---------------------------------------------------------------------------------


def get(target: str, answers: Sequence[Answer], **kw: Any) -> Run:
    kw.setdefault("settings", MAIL_SETTINGS)
    return drive("GET", target, None, answers, headers=(), **kw)


def test_verify_link_redirects_with_the_session() -> None:
    row = user(email_confirmed_at=None, confirmation_sent_at=SENT)
    run = get(
        "/verify?token=h&type=signup&redirect_to=http://localhost:3000/welcome",
        [token_row(row, "confirmation_token"), *signed_in()],
    )
    assert run.status == 303
    location = run.response.header("location") or ""
    base, fragment = location.split("#")
    assert base == "http://localhost:3000/welcome"
    assert fragment.startswith("access_token=")
    assert fragment.endswith("&sb=&token_type=bearer&type=signup")
    assert parse_qs(fragment)["expires_in"] == ["3600"]


def test_verify_link_errors_redirect() -> None:
    run = get("/verify?token=h&type=magiclink&redirect_to=https://evil.example/", [found()])
    assert run.status == 303
    location = run.response.header("location") or ""
    assert location.startswith("http://localhost:3000#")
    fragment = parse_qs(urlsplit(location).fragment, keep_blank_values=True)
    assert fragment == {
        "error": ["access_denied"],
        "error_code": ["otp_expired"],
        "error_description": ["Email link is invalid or has expired"],
        "sb": [""],
    }
    assert run.response.error_code == "otp_expired"


def test_verify_link_half_confirmation_redirects_with_a_message() -> None:
    row = user(email_change="new@example.com", email_change_sent_at=SENT)
    run = get(
        "/verify?token=h&type=email_change",
        [token_row(row, "email_change_token_new"), rand, tx(first=((b"0",),)), tx()],
        settings=MANUAL,
    )
    location = run.response.header("location") or ""
    assert parse_qs(urlsplit(location).fragment)["message"][0].startswith(
        "Confirmation link accepted"
    )


@pytest.mark.parametrize(
    "target", ["/verify?type=signup", "/verify?token=h", "/verify?token=h&type=x"]
)
def test_verify_link_bad_parameters_are_json_errors(target: str) -> None:
    run = get(target, [])
    assert (run.status, run.body["error_code"]) == (400, "validation_failed")


def test_verify_other_methods_are_404() -> None:
    run = drive("DELETE", "/verify", None, [])
    assert run.status == 404
