"""The mailing flows driven by hand (see test_flows.py): /otp, /magiclink, /recover, /resend,
/reauthenticate, /verify (POST and GET), /invite, /admin/generate_link, signup and PUT /user mail.

Each test scripts the runtime's answers; rows are shaped as the real database returns them
(tests/runtime/test_auth_mail.py runs the same flows against it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.auth import (
    AuthCommand,
    DrawRandom,
    HashPassword,
    MailKind,
    MailSettings,
    RunTransaction,
    SendMail,
    SendSms,
    SmsNotSent,
    auth_flow,
    otp_token_hash,
)
from madbase.protocol.auth.mail import otp_from_random
from madbase.protocol.http import Response
from madbase.protocol.sql import DbResult
from tests.protocol.auth.test_flows import (
    NOW,
    RANDOM,
    SECRET,
    SETTINGS,
    USER_ID,
    Answer,
    Run,
    access_token,
    check,
    drive,
    fail,
    hashed,
    make_request,
    rand,
    tx,
    user_json,
)

API = "http://api.test/auth/v1"
MAIL_SETTINGS = attrs.evolve(SETTINGS, mail=MailSettings(external_url=API))
MANUAL = attrs.evolve(MAIL_SETTINGS, autoconfirm=False)
SENT = "2024-06-01T11:59:30+00:00"  # 30 s before NOW
LONG_AGO = "2024-05-01T08:30:00+00:00"
STAMP_NOW = "2024-06-01T12:00:00+00:00"
EMAIL = "alice@example.com"
STORED = ((USER_ID.encode(),),)


def user(**overrides: Any) -> bytes:
    return user_json(**overrides)


def found(row: bytes | None = None) -> Answer:
    return tx(first=() if row is None else ((row,),))


def token_row(row: bytes, token_type: str) -> Answer:
    return tx(first=((row, token_type.encode()),))


def stored(row: bytes | None = None, *, ok: bool = True) -> Answer:
    """Answer a transaction ending in store_token + select_user."""
    row = row or user()

    def answer(command: AuthCommand) -> object:
        results = tx(last=((row,),))(command)
        assert isinstance(results, list)
        if ok:
            results[-2] = attrs.evolve(results[-2], rows=STORED)
        return results

    return answer


def sent(command: AuthCommand) -> object:
    assert isinstance(command, SendMail), command
    return None


def undelivered(command: AuthCommand) -> object:
    assert isinstance(command, SendMail), command
    return "relay down"


def mails(run: Run) -> list[SendMail]:
    return [c for c in run.commands if isinstance(c, SendMail)]


def link_token(mail: SendMail) -> str:
    link = next(word for word in mail.text.split() if "/verify?" in word)
    return parse_qs(urlsplit(link).query)["token"][0]


def the_otp() -> str:
    return otp_from_random(RANDOM[:8])


def service_token(role: str = "service_role") -> str:
    return jwt.encode({"role": role}, SECRET, algorithm="HS256")


def post(path: str, body: object, answers: Sequence[Answer], **kw: Any) -> Run:
    kw.setdefault("settings", MAIL_SETTINGS)
    return drive("POST", path, body, answers, **kw)


# --- /otp, /magiclink ----------------------------------------------------------------------------


def test_otp_confirmed_user_gets_a_magic_link() -> None:
    run = post("/otp", {"email": EMAIL}, [found(user()), rand, rand, stored(), sent])
    assert (run.status, run.body) == (200, {})
    (mail,) = mails(run)
    assert (mail.to, mail.kind) == (EMAIL, MailKind.MAGIC_LINK)
    token_hash = otp_token_hash(EMAIL, the_otp())
    assert f"{API}/verify?token={token_hash}&type=magiclink&redirect_to=" in mail.text
    assert the_otp() in mail.text
    store = run.transactions[1].statements[-2]
    assert "recovery_token = $1" in store.sql
    assert store.params[0] == token_hash
    assert the_otp() not in run.params()  # only the hash is stored


def test_otp_within_the_send_interval_is_429() -> None:
    run = post("/otp", {"email": EMAIL}, [found(user(recovery_sent_at=SENT)), rand])
    assert (run.status, run.code) == (429, "over_email_send_rate_limit")
    assert (
        run.body["message"] == "For security purposes, you can only request this after 30 seconds."
    )


def test_otp_lost_race_is_429() -> None:
    # Even with no send interval configured, a token that was not stored is never mailed.
    settings = attrs.evolve(MAIL_SETTINGS, mail=MailSettings(max_frequency_seconds=0))
    run = post(
        "/otp", {"email": EMAIL}, [found(user()), rand, rand, stored(ok=False)], settings=settings
    )
    assert (run.status, run.code) == (429, "over_email_send_rate_limit")
    assert (
        run.body["message"] == "For security purposes, you can only request this after 0 seconds."
    )
    assert mails(run) == []


def test_otp_undelivered_is_500() -> None:
    run = post("/otp", {"email": EMAIL}, [found(user()), rand, rand, stored(), undelivered])
    assert (run.status, run.code) == (500, "unexpected_failure")
    assert run.body["message"] == "Error sending magic link email"


def test_otp_unknown_without_create_user_is_otp_disabled() -> None:
    run = post("/otp", {"email": EMAIL, "create_user": False}, [found()])
    assert (run.status, run.code) == (422, "otp_disabled")


def test_otp_new_user_with_autoconfirm_is_created_confirmed_then_sent_a_magic_link() -> None:
    fresh = user(id=USER_ID)
    run = post(
        "/otp",
        {"email": EMAIL, "data": {"plan": "pro"}},
        [found(), rand, tx(last=((fresh,),)), rand, rand, stored(), sent],
    )
    assert run.status == 200
    insert = run.transactions[1].statements[0]
    assert insert.sql.startswith("insert into auth.users")
    assert insert.params[6] is not None  # email_confirmed_at
    assert json.loads(insert.params[10] or "")["plan"] == "pro"
    assert mails(run)[0].kind is MailKind.MAGIC_LINK


def test_otp_new_user_without_autoconfirm_gets_the_confirmation() -> None:
    fresh = user(email_confirmed_at=None)
    run = post(
        "/otp",
        {"email": EMAIL},
        [found(), rand, tx(last=((fresh,),)), rand, stored(fresh), sent],
        settings=MANUAL,
    )
    assert run.status == 200
    (mail,) = mails(run)
    assert mail.kind is MailKind.CONFIRMATION
    assert "type=signup" in mail.text


def test_otp_unconfirmed_user_with_autoconfirm_is_confirmed_first() -> None:
    pending = user(email_confirmed_at=None)
    run = post(
        "/otp",
        {"email": EMAIL},
        [found(pending), rand, tx(last=((user(),),)), rand, rand, stored(), sent],
    )
    assert run.status == 200
    assert "email_confirmed_at = $2" in run.transactions[1].statements[0].sql


def test_otp_signups_disabled() -> None:
    settings = attrs.evolve(
        MAIL_SETTINGS, limits=attrs.evolve(MAIL_SETTINGS.limits, disable_signup=True)
    )
    run = post("/otp", {"email": EMAIL}, [found(), rand], settings=settings)
    assert (run.status, run.code) == (422, "signup_disabled")


def test_otp_phone_needs_an_sms_provider() -> None:
    run = post("/otp", {"phone": "+1 555 0100"}, [found(user(phone="15550100"))])
    assert (run.status, run.code) == (500, "unexpected_failure")
    assert run.body["message"] == "Unable to get SMS provider"


def test_legacy_magiclink() -> None:
    run = post("/magiclink", {"email": EMAIL}, [found(user()), rand, rand, stored(), sent])
    assert (run.status, run.body) == (200, {})
    missing = post("/magiclink", {}, [])
    assert (missing.status, missing.code) == (422, "validation_failed")
    settings = attrs.evolve(
        MAIL_SETTINGS, limits=attrs.evolve(MAIL_SETTINGS.limits, email_enabled=False)
    )
    off = post("/magiclink", {"email": EMAIL}, [], settings=settings)
    assert (off.status, off.code) == (422, "email_provider_disabled")


# --- /recover, /resend -------------------------------------------------------------------------


def test_recover_known_and_unknown_look_alike() -> None:
    known = post("/recover", {"email": EMAIL}, [found(user()), rand, rand, stored(), sent])
    unknown = post("/recover", {"email": EMAIL}, [found()])
    assert (known.status, known.body) == (unknown.status, unknown.body) == (200, {})
    assert mails(known)[0].kind is MailKind.RECOVERY
    assert mails(unknown) == []


def test_recover_email_provider_disabled() -> None:
    settings = attrs.evolve(
        MAIL_SETTINGS, limits=attrs.evolve(MAIL_SETTINGS.limits, email_enabled=False)
    )
    run = post("/recover", {"email": EMAIL}, [], settings=settings)
    assert (run.status, run.code) == (422, "email_provider_disabled")


@pytest.mark.parametrize(
    ("body", "row"),
    [
        ({"type": "signup", "email": EMAIL}, None),
        ({"type": "signup", "email": EMAIL}, user()),  # confirmed already
        ({"type": "email_change", "email": EMAIL}, user()),  # nothing pending
        ({"type": "sms", "phone": "15550100"}, user(phone_confirmed_at=LONG_AGO)),
        ({"type": "phone_change", "phone": "15550100"}, user()),
    ],
)
def test_resend_with_nothing_to_send_answers_empty(body: object, row: bytes | None) -> None:
    run = post("/resend", body, [found(row)])
    assert (run.status, run.body) == (200, {})


def test_resend_signup_confirmation() -> None:
    pending = user(email_confirmed_at=None, confirmation_sent_at=LONG_AGO)
    run = post(
        "/resend", {"type": "signup", "email": EMAIL}, [found(pending), rand, rand, stored(), sent]
    )
    assert run.status == 200
    assert mails(run)[0].kind is MailKind.CONFIRMATION


def test_resend_email_change_mails_both_addresses() -> None:
    pending = user(email_change="new@example.com")
    run = post(
        "/resend",
        {"type": "email_change", "email": EMAIL},
        [found(pending), rand, stored(), sent, sent],
    )
    assert run.status == 200
    assert [m.to for m in mails(run)] == ["new@example.com", EMAIL]


@pytest.mark.parametrize(
    ("body", "row"),
    [
        ({"type": "sms", "phone": "15550100"}, user(phone="15550100")),
        ({"type": "phone_change", "phone": "15550100"}, user(phone_change="15550111")),
    ],
)
def test_resend_sms_needs_an_sms_provider(body: object, row: bytes) -> None:
    run = post("/resend", body, [found(row)])
    assert (run.status, run.code) == (500, "unexpected_failure")


# --- /reauthenticate -----------------------------------------------------------------------------


def me(row: bytes) -> Answer:
    return tx(first=((row, b"t"),))


def test_reauthenticate_mails_a_code() -> None:
    run = drive(
        "GET",
        "/reauthenticate",
        None,
        [me(user()), rand, rand, stored(), sent],
        token=access_token(),
        settings=MAIL_SETTINGS,
    )
    assert (run.status, run.body) == (200, {})
    (mail,) = mails(run)
    assert mail.kind is MailKind.REAUTHENTICATION
    assert mail.subject == f"{the_otp()} is your verification code"


@pytest.mark.parametrize(
    ("row", "status", "code"),
    [
        (user(email=None, phone=None), 400, "validation_failed"),
        (user(email=None, phone="15550100"), 422, "phone_not_confirmed"),
        (
            user(email=None, phone="15550100", phone_confirmed_at=LONG_AGO),
            500,
            "unexpected_failure",
        ),
        (user(email_confirmed_at=None), 422, "email_not_confirmed"),
    ],
)
def test_reauthenticate_refusals(row: bytes, status: int, code: str) -> None:
    run = drive(
        "GET", "/reauthenticate", None, [me(row)], token=access_token(), settings=MAIL_SETTINGS
    )
    assert (run.status, run.code) == (status, code)


# --- POST /verify --------------------------------------------------------------------------------


def signed_in(row: bytes | None = None) -> list[Answer]:
    """Answers after the token was found: random ids, the sign-in transaction."""
    return [rand, tx(last=((row or user(),),))]


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
        {"type": "phone_change", "phone": "15550100", "token": "123456"},
        {"type": "sms", "token_hash": "h"},
        {"type": "sms", "email": EMAIL, "token": "123456"},
        {"type": "signup", "phone": "15550100", "token": "123456"},
    ],
)
def test_verify_phone_tokens_only_as_sms_with_the_number(body: object) -> None:
    run = post("/verify", body, [])
    assert (run.status, run.code) == (403, "otp_expired")


# --- SMS ---------------------------------------------------------------------------------------

PHONE = "15550100"
TEXTING = attrs.evolve(
    MAIL_SETTINGS,
    limits=attrs.evolve(MAIL_SETTINGS.limits, phone_enabled=True),
    mail=MailSettings(external_url=API, sms_enabled=True),
)


def texted(command: AuthCommand) -> object:
    assert isinstance(command, SendSms), command
    assert command.text == f"Your code is {the_otp()}"
    return "msg-1"


def not_texted(command: AuthCommand) -> object:
    assert isinstance(command, SendSms), command
    return SmsNotSent(reason="provider down")


def test_sms_otp_for_a_confirmed_number() -> None:
    row = user(email=None, phone=PHONE, phone_confirmed_at=LONG_AGO)
    run = post(
        "/otp",
        {"phone": "+1 555 0100"},
        [found(row), rand, rand, stored(row), texted],
        settings=TEXTING,
    )
    assert (run.status, run.body) == (200, {"message_id": "msg-1"})
    store = run.transactions[1].statements[-2]
    assert store.params[0] == otp_token_hash(PHONE, the_otp())
    assert store.params[6] == PHONE  # relates_to


def test_sms_otp_new_number_without_autoconfirm_texts_the_confirmation() -> None:
    fresh = user(email=None, phone=PHONE)
    run = post(
        "/otp",
        {"phone": PHONE},
        [found(), rand, tx(last=((fresh,),)), rand, stored(fresh), texted],
        settings=attrs.evolve(TEXTING, autoconfirm=False),
    )
    assert (run.status, run.body) == (200, {})
    insert = run.transactions[1].statements[0]
    assert insert.params[3:5] == (None, PHONE)


def test_sms_otp_new_number_with_autoconfirm() -> None:
    fresh = user(email=None, phone=PHONE, phone_confirmed_at=STAMP_NOW)
    run = post(
        "/otp",
        {"phone": PHONE},
        [found(), rand, tx(last=((fresh,),)), rand, rand, stored(fresh), texted],
        settings=TEXTING,
    )
    assert run.body == {"message_id": "msg-1"}


def test_sms_otp_unconfirmed_number_with_autoconfirm_is_confirmed_first() -> None:
    pending = user(email=None, phone=PHONE)
    run = post(
        "/otp",
        {"phone": PHONE},
        [found(pending), rand, tx(last=((pending,),)), rand, rand, stored(pending), texted],
        settings=TEXTING,
    )
    assert run.status == 200
    assert "phone_confirmed_at = $2" in run.transactions[1].statements[0].sql


@pytest.mark.parametrize(
    ("answers", "settings", "status", "code"),
    [
        (
            [found(), rand],
            attrs.evolve(TEXTING, limits=attrs.evolve(TEXTING.limits, disable_signup=True)),
            422,
            "signup_disabled",
        ),
        (
            [
                found(user(phone=PHONE, phone_confirmed_at=LONG_AGO, confirmation_sent_at=SENT)),
                rand,
            ],
            TEXTING,
            429,
            "over_sms_send_rate_limit",
        ),
        (
            [
                found(user(phone=PHONE, phone_confirmed_at=LONG_AGO)),
                rand,
                rand,
                stored(),
                not_texted,
            ],
            TEXTING,
            422,
            "sms_send_failed",
        ),
        (
            [found(user(phone=PHONE, phone_confirmed_at=LONG_AGO)), rand, rand, stored(ok=False)],
            TEXTING,
            429,
            "over_sms_send_rate_limit",
        ),
        ([found(), rand, tx()], TEXTING, 500, "unexpected_failure"),
    ],
)
def test_sms_otp_refusals(answers: list[Answer], settings: Any, status: int, code: str) -> None:
    run = post("/otp", {"phone": PHONE}, answers, settings=settings)
    assert (run.status, run.code) == (status, code)


def test_verify_sms_confirms_the_number() -> None:
    row = user(email=None, phone=PHONE, confirmation_sent_at=SENT)
    run = post(
        "/verify",
        {"type": "sms", "phone": PHONE, "token": "123456"},
        [token_row(row, "confirmation_token"), *signed_in(row)],
        settings=TEXTING,
    )
    assert run.status == 200, run.body
    assert run.transactions[0].statements[0].params[2] == PHONE
    sqls = [s.sql for s in run.transactions[1].statements]
    assert any("phone_confirmed_at = $2::timestamptz" in s for s in sqls)
    record = next(s for s in run.transactions[1].statements if "last_sign_in_at" in s.sql)
    assert record.params[2] == "phone"


def test_verify_sms_expires_after_a_minute() -> None:
    row = user(email=None, phone=PHONE, confirmation_sent_at="2024-06-01T11:58:00+00:00")
    run = post(
        "/verify",
        {"type": "sms", "phone": PHONE, "token": "123456"},
        [token_row(row, "confirmation_token")],
        settings=TEXTING,
    )
    assert (run.status, run.code) == (403, "otp_expired")


def test_resend_sms() -> None:
    row = user(email=None, phone=PHONE)
    run = post(
        "/resend",
        {"type": "sms", "phone": PHONE},
        [found(row), rand, stored(row), texted],
        settings=TEXTING,
    )
    assert run.body == {"message_id": "msg-1"}


def test_signup_by_phone_without_autoconfirm() -> None:
    row = user(email=None, phone=PHONE, email_confirmed_at=None)
    settings = attrs.evolve(TEXTING, autoconfirm=False)
    run = post(
        "/signup",
        {"phone": PHONE, "password": "s3cret-pass"},
        [rand, hashed(), tx(last=((row,),)), rand, stored(row), texted],
        settings=settings,
    )
    assert run.status == 200
    assert "access_token" not in run.body
    no_sms = post(
        "/signup",
        {"phone": PHONE, "password": "s3cret-pass"},
        [],
        settings=attrs.evolve(settings, mail=MailSettings()),
    )
    assert (no_sms.status, no_sms.body["message"]) == (500, "Unable to get SMS provider")


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


# --- /invite, /admin/generate_link -------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        (None, 401, "no_authorization"),
        (service_token("anon"), 403, "not_admin"),
        ("x.y.z", 403, "bad_jwt"),
    ],
)
@pytest.mark.parametrize("path", ["/invite", "/admin/generate_link"])
def test_admin_routes_need_the_service_role(
    path: str, token: str | None, status: int, code: str
) -> None:
    run = post(path, {"email": EMAIL, "type": "magiclink"}, [], token=token)
    assert (run.status, run.code) == (status, code)


def test_invite_creates_and_mails() -> None:
    fresh = user(email_confirmed_at=None)
    run = post(
        "/invite",
        {"email": EMAIL, "data": {"team": "a"}},
        [found(), rand, tx(last=((fresh,),)), rand, rand, stored(fresh), sent],
        token=service_token(),
    )
    assert run.status == 200
    assert mails(run)[0].kind is MailKind.INVITE
    store = run.transactions[2].statements[-2]
    assert "invited_at = $2::timestamptz" in store.sql
    assert store.params[3] is None  # no send interval for invites


def test_invite_confirmed_user_is_email_exists() -> None:
    run = post("/invite", {"email": EMAIL}, [found(user())], token=service_token())
    assert (run.status, run.code) == (422, "email_exists")
    empty = post("/invite", {}, [], token=service_token())
    assert (empty.status, empty.body["message"]) == (400, "An email address is required")


def test_generate_link_magiclink_for_an_existing_user() -> None:
    run = post(
        "/admin/generate_link?redirect_to=http://localhost:3000/x",
        {"type": "magiclink", "email": EMAIL},
        [found(user()), rand, tx(last=((user(),),))],
        token=service_token(),
    )
    assert run.status == 200
    body = run.body
    otp = body["email_otp"]
    assert body["hashed_token"] == otp_token_hash(EMAIL, otp)
    assert body["verification_type"] == "magiclink"
    assert body["redirect_to"] == "http://localhost:3000/x"
    assert body["action_link"] == (
        f"{API}/verify?token={body['hashed_token']}&type=magiclink&redirect_to=http://localhost:3000/x"
    )
    assert body["id"] == USER_ID
    assert mails(run) == []


def test_generate_link_signup_for_a_new_address_hashes_the_password() -> None:
    fresh = user(email_confirmed_at=None)
    run = post(
        "/admin/generate_link",
        {
            "type": "signup",
            "email": EMAIL,
            "password": "s3cret-pass",
            "redirect_to": "http://localhost:3000/b",
        },
        [found(), rand, hashed(), rand, tx(last=((fresh,),)), tx(last=((fresh,),))],
        token=service_token(),
    )
    assert run.status == 200
    assert run.body["redirect_to"] == "http://localhost:3000/b"
    assert any("encrypted_password = $2" in s.sql for s in run.transactions[1].statements)


def test_generate_link_magiclink_for_an_unknown_address_is_a_signup() -> None:
    fresh = user(email_confirmed_at=None)
    run = post(
        "/admin/generate_link",
        {"type": "magiclink", "email": EMAIL},
        [found(), rand, rand, tx(last=((fresh,),)), tx(last=((fresh,),))],
        token=service_token(),
    )
    assert run.body["verification_type"] == "signup"


def test_generate_link_signup_for_an_unconfirmed_user_merges_data() -> None:
    pending = user(email_confirmed_at=None)
    run = post(
        "/admin/generate_link",
        {"type": "signup", "email": EMAIL, "data": {"k": 1}},
        [found(pending), rand, tx(last=((pending,),))],
        token=service_token(),
    )
    assert run.status == 200
    assert "raw_user_meta_data = $2::jsonb" in run.transactions[1].statements[0].sql


def test_generate_link_invite_audits() -> None:
    pending = user(email_confirmed_at=None)
    run = post(
        "/admin/generate_link",
        {"type": "invite", "email": EMAIL},
        [found(pending), rand, tx(last=((pending,),))],
        token=service_token(),
    )
    assert run.status == 200
    assert run.transactions[1].statements[0].params[2] == "user_invited"


@pytest.mark.parametrize(
    ("body", "answers", "status", "code"),
    [
        ({"type": "recovery", "email": EMAIL}, [found()], 404, "user_not_found"),
        ({"type": "bogus", "email": EMAIL}, [found(user())], 400, "validation_failed"),
        ({"type": "signup", "email": EMAIL}, [found(user()), rand], 422, "email_exists"),
        (
            {"type": "signup", "email": EMAIL, "password": "short"},
            [found()],
            422,
            "weak_password",
        ),
        ({"type": "signup", "email": EMAIL}, [found()], 400, "validation_failed"),
        (
            {"type": "email_change_new", "email": EMAIL, "new_email": "n@example.com"},
            [found(user()), rand, tx(first=((b"t",),))],
            422,
            "email_exists",
        ),
    ],
)
def test_generate_link_refusals(
    body: object, answers: list[Answer], status: int, code: str
) -> None:
    run = post("/admin/generate_link", body, answers, token=service_token())
    assert (run.status, run.code) == (status, code)


@pytest.mark.parametrize("kind", ["email_change_current", "email_change_new"])
def test_generate_link_email_change(kind: str) -> None:
    run = post(
        "/admin/generate_link",
        {"type": kind, "email": EMAIL, "new_email": "n@example.com"},
        [
            found(user()),
            rand,
            tx(first=((b"f",),)),
            tx(last=((user(email_change="n@example.com"),),)),
        ],
        token=service_token(),
    )
    assert run.status == 200
    body = run.body
    assert body["hashed_token"] == otp_token_hash(EMAIL, body["email_otp"])
    link_hash = parse_qs(urlsplit(body["action_link"]).query)["token"][0]
    expected = EMAIL if kind == "email_change_current" else "n@example.com"
    assert link_hash == otp_token_hash(expected, body["email_otp"])
    assert "type=email_change" in body["action_link"]


def test_generate_link_current_needs_secure_email_change() -> None:
    settings = attrs.evolve(MAIL_SETTINGS, mail=MailSettings(secure_email_change=False))
    run = post(
        "/admin/generate_link",
        {"type": "email_change_current", "email": EMAIL, "new_email": "n@example.com"},
        [found(user()), rand],
        token=service_token(),
        settings=settings,
    )
    assert (run.status, run.code) == (400, "validation_failed")


# --- signup and PUT /user --------------------------------------------------------------------------


def test_repeated_signup_of_a_confirmed_address_answers_a_made_up_user() -> None:
    run = post(
        "/signup",
        {"email": EMAIL, "password": "s3cret-pass", "data": {"a": 1}},
        [rand, hashed(), fail("23505"), found(user()), rand],
        settings=MANUAL,
    )
    assert run.status == 200
    assert run.body["id"] != USER_ID
    assert run.body["role"] == ""
    assert run.body["user_metadata"] == {"a": 1}
    assert mails(run) == []


def test_repeated_signup_of_an_unconfirmed_address_mails_again() -> None:
    pending = user(email_confirmed_at=None, confirmation_sent_at=LONG_AGO)
    run = post(
        "/signup",
        {"email": EMAIL, "password": "s3cret-pass"},
        [rand, hashed(), fail("23505"), found(pending), rand, rand, stored(pending), sent],
        settings=MANUAL,
    )
    assert run.status == 200
    assert run.body["id"] == USER_ID
    assert mails(run)[0].kind is MailKind.CONFIRMATION


def put_user(body: object, answers: Sequence[Answer], **kw: Any) -> Run:
    kw.setdefault("settings", MAIL_SETTINGS)
    kw.setdefault("token", access_token())
    return drive("PUT", "/user", body, answers, **kw)


def test_put_user_email_change_mails_both_addresses() -> None:
    pending = user(email_change="new@example.com")
    run = put_user(
        {"email": "new@example.com"},
        [
            me(user()),
            rand,
            tx(first=((b"f",),)),
            tx(last=((user(),),)),
            rand,
            stored(pending),
            sent,
            sent,
        ],
    )
    assert run.status == 200
    assert run.body["new_email"] == "new@example.com"
    first, second = mails(run)
    assert (first.to, second.to) == ("new@example.com", EMAIL)
    otp_new = otp_from_random(RANDOM[:8])
    assert link_token(first) == otp_token_hash("new@example.com", otp_new)


def test_put_user_taken_email_is_refused_before_any_write() -> None:
    run = put_user({"email": "new@example.com"}, [me(user()), rand, tx(first=((b"t",),))])
    assert (run.status, run.code) == (422, "email_exists")


def test_put_user_email_change_within_the_interval_is_429() -> None:
    row = user(email_change_sent_at=SENT)
    run = put_user(
        {"email": "new@example.com"}, [me(row), rand, tx(first=((b"f",),)), tx(last=((row,),))]
    )
    assert (run.status, run.code) == (429, "over_email_send_rate_limit")


def test_put_user_anonymous_email_with_autoconfirm_is_immediate() -> None:
    anon = user(email=None, is_anonymous=True)
    run = put_user(
        {"email": "new@example.com"},
        [
            me(anon),
            rand,
            tx(first=((b"f",),)),
            tx(last=((anon,),)),
            rand,
            tx(last=((user(email="new@example.com"),),)),
        ],
    )
    assert run.status == 200
    assert mails(run) == []
    assert run.body["email"] == "new@example.com"


SECURE = attrs.evolve(MAIL_SETTINGS, mail=MailSettings(password_require_reauthentication=True))


def test_put_user_password_in_a_recent_session_needs_no_nonce() -> None:
    run = put_user(
        {"password": "new-s3cret"},
        [me(user()), rand, tx(first=((b"t",),)), check(False), hashed(), tx(last=((user(),),))],
        settings=SECURE,
    )
    assert run.status == 200
    assert run.transactions[1].statements[0].params[1] == (NOW - timedelta(hours=24)).isoformat()


@pytest.mark.parametrize(
    ("body", "answers", "status", "code"),
    [
        ({"password": "new-s3cret"}, [], 400, "reauthentication_needed"),
        (
            {"password": "new-s3cret", "nonce": "123456"},
            [found()],
            422,
            "reauthentication_not_valid",
        ),
    ],
)
def test_put_user_password_in_an_old_session_needs_the_nonce(
    body: object, answers: list[Answer], status: int, code: str
) -> None:
    run = put_user(body, [me(user()), rand, tx(first=((b"f",),)), *answers], settings=SECURE)
    assert (run.status, run.code) == (status, code)


def test_put_user_password_with_the_nonce() -> None:
    row = user(reauthentication_sent_at=SENT)
    run = put_user(
        {"password": "new-s3cret", "nonce": "123456"},
        [
            me(row),
            rand,
            tx(first=()),
            token_row(row, "reauthentication_token"),
            check(False),
            hashed(),
            tx(last=((row,),)),
        ],
        settings=SECURE,
    )
    assert run.status == 200
    assert run.transactions[2].statements[0].params[0] == otp_token_hash(EMAIL, "123456")
    assert "reauthentication_token = ''" in run.transactions[3].statements[0].sql


def test_put_user_nonce_needs_an_email() -> None:
    row = user(email=None, phone="15550100")
    run = put_user(
        {"password": "new-s3cret", "nonce": "123456"},
        [me(row), rand, tx(first=((b"f",),))],
        settings=SECURE,
    )
    assert (run.status, run.code) == (422, "reauthentication_not_valid")


# --- a user deleted while the flow ran -------------------------------------------------------------


def gone(command: AuthCommand) -> object:
    """The write ran, but the user row was gone at the final select."""
    results = tx()(command)
    assert isinstance(results, list)
    results[-2] = attrs.evolve(results[-2], rows=STORED)
    return results


@pytest.mark.parametrize(
    ("method", "path", "body", "answers", "token"),
    [
        ("POST", "/recover", {"email": EMAIL}, [found(user()), rand, rand, gone], None),
        (
            "POST",
            "/verify",
            {"type": "signup", "token_hash": "h"},
            [token_row(user(confirmation_sent_at=SENT), "confirmation_token"), rand, tx()],
            None,
        ),
        ("POST", "/invite", {"email": EMAIL}, [found(), rand, tx()], "service"),
        (
            "POST",
            "/admin/generate_link",
            {"type": "recovery", "email": EMAIL},
            [found(user()), rand, tx()],
            "service",
        ),
        (
            "PUT",
            "/user",
            {"email": "new@example.com"},
            [me(user()), rand, tx(first=((b"f",),)), tx(last=((user(),),)), rand, gone, sent, sent],
            "user",
        ),
    ],
)
def test_user_deleted_meanwhile_is_500(
    method: str, path: str, body: object, answers: list[Answer], token: str | None
) -> None:
    bearer = {"service": service_token(), "user": access_token(), None: None}[token]
    run = drive(method, path, body, answers, token=bearer, settings=MAIL_SETTINGS)
    assert (run.status, run.code) == (500, "unexpected_failure")


def test_email_change_lost_race_is_429_and_plain_change_mails_once() -> None:
    race = put_user(
        {"email": "new@example.com"},
        [me(user()), rand, tx(first=((b"f",),)), tx(last=((user(),),)), rand, tx()],
    )
    assert (race.status, race.code) == (429, "over_email_send_rate_limit")
    plain = attrs.evolve(MAIL_SETTINGS, mail=MailSettings(secure_email_change=False))
    run = put_user(
        {"email": "new@example.com"},
        [me(user()), rand, tx(first=((b"f",),)), tx(last=((user(),),)), rand, stored(), sent],
        settings=plain,
    )
    assert run.status == 200
    assert [m.to for m in mails(run)] == ["new@example.com"]
    change = run.transactions[-1].statements[0]
    assert change.params[3] == ""  # no token for the current address


def test_otp_new_user_gone_before_the_mail_is_500() -> None:
    run = post("/otp", {"email": EMAIL}, [found(), rand, tx()])
    assert (run.status, run.code) == (500, "unexpected_failure")


# --- totality: whatever the body, a 4xx or a served answer, never a 500 of ours -----------------

FIELDS = st.sampled_from(
    [
        "email",
        "phone",
        "token",
        "token_hash",
        "type",
        "data",
        "create_user",
        "new_email",
        "password",
        "redirect_to",
        "channel",
        "nonce",
    ]
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=12),
    st.sampled_from(
        [
            EMAIL,
            "x@y.z",
            "+15550100",
            "signup",
            "invite",
            "magiclink",
            "recovery",
            "email",
            "email_change",
            "email_change_new",
            "email_change_current",
            "sms",
            "123456",
            "http://localhost:3000/x",
        ]
    ),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def lenient(row_exists: bool) -> Answer:
    """A runtime that answers anything: a user row for every lookup if `row_exists`."""

    def answer(command: AuthCommand) -> object:
        if isinstance(command, SendMail):
            return None
        if not isinstance(command, RunTransaction):
            if isinstance(command, DrawRandom):
                return RANDOM[: command.size]
            return "h" if isinstance(command, HashPassword) else False
        results: list[DbResult] = []
        for statement in command.tx.statements:
            rows: tuple[tuple[bytes | None, ...], ...]
            if "exists(select 1 from auth.sessions" in statement.sql:  # the bearer's user
                rows = ((user(), b"t"),)
            elif statement.sql.startswith("select jsonb_build_object") and (
                row_exists or not command.tx.read_only
            ):
                rows = ((user(email_confirmed_at=None),),)
            elif "one_time_tokens o" in statement.sql and row_exists:
                rows = (
                    (user(confirmation_sent_at=SENT, recovery_sent_at=SENT), b"recovery_token"),
                )
            elif statement.sql.startswith(
                (
                    "with u as",
                    "select exists",
                    "select created_at >",
                    "select email_change_confirm_status",
                )
            ):
                rows = ((b"f",),) if "exists" in statement.sql or ">" in statement.sql else STORED
            else:
                rows = ()
            results.append(DbResult(rows=rows, command="OK"))
        return results

    return answer


@given(
    route=st.sampled_from(
        [
            ("POST", "/otp"),
            ("POST", "/magiclink"),
            ("POST", "/recover"),
            ("POST", "/resend"),
            ("POST", "/verify"),
            ("POST", "/invite"),
            ("POST", "/admin/generate_link"),
            ("PUT", "/user"),
        ]
    ),
    body=st.dictionaries(FIELDS, VALUES, max_size=5),
    row_exists=st.booleans(),
)
def test_mail_routes_answer_every_body(
    route: tuple[str, str], body: dict[str, object], row_exists: bool
) -> None:
    method, path = route
    token = service_token() if path in ("/invite", "/admin/generate_link") else access_token()
    request = make_request(method, path, body, token=token)
    flow = auth_flow(request, path, MAIL_SETTINGS, now=NOW)
    answer = lenient(row_exists)
    result: object = None
    try:
        for _ in range(50):
            result = answer(flow.send(result))
        raise AssertionError("flow did not finish")
    except StopIteration as stop:
        response = stop.value
    assert isinstance(response, Response)
    if response.status >= 500:
        assert json.loads(response.body)["message"] == "Unable to get SMS provider", response.body
