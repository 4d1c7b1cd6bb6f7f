"""The mailing flows of `AuthService` against the embedded Postgres, mail captured in memory.

Signup without autoconfirm, /verify (POST with OTP or hash, GET link), /otp, /recover, /resend,
/reauthenticate with a secure password change, email change from both addresses, /invite and
/admin/generate_link, the send interval and single use of tokens.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import psycopg
import pytest

from madbase.config import DbSettings
from madbase.protocol.auth import AuthLimits, MailSettings, SendMail, SendSms
from madbase.protocol.auth.mail.messages import MailKind
from madbase.protocol.auth.validate import otp_token_hash
from madbase.protocol.http import Dispatch, Request, Response, Service
from madbase.runtime.auth import AuthService
from madbase.runtime.db import Pool
from madbase.runtime.mailer import MailerError
from madbase.runtime.migrate import migrate

pytestmark = pytest.mark.pg

SECRET = "super-secret-jwt-token-with-at-least-32-characters"
VERSION = (("x-supabase-api-version", "2024-01-01"),)
SITE = "http://localhost:3000"
API = "http://api.test/auth/v1"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


class Inbox:
    def __init__(self) -> None:
        self.mails: list[SendMail] = []
        self.fail = False

    async def send(self, message: SendMail) -> None:
        if self.fail:
            raise MailerError("relay down")
        self.mails.append(message)

    def last(self, to: str) -> SendMail:
        return [m for m in self.mails if m.to == to][-1]


def otp_of(mail: SendMail) -> str:
    found = re.search(r"\b(\d{6})\b", mail.text)
    assert found, mail.text
    return found.group(1)


def link_of(mail: SendMail) -> str:
    found = re.search(r"(http://\S+/verify\?\S+)", mail.text)
    assert found, mail.text
    return found.group(1)


class Auth:
    def __init__(self, service: AuthService, clock: Clock, inbox: Inbox, conninfo: str) -> None:
        self.service = service
        self.clock = clock
        self.inbox = inbox
        self.conninfo = conninfo

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> Response:
        headers: tuple[tuple[str, str], ...] = VERSION
        if token is not None:
            headers += (("authorization", f"Bearer {token}"),)
        request = Request(
            method=method,
            target="/auth/v1" + path,
            headers=(("content-type", "application/json"), *headers),
            body=b"" if body is None else json.dumps(body).encode(),
            client="127.0.0.1",
        )
        subpath = path.split("?", 1)[0]
        return await self.service(
            request, Dispatch(service=Service.AUTH, subpath=subpath, role="anon")
        )

    async def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        response = await self.call(method, path, body, **kw)
        assert response.status == 200, response.body
        value = json.loads(response.body)
        assert isinstance(value, dict)
        return value

    async def error(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, str]:
        response = await self.call(method, path, body, **kw)
        return response.status, json.loads(response.body)["code"]

    def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def later(self, seconds: int) -> None:
        self.clock.now += timedelta(seconds=seconds)


def service_key() -> str:
    return jwt.encode({"role": "service_role", "iss": "supabase"}, SECRET, algorithm="HS256")


def make_service(pool: Pool, clock: Clock, inbox: Inbox, **mail: Any) -> AuthService:
    return AuthService(
        pool=pool,
        secret=SECRET,
        limits=AuthLimits(anonymous_users_enabled=True),
        site_url=SITE,
        clock=clock,
        autoconfirm=mail.pop("autoconfirm", False),
        mail=MailSettings(external_url=API, redirect_allow_list=("http://app.example/**",), **mail),
        mailer=inbox,
    )


@pytest.fixture
async def auth(database: str) -> AsyncIterator[Auth]:
    pool = Pool(database, DbSettings())
    try:
        await migrate(pool)
        clock, inbox = Clock(), Inbox()
        yield Auth(make_service(pool, clock, inbox), clock, inbox, database)
    finally:
        pool.close()


async def signup(auth: Auth, email: str = "ann@example.com") -> dict[str, Any]:
    return await auth.ok("POST", "/signup", {"email": email, "password": "s3cret-pass"})


async def test_signup_mails_a_confirmation_and_verify_post_signs_in(auth: Auth) -> None:
    user = await signup(auth)
    assert "access_token" not in user
    assert "confirmation_sent_at" in user
    mail = auth.inbox.last("ann@example.com")
    assert (mail.kind, mail.subject) == (MailKind.CONFIRMATION, "Confirm your email address")
    otp = otp_of(mail)
    token_hash = otp_token_hash("ann@example.com", otp)
    assert link_of(mail) == f"{API}/verify?token={token_hash}&type=signup&redirect_to={SITE}"
    # Stored hashed, twice, never in clear.
    assert auth.sql("select confirmation_token from auth.users") == [(token_hash,)]
    assert auth.sql(
        "select token_type::text, token_hash, relates_to from auth.one_time_tokens"
    ) == [("confirmation_token", token_hash, "ann@example.com")]
    # Password sign-in waits for the confirmation.
    assert await auth.error(
        "POST",
        "/token?grant_type=password",
        {"email": "ann@example.com", "password": "s3cret-pass"},
    ) == (400, "email_not_confirmed")
    session = await auth.ok(
        "POST", "/verify", {"type": "signup", "email": "ann@example.com", "token": otp}
    )
    assert session["user"]["email_confirmed_at"]
    assert session["user"]["user_metadata"]["email_verified"] is True
    assert session["user"]["identities"][0]["identity_data"]["email_verified"] is True
    claims = jwt.decode(
        session["access_token"], SECRET, algorithms=["HS256"], audience="authenticated"
    )
    assert claims["amr"][0]["method"] == "otp"
    # Single use.
    assert await auth.error(
        "POST", "/verify", {"type": "signup", "email": "ann@example.com", "token": otp}
    ) == (403, "otp_expired")
    assert auth.sql("select count(*) from auth.one_time_tokens") == [(0,)]
    await auth.ok(
        "POST",
        "/token?grant_type=password",
        {"email": "ann@example.com", "password": "s3cret-pass"},
    )


async def test_signup_again_resends_within_the_interval_only(auth: Auth) -> None:
    await signup(auth)
    status, code = await auth.error(
        "POST", "/signup", {"email": "ann@example.com", "password": "s3cret-pass"}
    )
    assert (status, code) == (429, "over_email_send_rate_limit")
    response = await auth.call("POST", "/resend", {"type": "signup", "email": "ann@example.com"})
    assert response.status == 429
    assert json.loads(response.body)["message"].startswith(
        "For security purposes, you can only request this after "
    )
    auth.later(61)
    await auth.ok("POST", "/resend", {"type": "signup", "email": "ann@example.com"})
    assert len(auth.inbox.mails) == 2
    # The first token was replaced by the second.
    first, second = (otp_of(m) for m in auth.inbox.mails)
    if first != second:
        assert await auth.error(
            "POST", "/verify", {"type": "email", "email": "ann@example.com", "token": first}
        ) == (403, "otp_expired")
    await auth.ok("POST", "/verify", {"type": "email", "email": "ann@example.com", "token": second})
    # Confirmed: signing up again answers a made-up user and mails nothing.
    fake = await signup(auth)
    assert fake["role"] == ""
    assert fake["identities"] == []
    assert len(auth.inbox.mails) == 2


async def test_verify_get_redirects_with_the_session_in_the_fragment(auth: Auth) -> None:
    await signup(auth)
    token_hash = otp_token_hash("ann@example.com", otp_of(auth.inbox.last("ann@example.com")))
    response = await auth.call(
        "GET", f"/verify?token={token_hash}&type=signup&redirect_to=http://app.example/welcome"
    )
    assert response.status == 303
    location = response.header("location")
    assert location is not None
    base, _, fragment = location.partition("#")
    assert base == "http://app.example/welcome"
    values = parse_qs(fragment, keep_blank_values=True)
    assert values["token_type"] == ["bearer"]
    assert values["type"] == ["signup"]
    assert values["expires_in"] == ["3600"]
    assert values["sb"] == [""]
    me = await auth.ok("GET", "/user", token=values["access_token"][0])
    assert me["email"] == "ann@example.com"
    # Followed twice: the error rides in the fragment; a redirect off the allow list -> site URL.
    again = await auth.call(
        "GET", f"/verify?token={token_hash}&type=signup&redirect_to=https://evil.example/"
    )
    assert again.status == 303
    location = again.header("location") or ""
    assert location.startswith(SITE + "#")
    error = parse_qs(urlsplit(location).fragment)
    assert error["error"] == ["access_denied"]
    assert error["error_code"] == ["otp_expired"]
    assert error["error_description"] == ["Email link is invalid or has expired"]


async def test_expired_links_and_bad_parameters(auth: Auth) -> None:
    await signup(auth)
    otp = otp_of(auth.inbox.last("ann@example.com"))
    assert await auth.error("GET", "/verify?type=signup") == (400, "validation_failed")
    auth.later(86401)
    assert await auth.error(
        "POST", "/verify", {"type": "signup", "email": "ann@example.com", "token": otp}
    ) == (403, "otp_expired")


async def test_otp_magic_link_for_a_confirmed_user(auth: Auth) -> None:
    await signup(auth)
    await auth.ok(
        "POST",
        "/verify",
        {
            "type": "signup",
            "email": "ann@example.com",
            "token": otp_of(auth.inbox.last("ann@example.com")),
        },
    )
    await auth.ok("POST", "/otp", {"email": "ann@example.com", "create_user": False})
    mail = auth.inbox.last("ann@example.com")
    assert mail.kind is MailKind.MAGIC_LINK
    assert "type=magiclink" in link_of(mail)
    session = await auth.ok(
        "POST", "/verify", {"type": "email", "email": "ann@example.com", "token": otp_of(mail)}
    )
    assert session["user"]["email"] == "ann@example.com"
    assert await auth.error("POST", "/otp", {"email": "ann@example.com"}) == (
        429,
        "over_email_send_rate_limit",
    )


async def test_otp_unknown_addresses(auth: Auth) -> None:
    assert await auth.error("POST", "/otp", {"email": "new@example.com", "create_user": False}) == (
        422,
        "otp_disabled",
    )
    assert auth.inbox.mails == []
    # create_user (the default) without autoconfirm: signed up and sent the confirmation.
    await auth.ok("POST", "/otp", {"email": "new@example.com", "data": {"plan": "pro"}})
    mail = auth.inbox.last("new@example.com")
    assert mail.kind is MailKind.CONFIRMATION
    session = await auth.ok(
        "POST", "/verify", {"type": "email", "email": "new@example.com", "token": otp_of(mail)}
    )
    assert session["user"]["user_metadata"]["plan"] == "pro"
    assert session["user"]["app_metadata"]["providers"] == ["email"]
    assert await auth.error("POST", "/otp", {"phone": "+15550100"}) == (
        400,
        "phone_provider_disabled",
    )


async def test_recover_and_set_a_new_password(auth: Auth) -> None:
    await signup(auth)
    auth.later(61)
    # Unknown address: the same answer, no mail.
    assert await auth.ok("POST", "/recover", {"email": "nobody@example.com"}) == {}
    assert await auth.ok("POST", "/recover", {"email": "ann@example.com"}) == {}
    mail = auth.inbox.last("ann@example.com")
    assert (mail.kind, mail.subject) == (MailKind.RECOVERY, "Reset your password")
    token_hash = parse_qs(urlsplit(link_of(mail)).query)["token"][0]
    session = await auth.ok("POST", "/verify", {"type": "recovery", "token_hash": token_hash})
    # Recovery confirms an unconfirmed address too.
    assert session["user"]["email_confirmed_at"]
    await auth.ok("PUT", "/user", {"password": "brand-new-pass"}, token=session["access_token"])
    await auth.ok(
        "POST",
        "/token?grant_type=password",
        {"email": "ann@example.com", "password": "brand-new-pass"},
    )


async def test_an_email_change_whose_mails_fail_is_dropped(auth: Auth) -> None:
    await signup(auth)
    otp = otp_of(auth.inbox.last("ann@example.com"))
    session = await auth.ok(
        "POST", "/verify", {"type": "signup", "email": "ann@example.com", "token": otp}
    )
    token = session["access_token"]
    auth.inbox.fail = True
    change = {"email": "ann@new.example"}
    assert await auth.error("PUT", "/user", change, token=token) == (500, "unexpected_failure")
    assert auth.sql(
        "select email_change, email_change_token_new, email_change_token_current,"
        " email_change_sent_at from auth.users"
    ) == [("", "", "", None)]
    assert auth.sql(
        "select count(*) from auth.one_time_tokens where token_type::text like 'email_change%%'"
    ) == [(0,)]
    auth.inbox.fail = False  # asked again at once: no send interval in the way
    user = await auth.ok("PUT", "/user", change, token=token)
    assert user["new_email"] == "ann@new.example"
    assert auth.inbox.last("ann@new.example").kind is MailKind.EMAIL_CHANGE


async def test_secure_email_change_needs_both_links(auth: Auth) -> None:
    await signup(auth)
    session = await auth.ok(
        "POST",
        "/verify",
        {
            "type": "signup",
            "email": "ann@example.com",
            "token": otp_of(auth.inbox.last("ann@example.com")),
        },
    )
    token = session["access_token"]
    await signup(auth, "taken@example.com")
    assert await auth.error("PUT", "/user", {"email": "taken@example.com"}, token=token) == (
        422,
        "email_exists",
    )
    user = await auth.ok("PUT", "/user", {"email": "ann@new.example"}, token=token)
    assert user["new_email"] == "ann@new.example"
    assert user["email"] == "ann@example.com"
    to_new, to_current = auth.inbox.last("ann@new.example"), auth.inbox.last("ann@example.com")
    assert to_new.kind is to_current.kind is MailKind.EMAIL_CHANGE
    half = await auth.ok(
        "POST",
        "/verify",
        {"type": "email_change", "email": "ann@example.com", "token": otp_of(to_current)},
    )
    assert half == {
        "msg": "Confirmation link accepted. Please proceed to confirm link sent to the other email",
        "code": "200",
    }
    new_hash = parse_qs(urlsplit(link_of(to_new)).query)["token"][0]
    done = await auth.ok("POST", "/verify", {"type": "email_change", "token_hash": new_hash})
    assert done["user"]["email"] == "ann@new.example"
    assert "new_email" not in done["user"]
    assert done["user"]["identities"][0]["identity_data"]["email"] == "ann@new.example"
    # Resend with nothing pending sends nothing.
    count = len(auth.inbox.mails)
    await auth.ok("POST", "/resend", {"type": "email_change", "email": "ann@new.example"})
    assert len(auth.inbox.mails) == count


async def test_reauthentication_nonce_for_a_secure_password_change(database: str) -> None:
    pool = Pool(database, DbSettings())
    try:
        await migrate(pool)
        clock, inbox = Clock(), Inbox()
        auth = Auth(
            make_service(
                pool, clock, inbox, autoconfirm=True, password_require_reauthentication=True
            ),
            clock,
            inbox,
            database,
        )
        session = await signup(auth)
        token = session["access_token"]
        # A fresh session may change the password without a nonce (user.go: 24 hours).
        await auth.ok("PUT", "/user", {"password": "second-pass"}, token=token)
        # A day later the same session's token (re-signed, as a refresh would) needs a nonce.
        auth.later(25 * 3600)
        claims = jwt.decode(
            token, SECRET, algorithms=["HS256"], options={"verify_signature": False}
        )
        stamp = int(clock.now.timestamp())
        token = jwt.encode({**claims, "iat": stamp, "exp": stamp + 60}, SECRET, algorithm="HS256")
        assert await auth.error("PUT", "/user", {"password": "third-pass"}, token=token) == (
            400,
            "reauthentication_needed",
        )
        assert await auth.ok("GET", "/reauthenticate", token=token) == {}
        mail = inbox.last("ann@example.com")
        assert mail.kind is MailKind.REAUTHENTICATION
        nonce = otp_of(mail)
        assert mail.subject == f"{nonce} is your verification code"
        wrong = "000000" if nonce != "000000" else "111111"
        assert await auth.error(
            "PUT", "/user", {"password": "third-pass", "nonce": wrong}, token=token
        ) == (422, "reauthentication_not_valid")
        await auth.ok("PUT", "/user", {"password": "third-pass", "nonce": nonce}, token=token)
    finally:
        pool.close()


async def test_invite_and_generate_link_need_the_service_role(auth: Auth) -> None:
    await signup(auth, "user@example.com")
    user_token = None
    assert await auth.error("POST", "/invite", {"email": "inv@example.com"}) == (
        401,
        "no_authorization",
    )
    anon = jwt.encode({"role": "anon"}, SECRET, algorithm="HS256")
    assert await auth.error("POST", "/invite", {"email": "inv@example.com"}, token=anon) == (
        403,
        "not_admin",
    )
    del user_token
    invited = await auth.ok(
        "POST", "/invite", {"email": "inv@example.com", "data": {"team": "a"}}, token=service_key()
    )
    assert invited["invited_at"]
    mail = auth.inbox.last("inv@example.com")
    assert (mail.kind, mail.subject) == (MailKind.INVITE, "You've been invited")
    session = await auth.ok(
        "POST", "/verify", {"type": "invite", "email": "inv@example.com", "token": otp_of(mail)}
    )
    assert session["user"]["user_metadata"]["team"] == "a"
    assert await auth.error(
        "POST", "/invite", {"email": "inv@example.com"}, token=service_key()
    ) == (422, "email_exists")

    link = await auth.ok(
        "POST",
        "/admin/generate_link?redirect_to=http://app.example/after",
        {"type": "magiclink", "email": "fresh@example.com"},
        token=service_key(),
    )
    assert link["verification_type"] == "signup"  # unknown address: signed up
    assert link["email"] == "fresh@example.com"
    assert link["redirect_to"] == "http://app.example/after"
    assert link["hashed_token"] == otp_token_hash("fresh@example.com", link["email_otp"])
    assert link["action_link"] == (
        f"{API}/verify?token={link['hashed_token']}&type=signup"
        "&redirect_to=http://app.example/after"
    )
    verified = await auth.ok(
        "POST", "/verify", {"type": "signup", "token_hash": link["hashed_token"]}
    )
    assert verified["user"]["email_confirmed_at"]
    recovery = await auth.ok(
        "POST",
        "/admin/generate_link",
        {"type": "recovery", "email": "fresh@example.com"},
        token=service_key(),
    )
    assert recovery["redirect_to"] == SITE
    await auth.ok("POST", "/verify", {"type": "recovery", "token_hash": recovery["hashed_token"]})
    assert await auth.error(
        "POST",
        "/admin/generate_link",
        {"type": "recovery", "email": "ghost@example.com"},
        token=service_key(),
    ) == (404, "user_not_found")
    change = await auth.ok(
        "POST",
        "/admin/generate_link",
        {"type": "email_change_new", "email": "fresh@example.com", "new_email": "f2@example.com"},
        token=service_key(),
    )
    assert change["new_email"] == "f2@example.com"
    link_hash = parse_qs(urlsplit(change["action_link"]).query)["token"][0]
    assert link_hash == otp_token_hash("f2@example.com", change["email_otp"])
    # Secure email change without autoconfirm: this link is only the first of two halves.
    half = await auth.ok("POST", "/verify", {"type": "email_change", "token_hash": link_hash})
    assert half["code"] == "200"
    assert await auth.error(
        "POST",
        "/admin/generate_link",
        {"type": "bogus", "email": "f2@example.com"},
        token=service_key(),
    ) == (400, "validation_failed")
    # generate_link mails nothing.
    assert [m.to for m in auth.inbox.mails].count("fresh@example.com") == 0


async def test_delivery_failure_is_a_500_and_leaves_no_user(auth: Auth) -> None:
    signup = {"email": "ann@example.com", "password": "s3cret-pass"}
    auth.inbox.fail = True
    assert await auth.error("POST", "/signup", signup) == (500, "unexpected_failure")
    # As GoTrue's one transaction: no user, identity, token or audit entry is left behind ...
    for table in ("users", "identities", "one_time_tokens", "audit_log_entries"):
        assert auth.sql(f"select count(*) from auth.{table}") == [(0,)], table
    # ... so signing up again, once mail works, is a fresh sign-up mailed at once (no 429).
    auth.inbox.fail = False
    again = await auth.call("POST", "/signup", signup)
    assert again.status == 200
    assert auth.inbox.last("ann@example.com").kind is MailKind.CONFIRMATION


async def test_magic_link_sign_up_whose_mail_fails_leaves_no_user(auth: Auth) -> None:
    auth.inbox.fail = True
    fresh = {"email": "new@example.com"}
    assert await auth.error("POST", "/otp", fresh) == (500, "unexpected_failure")
    assert auth.sql("select count(*) from auth.users") == [(0,)]
    # A user who was there before stays, failed mail or not.
    auth.inbox.fail = False
    signup = {"email": "ann@example.com", "password": "s3cret-pass"}
    assert (await auth.call("POST", "/signup", signup)).status == 200
    auth.later(120)  # past the resend interval
    auth.inbox.fail = True
    assert await auth.error("POST", "/otp", {"email": "ann@example.com"}) == (
        500,
        "unexpected_failure",
    )
    assert auth.sql("select email from auth.users") == [("ann@example.com",)]


async def test_a_recovery_mail_that_failed_can_be_asked_for_again_at_once(auth: Auth) -> None:
    signup = {"email": "ann@example.com", "password": "s3cret-pass"}
    assert (await auth.call("POST", "/signup", signup)).status == 200
    auth.later(120)  # past the confirmation's send interval
    auth.inbox.fail = True
    recover = {"email": "ann@example.com"}
    assert await auth.error("POST", "/recover", recover) == (500, "unexpected_failure")
    # The undelivered token was withdrawn: not stored, and no send interval started.
    assert auth.sql("select recovery_token, recovery_sent_at from auth.users") == [("", None)]
    assert auth.sql(
        "select count(*) from auth.one_time_tokens where token_type = 'recovery_token'"
    ) == [(0,)]
    auth.inbox.fail = False
    assert (await auth.call("POST", "/recover", recover)).status == 200
    assert auth.inbox.last("ann@example.com").kind is MailKind.RECOVERY


async def test_without_a_mailer_mails_fail_as_500(database: str) -> None:
    pool = Pool(database, DbSettings())
    try:
        await migrate(pool)
        service = AuthService(
            pool=pool, secret=SECRET, limits=AuthLimits(), site_url=SITE, autoconfirm=False
        )
        auth = Auth(service, Clock(), Inbox(), database)
        response = await auth.call(
            "POST", "/signup", {"email": "ann@example.com", "password": "s3cret-pass"}
        )
        assert response.status == 500
        assert json.loads(response.body)["message"] == "Error sending confirmation email"
    finally:
        pool.close()


class Phone:
    def __init__(self) -> None:
        self.texts: list[SendSms] = []

    async def send_sms(self, message: SendSms) -> str:
        self.texts.append(message)
        return f"msg-{len(self.texts)}"


@contextlib.asynccontextmanager
async def texting(database: str) -> AsyncIterator[tuple[Auth, Phone]]:
    """An auth service with phone sign-in, no autoconfirm, texts kept by `Phone`."""
    pool = Pool(database, DbSettings())
    try:
        await migrate(pool)
        clock, inbox, phone = Clock(), Inbox(), Phone()
        service = AuthService(
            pool=pool,
            secret=SECRET,
            limits=AuthLimits(phone_enabled=True),
            site_url=SITE,
            clock=clock,
            autoconfirm=False,
            mail=MailSettings(external_url=API, sms_enabled=True),
            mailer=inbox,
            sms=phone,
        )
        yield Auth(service, clock, inbox, database), phone
    finally:
        pool.close()


async def test_phone_otp_sign_in_by_sms(database: str) -> None:
    async with texting(database) as (auth, phone):
        # A new number without autoconfirm: signed up, texted a code, answered {}.
        assert await auth.ok("POST", "/otp", {"phone": "+1 555 0100"}) == {}
        (text,) = phone.texts
        assert text.to == "15550100"
        code = text.text.removeprefix("Your code is ")
        assert await auth.error("POST", "/otp", {"phone": "15550100"}) == (
            429,
            "over_sms_send_rate_limit",
        )
        session = await auth.ok(
            "POST", "/verify", {"type": "sms", "phone": "+15550100", "token": code}
        )
        assert session["user"]["phone"] == "15550100"
        assert session["user"]["phone_confirmed_at"]
        assert session["user"]["identities"][0]["identity_data"]["phone_verified"] is True
        assert session["user"]["app_metadata"]["providers"] == ["phone"]
        # Confirmed now: the next code comes with a message id, and expires after a minute.
        auth.later(61)
        assert await auth.ok("POST", "/otp", {"phone": "15550100"}) == {"message_id": "msg-2"}
        code = phone.texts[-1].text.removeprefix("Your code is ")
        auth.later(61)
        assert await auth.error(
            "POST", "/verify", {"type": "sms", "phone": "15550100", "token": code}
        ) == (403, "otp_expired")


async def test_phone_change_by_texted_code(database: str) -> None:
    async with texting(database) as (auth, phone):
        await auth.ok("POST", "/otp", {"phone": "15550100"})
        code = phone.texts[-1].text.removeprefix("Your code is ")
        session = await auth.ok(
            "POST", "/verify", {"type": "sms", "phone": "15550100", "token": code}
        )
        token = session["access_token"]
        await auth.ok("POST", "/otp", {"phone": "15550199"})  # another user's number
        # Taken by someone else: refused, nothing texted.
        texted = len(phone.texts)
        assert await auth.error("PUT", "/user", {"phone": "15550199"}, token=token) == (
            422,
            "phone_exists",
        )
        assert len(phone.texts) == texted
        # A free number: texted a code; the user shows it as new_phone until confirmed.
        pending = await auth.ok("PUT", "/user", {"phone": "+1 555 0177"}, token=token)
        assert (pending["phone"], pending["new_phone"]) == ("15550100", "15550177")
        to_new = phone.texts[-1]
        assert (to_new.to, to_new.kind) == ("15550177", "phone_change")
        first_code = to_new.text.removeprefix("Your code is ")
        # Resent on request (after the send interval): the newest code is the one that counts.
        assert await auth.error(
            "POST", "/resend", {"type": "phone_change", "phone": "15550177"}
        ) == (429, "over_sms_send_rate_limit")
        auth.later(61)
        resent = await auth.ok("POST", "/resend", {"type": "phone_change", "phone": "15550177"})
        assert resent["message_id"] == f"msg-{len(phone.texts)}"
        code = phone.texts[-1].text.removeprefix("Your code is ")
        if code != first_code:
            assert await auth.error(
                "POST",
                "/verify",
                {"type": "phone_change", "phone": "15550177", "token": first_code},
            ) == (403, "otp_expired")
        # A phone_change code is typed with the new number, not the old one.
        assert await auth.error(
            "POST", "/verify", {"type": "phone_change", "phone": "15550100", "token": code}
        ) == (403, "otp_expired")
        changed = await auth.ok(
            "POST", "/verify", {"type": "phone_change", "phone": "15550177", "token": code}
        )
        assert changed["user"]["phone"] == "15550177"
        assert "new_phone" not in changed["user"]
        identities = changed["user"]["identities"]
        assert [i["identity_data"]["phone"] for i in identities] == ["15550177"]
        assert auth.sql(
            "select phone, phone_change, phone_change_token from auth.users"
            " where phone = '15550177'"
        ) == [("15550177", "", "")]


async def test_phone_without_an_sms_sender_is_sms_send_failed(database: str) -> None:
    pool = Pool(database, DbSettings())
    try:
        await migrate(pool)
        service = AuthService(
            pool=pool,
            secret=SECRET,
            limits=AuthLimits(phone_enabled=True),
            site_url=SITE,
            mail=MailSettings(sms_enabled=True),
        )
        auth = Auth(service, Clock(), Inbox(), database)
        assert await auth.error("POST", "/otp", {"phone": "15550100"}) == (422, "sms_send_failed")
    finally:
        pool.close()
