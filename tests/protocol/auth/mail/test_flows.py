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
    MailSettings,
    RunTransaction,
    SendMail,
)
from madbase.protocol.auth.flows import auth_flow
from madbase.protocol.auth.mail.messages import MailKind, otp_from_random
from madbase.protocol.auth.validate import otp_token_hash
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


def test_otp_undelivered_is_500_and_withdraws_the_token() -> None:
    before = user(recovery_sent_at=LONG_AGO)
    run = post("/otp", {"email": EMAIL}, [found(before), rand, rand, stored(), undelivered, tx()])
    assert (run.status, run.code) == (500, "unexpected_failure")
    assert run.body["message"] == "Error sending magic link email"
    stored_hash = run.transactions[1].statements[-2].params[0]
    withdraw = run.transactions[-1].statements[0]
    assert "set recovery_token = '', recovery_sent_at = $3::timestamptz" in withdraw.sql
    assert "and recovery_token = $2" in withdraw.sql  # only while it is still this token
    assert withdraw.params[:2] == (USER_ID, stored_hash)
    previous = withdraw.params[2]
    assert previous is not None
    assert previous.startswith(LONG_AGO[:10])  # the sent-at time before this request


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
        ({"type": "phone_change", "phone": "15550100"}, None),  # nobody changing to it
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


def signed_in(row: bytes | None = None) -> list[Answer]:
    """Answers after the token was found: random ids, the sign-in transaction."""
    return [rand, tx(last=((row or user(),),))]


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
