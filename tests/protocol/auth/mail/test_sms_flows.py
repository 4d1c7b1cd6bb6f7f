"""Phone OTP by SMS driven by hand: /otp, /verify type sms, /resend sms, phone signup."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest

from madbase.protocol.auth import AuthCommand, MailSettings, SendSms, SmsNotSent
from madbase.protocol.auth.validate import otp_token_hash
from tests.protocol.auth.mail.test_flows import (
    API,
    LONG_AGO,
    MAIL_SETTINGS,
    SENT,
    STAMP_NOW,
    found,
    post,
    signed_in,
    stored,
    the_otp,
    token_row,
    user,
)
from tests.protocol.auth.test_flows import Answer, hashed, rand, tx

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


def test_sms_otp_new_number_whose_text_fails_deletes_it_again() -> None:
    fresh = user(email=None, phone=PHONE)
    run = post(
        "/otp",
        {"phone": PHONE},
        [found(), rand, tx(last=((fresh,),)), rand, stored(fresh), not_texted, tx(), tx()],
        settings=attrs.evolve(TEXTING, autoconfirm=False),
    )
    assert (run.status, run.code) == (422, "sms_send_failed")
    written, undo = run.transactions[1], run.transactions[-1]
    assert written.statements[0].sql.startswith("insert into auth.users")
    assert undo.statements[0].sql.startswith("delete from auth.users")
    (deleted,) = undo.statements[0].params
    assert deleted in written.statements[0].params  # the user this request inserted


def test_sms_otp_pending_number_whose_text_fails_is_kept() -> None:
    pending = user(email=None, phone=PHONE)
    run = post(
        "/otp",
        {"phone": PHONE},
        [found(pending), rand, tx(last=((pending,),)), rand, stored(pending), not_texted, tx()],
        settings=attrs.evolve(TEXTING, autoconfirm=False),
    )
    assert (run.status, run.code) == (422, "sms_send_failed")
    assert not any("delete from auth.users" in st.sql for st in run.statements)
    assert "set confirmation_token = ''" in run.statements[-1].sql  # only the token withdrawn


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
                tx(),  # the token withdrawn
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


def test_signup_by_phone_whose_text_fails_deletes_the_new_user() -> None:
    row = user(email=None, phone=PHONE, email_confirmed_at=None)
    run = post(
        "/signup",
        {"phone": PHONE, "password": "s3cret-pass"},
        [rand, hashed(), tx(last=((row,),)), rand, stored(row), not_texted, tx(), tx()],
        settings=attrs.evolve(TEXTING, autoconfirm=False),
    )
    assert (run.status, run.code) == (422, "sms_send_failed")
    signup, undo = run.transactions[0], run.transactions[-1]
    user_id, audit_id = json.loads(row)["user"]["id"], signup.statements[-2].params[1]
    assert [(st.sql.split(" where")[0], st.params) for st in undo.statements] == [
        ("delete from auth.users", (user_id,)),
        ("delete from auth.audit_log_entries", (audit_id,)),
    ]
