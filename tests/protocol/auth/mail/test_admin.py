"""POST /invite and POST /admin/generate_link driven by hand (see test_mail_flows.py)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import attrs
import pytest

from madbase.protocol.auth import MailSettings
from madbase.protocol.auth.mail.messages import MailKind
from madbase.protocol.auth.validate import otp_token_hash
from tests.protocol.auth.mail.test_flows import (
    API,
    EMAIL,
    MAIL_SETTINGS,
    found,
    mails,
    post,
    sent,
    service_token,
    stored,
    user,
)
from tests.protocol.auth.test_flows import USER_ID, Answer, hashed, rand, tx

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
