"""Mail values: OTPs, action links, templates, the redirect allow list and its globs."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from madbase.protocol.auth.mail.messages import (
    MailKind,
    MailSettings,
    action_link,
    compile_glob,
    otp_from_random,
    redirect_allowed,
    referrer,
    render_mail,
)
from madbase.protocol.http import Request

SITE = "http://localhost:3000"


@given(st.binary(min_size=8, max_size=8), st.integers(min_value=6, max_value=10))
def test_otp_is_digits_of_the_configured_length(random: bytes, length: int) -> None:
    otp = otp_from_random(random, length)
    assert len(otp) == length
    assert otp.isdigit()


def test_otp_length_outside_gotrue_range_is_refused() -> None:
    with pytest.raises(ValueError, match="otp_length"):
        MailSettings(otp_length=5)


@pytest.mark.parametrize(
    ("redirect", "encoded"),
    [
        ("http://localhost:3000", "http://localhost:3000"),
        ("myapp://cb/path", "myapp://cb/path"),
        ("http://a/?x=1&y=2", "http%3A%2F%2Fa%2F%3Fx%3D1%26y%3D2"),
        ("http://a/#frag", "http%3A%2F%2Fa%2F%23frag"),
        ("", ""),
    ],
)
def test_action_link_escapes_the_redirect_only_when_needed(redirect: str, encoded: str) -> None:
    link = action_link("http://api/auth/v1", "h a", "magiclink", redirect)
    assert link == f"http://api/auth/v1/verify?token=h+a&type=magiclink&redirect_to={encoded}"


@pytest.mark.parametrize(
    ("kind", "subject"),
    [
        (MailKind.CONFIRMATION, "Confirm your email address"),
        (MailKind.INVITE, "You've been invited"),
        (MailKind.MAGIC_LINK, "Your sign-in link"),
        (MailKind.RECOVERY, "Reset your password"),
        (MailKind.EMAIL_CHANGE, "Confirm your new email address"),
    ],
)
def test_templates_carry_link_and_code(kind: MailKind, subject: str) -> None:
    link = 'http://api/verify?token=a&type=x&redirect_to="><script>'
    mail = render_mail(kind, to="a@b.co", otp="123456", link=link, new_email="n@b.co")
    assert (mail.to, mail.subject, mail.kind) == ("a@b.co", subject, kind)
    assert link in mail.text
    assert "123456" in mail.text
    assert "123456" in mail.html
    assert "<script>" not in mail.html  # the link is escaped in HTML
    assert "&quot;&gt;&lt;script&gt;" in mail.html
    assert ("n@b.co" in mail.text) is (kind is MailKind.EMAIL_CHANGE)


def test_reauthentication_mail_has_the_code_in_the_subject_and_no_link() -> None:
    mail = render_mail(MailKind.REAUTHENTICATION, to="a@b.co", otp="654321")
    assert mail.subject == "654321 is your verification code"
    assert "http" not in mail.text
    assert "<strong>654321</strong>" in mail.html
    assert "654321" not in repr(mail)  # bodies stay out of logs


@pytest.mark.parametrize(
    ("pattern", "url", "matches"),
    [
        ("http://*.example.com", "http://app.example.com", True),
        ("http://*.example.com", "http://a.b.example.com", False),
        ("http://**.example.com", "http://a.b.example.com", True),
        ("http://localhost:3000/*", "http://localhost:3000/cb", True),
        ("http://localhost:3000/*", "http://localhost:3000/a/b", False),
        ("http://localhost:3000/**", "http://localhost:3000/a/b", True),
        ("http://host/?", "http://host/x", True),
        ("http://host/?", "http://host/.", False),
        ("http://host/[abc]", "http://host/b", True),
        ("http://host/[!abc]", "http://host/b", False),
        ("http://host/[!abc]", "http://host/d", True),
        ("http://host/[a-c]x", "http://host/bx", True),
        ("http://{a,b}.example", "http://b.example", True),
        ("http://{a,b}.example", "http://c.example", False),
        ("http://host/\\*", "http://host/*", True),
        ("http://host/\\*", "http://host/x", False),
        ("http://host/[oops", "http://host/[oops", True),
        ("http://host/}", "http://host/}", True),
        ("http://{a,b", "http://a", True),
        ("myapp://callback", "myapp://callback", True),
    ],
)
def test_glob_semantics(pattern: str, url: str, matches: bool) -> None:
    assert bool(compile_glob(pattern).fullmatch(url)) is matches


@given(st.text(max_size=40))
@example("[]")
@example("[\\]")
@example("{,}")
def test_glob_compiles_anything(pattern: str) -> None:
    assert isinstance(compile_glob(pattern), re.Pattern)


@given(st.text(alphabet="abc:/.-_~%=&", max_size=30))
def test_glob_without_wildcards_matches_itself(text: str) -> None:
    assert compile_glob(text).fullmatch(text)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://localhost:3000/welcome", True),
        ("http://localhost:5173/", True),  # loopback: any port (RFC 8252 §7.3)
        ("https://localhost:3000/", False),  # another scheme
        ("http://app.localhost:9/", False),  # another host
        ("http://127.0.0.1:9/x", True),  # a loopback IP
        ("http://10.0.0.1/x", False),
        ("http://2130706433/", False),  # decimal IP
        ("http://exa_mple.com/", False),  # not a regular host name
        ("https://app.example/cb#frag", True),  # allow list, fragment ignored
        ("https://app.example.evil/cb", False),
        ("http://localhost:99999/", False),  # bad port
        ("", False),
    ],
)
def test_redirect_allowed(url: str, allowed: bool) -> None:
    assert redirect_allowed(url, SITE, ("https://app.example/**",)) is allowed


def test_redirect_with_a_bad_site_url_is_refused() -> None:
    assert not redirect_allowed("http://localhost:3000/", "http://h:bad", ())


def test_redirect_on_a_site_with_a_subdomain_of_localhost() -> None:
    assert redirect_allowed("http://app.localhost:1/", "http://app.localhost:2", ())


def request(target: str, *headers: tuple[str, str]) -> Request:
    return Request(method="POST", target=target, headers=headers)


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        (request("/otp?redirect_to=http://localhost:3000/a"), "http://localhost:3000/a"),
        (request("/otp", ("redirect_to", "http://localhost:3000/h")), "http://localhost:3000/h"),
        (request("/otp?redirect_to=https://evil.example/"), SITE),
        (request("/otp", ("referer", "http://localhost:3000/ref")), "http://localhost:3000/ref"),
        (request("/otp", ("referer", "https://evil.example/")), SITE),
        (request("/otp"), SITE),
    ],
)
def test_referrer(req: Request, expected: str) -> None:
    assert referrer(req, SITE, ()) == expected
