"""The provider table, the readers of each provider's user data, redirects and outbound helpers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.auth import PROVIDERS, ExternalSettings, ProviderConfig
from madbase.protocol.auth.external.providers import (
    ExternalUser,
    ProviderEmail,
    endpoints,
    read_id_token_user,
)
from madbase.protocol.auth.external.redirects import glob_pattern, is_redirect_allowed, referrer
from madbase.protocol.auth.outbound import (
    HttpFailure,
    HttpRequest,
    HttpResponse,
    decode_json,
    decode_token_response,
    fetch,
)
from madbase.protocol.auth.steps import AuthSettings
from madbase.protocol.http import Request
from tests.protocol.auth.test_flows import SETTINGS


def config(name: str, url: str = "") -> ProviderConfig:
    return ProviderConfig(name=name, client_ids=("id",), secret="s", url=url)


# --- endpoints ------------------------------------------------------------------------------------


def test_endpoints_default_and_under_a_base_url() -> None:
    github = endpoints(PROVIDERS["github"], config("github"))
    assert (github.authorize, github.token, github.userinfo, github.issuer) == (
        "https://github.com/login/oauth/authorize",
        "https://github.com/login/oauth/access_token",
        ("https://api.github.com/user", "https://api.github.com/user/emails"),
        "",
    )
    enterprise = endpoints(PROVIDERS["github"], config("github", "https://ghe.test/"))
    assert enterprise.authorize == "https://ghe.test/login/oauth/authorize"
    assert enterprise.userinfo == (
        "https://ghe.test/api/v3/user",
        "https://ghe.test/api/v3/user/emails",
    )
    google = endpoints(PROVIDERS["google"], config("google"))
    assert (google.token, google.issuer) == (
        "https://oauth2.googleapis.com/token",
        "https://accounts.google.com",
    )
    assert endpoints(PROVIDERS["google"], config("google", "http://127.0.0.1:9")).issuer == (
        "http://127.0.0.1:9"
    )
    keycloak = endpoints(PROVIDERS["keycloak"], config("keycloak", "https://kc.test/realms/r"))
    assert keycloak.issuer == "https://kc.test/realms/r"
    assert keycloak.authorize == "https://kc.test/realms/r/protocol/openid-connect/auth"
    azure = endpoints(PROVIDERS["azure"], config("azure", "https://login.test/tenant"))
    assert azure.issuer == "https://login.test/tenant/v2.0"
    assert endpoints(PROVIDERS["azure"], config("azure")).issuer == ""


def test_external_settings_lookup() -> None:
    settings = ExternalSettings(
        providers=(config("github"), ProviderConfig(name="google", client_ids=(), enabled=False))
    )
    assert settings.provider("github") == config("github")
    assert settings.provider("gitlab") is None
    assert (settings.enabled("github"), settings.enabled("google"), settings.enabled("x")) == (
        True,
        False,
        False,
    )
    assert ProviderConfig(name="x", client_ids=()).client_id == ""
    assert "s3cr3t" not in repr(ProviderConfig(name="x", client_ids=("a",), secret="s3cr3t"))


# --- user data ------------------------------------------------------------------------------------


def read(name: str, answers: list[Any], url: str | None = None) -> ExternalUser:
    spec = PROVIDERS[name]
    assert spec.read_user is not None
    first = url or endpoints(spec, config(name)).userinfo[0]
    return spec.read_user(answers, first)


def test_github_user() -> None:
    user = read(
        "github",
        [
            {"id": 7, "login": "octo", "name": "Octo Cat", "avatar_url": "https://a/7"},
            [
                {"email": "old@x.test", "primary": False, "verified": True},
                {"email": "octo@x.test", "primary": True, "verified": True},
                {"email": "", "primary": False, "verified": True},
                "garbage",
            ],
        ],
    )
    assert user.subject == "7"
    assert [e.address for e in user.emails] == ["old@x.test", "octo@x.test"]
    assert user.identity_data() == {
        "iss": "https://api.github.com",
        "sub": "7",
        "name": "Octo Cat",
        "preferred_username": "octo",
        "avatar_url": "https://a/7",
        "full_name": "Octo Cat",
        "provider_id": "7",
        "user_name": "octo",
        "email": "octo@x.test",
        "email_verified": True,
        "phone_verified": False,
    }


def test_github_without_emails_and_without_name() -> None:
    user = read("github", [{"id": 8, "login": "x"}, {"message": "no"}])
    assert user.emails == ()
    assert user.email is None
    data = user.identity_data()
    assert "name" not in data
    assert "email" not in data
    assert data["email_verified"] is False


def test_email_choice_is_primary_else_last() -> None:
    emails = (
        ProviderEmail(address="a@x.test", verified=True, primary=False),
        ProviderEmail(address="b@x.test", verified=False, primary=False),
    )
    assert ExternalUser(subject="1", emails=emails).email == emails[1]
    primary = (ProviderEmail(address="c@x.test", verified=True, primary=True), *emails)
    assert ExternalUser(subject="1", emails=primary).email == primary[0]


def test_gitlab_user() -> None:
    user = read(
        "gitlab",
        [
            {
                "id": 3,
                "name": "G",
                "avatar_url": "https://g/3",
                "email": "g@x.test",
                "confirmed_at": "2020",
            },
            [{"id": 1, "email": "second@x.test"}],
        ],
    )
    assert user.emails == (
        ProviderEmail(address="second@x.test", verified=False, primary=False),
        ProviderEmail(address="g@x.test", verified=True, primary=True),
    )
    assert user.claims["iss"] == "https://gitlab.com"
    unconfirmed = read("gitlab", [{"id": 3, "email": "g@x.test"}, []])
    assert unconfirmed.emails[0].verified is False
    assert read("gitlab", [{"id": 4}, "not a list"]).emails == ()


@pytest.mark.parametrize(
    ("profile", "picture"),
    [
        ({"avatar": "abc"}, "https://cdn.discordapp.com/avatars/42/abc.png"),
        ({"avatar": "a_abc"}, "https://cdn.discordapp.com/avatars/42/a_abc.gif"),
        ({"discriminator": "0007"}, "https://cdn.discordapp.com/embed/avatars/2.png"),
        ({}, "https://cdn.discordapp.com/embed/avatars/0.png"),
    ],
)
def test_discord_user(profile: dict[str, Any], picture: str) -> None:
    answer = {"id": "42", "username": "d", "email": "d@x.test", "verified": True, **profile}
    user = read("discord", [{**answer, "global_name": "Dee"}])
    assert user.claims["picture"] == picture
    assert user.claims["custom_claims"] == {"global_name": "Dee"}
    assert user.claims["iss"] == "https://discord.com/api"
    assert user.emails[0].verified is True
    assert read("discord", [{"id": "42"}]).emails == ()


def test_google_userinfo_and_keycloak() -> None:
    google = read(
        "google", [{"id": "g1", "email": "g@x.test", "verified_email": True, "name": "G"}]
    )
    assert (google.subject, google.emails[0].verified) == ("g1", True)
    assert google.claims["iss"] == "https://www.googleapis.com/userinfo/v2/me"
    assert read("google", [{"id": "g2"}]).emails == ()
    keycloak = read(
        "keycloak",
        [{"sub": "k1", "email": "k@x.test", "email_verified": "true", "name": "K"}],
        "https://kc.test/realms/r/protocol/openid-connect/userinfo",
    )
    assert keycloak.claims["iss"] == "https://kc.test/realms/r"
    assert keycloak.emails[0].verified is True
    assert read("keycloak", [{"sub": "k2"}], "https://kc.test/x").emails == ()


def test_id_token_readers() -> None:
    base = {"iss": "https://i.test", "sub": "s1", "email": "e@x.test", "name": "N"}
    google = read_id_token_user(
        "google", {**base, "email_verified": True, "hd": "x.test", "picture": "p"}
    )
    assert google.claims["custom_claims"] == {"hd": "x.test"}
    assert google.claims["avatar_url"] == "p"
    assert google.emails[0].verified is True
    azure = read_id_token_user(
        "azure",
        {**base, "xms_edov": True, "preferred_username": "n@x.test", "tid": "t", "roles": ["a"]},
    )
    assert azure.emails[0].verified is True
    assert azure.claims["custom_claims"] == {"roles": ["a"]}
    assert azure.claims["full_name"] == "N"
    apple = read_id_token_user("apple", {"iss": "https://appleid.apple.com", "sub": "a1"})
    assert apple.emails == (ProviderEmail(address="", verified=True, primary=True),)
    generic = read_id_token_user("keycloak", {**base, "phone_verified": True, "locale": "fr"})
    assert generic.claims["locale"] == "fr"
    assert generic.claims["phone_verified"] is True
    assert generic.identity_data()["phone_verified"] is True
    assert read_id_token_user("keycloak", {"sub": "x"}).emails == ()


# --- redirects ------------------------------------------------------------------------------------

SITE = "https://app.test"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://app.test/welcome?x=1", True),
        ("http://app.test/welcome", False),
        ("https://app.test:8443/", False),
        ("http://localhost:3000/cb", False),  # a name, not a loopback IP: allow list only
        ("http://127.0.0.1:9999/cb", True),
        ("http://[::1]:9/cb", True),
        ("http://10.0.0.1/cb", False),
        ("http://2130706433/", False),
        ("https://evil.test/", False),
        ("https://a.preview.test/x", True),
        ("https://a.b.preview.test/x", False),
        ("myapp://callback", True),
        ("https://ex_ample.test/", False),
        ("", False),
        ("http://[bad/", False),
    ],
)
def test_is_redirect_allowed(url: str, allowed: bool) -> None:
    allow = ("https://*.preview.test/**", "myapp://callback", "https://ex_ample.test/")
    assert is_redirect_allowed(url, site_url=SITE, allow_list=allow) is allowed


def test_localhost_site_accepts_any_loopback_port() -> None:
    site = "http://localhost:3000"
    assert is_redirect_allowed("http://localhost:5173/x", site_url=site, allow_list=())


def test_glob_alternatives_and_single_character() -> None:
    pattern = glob_pattern("https://{a,b}.test/?")
    assert pattern.fullmatch("https://a.test/x")
    assert pattern.fullmatch("https://b.test/y")
    assert not pattern.fullmatch("https://c.test/x")
    assert not pattern.fullmatch("https://a.test/xy")
    assert glob_pattern("x}{y").fullmatch("x})y") is None
    assert glob_pattern("{a").fullmatch("a")


@given(st.text(max_size=60), st.text(max_size=60))
def test_redirect_check_is_total(glob: str, url: str) -> None:
    assert isinstance(is_redirect_allowed(url, site_url=SITE, allow_list=(glob,)), bool)


def test_referrer_prefers_redirect_to_then_referer_then_site() -> None:
    settings: AuthSettings = SETTINGS
    site = settings.site_url

    def make(query: str, *headers: tuple[str, str]) -> Request:
        return Request(method="GET", target=f"/authorize?{query}", headers=headers)

    assert (
        referrer(make(f"redirect_to={site}/a", ("referer", f"{site}/b")), settings) == f"{site}/a"
    )
    assert referrer(make("redirect_to=https://evil.test", ("referer", f"{site}/b")), settings) == (
        f"{site}/b"
    )
    assert referrer(make("", ("redirect_to", f"{site}/h")), settings) == f"{site}/h"
    assert referrer(make(""), settings) == site


# --- outbound -------------------------------------------------------------------------------------


def test_decode_helpers() -> None:
    assert decode_json(b"[1]") == [1]
    assert decode_json(b"\xff") is None
    json_answer = HttpResponse(status=200, body=b'{"access_token": "t"}')
    assert decode_token_response(json_answer) == {"access_token": "t"}
    assert decode_token_response(HttpResponse(status=200, body=b"\xff\xfe")) is None
    assert decode_token_response(HttpResponse(status=200, body=b"no-equals-sign")) is None
    response = HttpResponse(status=200, headers=(("content-type", "x"),))
    assert (response.header("content-type"), response.header("nope")) == ("x", None)


def test_fetch_yields_the_request_and_returns_the_answer() -> None:
    request = HttpRequest(
        method="GET", url="https://x.test", headers=(("authorization", "Bearer t"),)
    )
    assert "Bearer t" not in repr(request)
    flow = fetch(request)
    assert next(flow) is request
    failure = HttpFailure(reason="timeout")
    with pytest.raises(StopIteration) as stopped:
        flow.send(failure)
    assert stopped.value.value is failure
