"""OAuth sign-in against the embedded Postgres and a fake provider on loopback: /authorize,
/callback (implicit and PKCE), the pkce and id_token grants, account linking, identities."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import psycopg
import pytest

from madbase.config import DbSettings
from madbase.protocol.auth import (
    AuthLimits,
    ExternalSettings,
    HttpFailure,
    HttpRequest,
    HttpResponse,
    ProviderConfig,
)
from madbase.protocol.http import Dispatch, Request, Response, Service
from madbase.runtime.auth import AuthService
from madbase.runtime.db import Pool
from madbase.runtime.migrate import migrate
from tests.oauth_provider import CLIENT_ID, CLIENT_SECRET, FakeProvider, running_provider

pytestmark = pytest.mark.pg

SECRET = "super-secret-jwt-token-with-at-least-32-characters"
VERSION = (("x-supabase-api-version", "2024-01-01"),)
SITE = "http://127.0.0.1:3000"
APP = "http://127.0.0.1:3000/welcome"
CALLBACK = "http://127.0.0.1:54321/auth/v1/callback"
VERIFIER = "v" * 50
CHALLENGE = (
    base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


class OAuth:
    def __init__(
        self, service: AuthService, clock: Clock, conninfo: str, provider: FakeProvider
    ) -> None:
        self.service = service
        self.clock = clock
        self.conninfo = conninfo
        self.provider = provider

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> Response:
        headers: tuple[tuple[str, str], ...] = (*VERSION, ("content-type", content_type))
        if token is not None:
            headers += (("authorization", f"Bearer {token}"),)
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        request = Request(
            method=method, target="/auth/v1" + path, headers=headers, body=data, client="127.0.0.1"
        )
        subpath = path.split("?", 1)[0]
        return await self.service(
            request, Dispatch(service=Service.AUTH, subpath=subpath, role="anon")
        )

    async def consent(self, url: str) -> str:
        """Visit the provider's authorize URL; return the callback URL it redirects to."""
        async with httpx.AsyncClient(trust_env=False) as client:
            answer = await client.get(url, follow_redirects=False)
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        assert location.startswith(CALLBACK)
        return location

    async def sign_in(self, query: str, *, provider: str = "github") -> Response:
        """/authorize -> provider -> /callback; the callback's answer."""
        started = await self.call("GET", f"/authorize?provider={provider}&{query}")
        assert started.status == 302, started.body
        back = await self.consent(started.header("location") or "")
        return await self.call("GET", "/callback?" + urlsplit(back).query)

    def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


def body(response: Response) -> Any:
    return json.loads(response.body)


def fragment(response: Response) -> dict[str, str]:
    location = response.header("location") or ""
    return dict(parse_qsl(urlsplit(location).fragment, keep_blank_values=True))


def query(response: Response) -> dict[str, str]:
    location = response.header("location") or ""
    return dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with running_provider() as fake:
        yield fake


def external(provider: FakeProvider, **overrides: Any) -> ExternalSettings:
    configs = tuple(
        ProviderConfig(name=name, client_ids=(CLIENT_ID,), secret=CLIENT_SECRET, url=provider.url)
        for name in ("github", "google")
    )
    return ExternalSettings(providers=configs, redirect_uri=CALLBACK, **overrides)


async def make(database: str, provider: FakeProvider, **kwargs: Any) -> AsyncIterator[OAuth]:
    pool = Pool(database, DbSettings())
    service: AuthService | None = None
    try:
        await migrate(pool)
        clock = Clock()
        service = AuthService(
            pool=pool,
            secret=SECRET,
            limits=AuthLimits(),
            site_url=SITE,
            clock=clock,
            external=kwargs.pop("external", external(provider)),
            **kwargs,
        )
        yield OAuth(service, clock, database, provider)
    finally:
        if service is not None:
            await service.aclose()
        pool.close()


@pytest.fixture
async def oauth(database: str, provider: FakeProvider) -> AsyncIterator[OAuth]:
    async for made in make(database, provider):
        yield made


def claims(token: str) -> dict[str, Any]:
    value: dict[str, Any] = jwt.decode(
        token, SECRET, algorithms=["HS256"], audience="authenticated"
    )
    return value


# --- /authorize -----------------------------------------------------------------------------------


async def test_authorize_redirects_to_provider_with_state(oauth: OAuth) -> None:
    response = await oauth.call(
        "GET", f"/authorize?provider=GitHub&redirect_to={APP}&scopes=repo,gist&prompt=consent"
    )
    assert response.status == 302
    location = urlsplit(response.header("location") or "")
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        oauth.provider.url + "/login/oauth/authorize"
    )
    params = dict(parse_qsl(location.query))
    state = params.pop("state")
    assert params == {
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "user:email repo gist",
        "prompt": "consent",
        "redirect_to": APP,
    }
    rows = oauth.sql(
        "select provider_type, authentication_method, referrer, code_challenge, auth_code"
        " from auth.flow_state where id = %s",
        state,
    )
    assert rows == [("github", "oauth", APP, None, None)]


async def test_authorize_refuses_unknown_disabled_and_bad_pkce(oauth: OAuth) -> None:
    unknown = await oauth.call("GET", "/authorize?provider=myspace")
    assert (unknown.status, body(unknown)) == (
        400,
        {
            "code": "validation_failed",
            "message": "Unsupported provider: Provider myspace could not be found",
        },
    )
    disabled = await oauth.call("GET", "/authorize?provider=gitlab")
    assert body(disabled)["message"] == "Unsupported provider: provider is not enabled"
    pkce = await oauth.call(
        "GET", "/authorize?provider=github&code_challenge=short&code_challenge_method=s256"
    )
    assert (pkce.status, body(pkce)["code"]) == (400, "validation_failed")
    assert oauth.sql("select count(*) from auth.flow_state") == [(0,)]


# --- implicit flow --------------------------------------------------------------------------------


async def test_implicit_flow_creates_user_then_signs_it_in_again(oauth: OAuth) -> None:
    first = await oauth.sign_in(f"redirect_to={APP}")
    assert first.status == 302
    location = first.header("location") or ""
    assert location.startswith(APP + "#")
    tokens = fragment(first)
    assert tokens["token_type"] == "bearer"
    assert tokens["provider_token"].startswith("gho_")
    assert tokens["sb"] == ""
    assert int(tokens["expires_in"]) == 3600
    access = claims(tokens["access_token"])
    assert access["amr"][0]["method"] == "oauth"
    assert access["email"] == "alice@example.com"
    assert access["app_metadata"] == {"provider": "github", "providers": ["github"]}
    assert access["user_metadata"]["user_name"] == "alice"
    # The flow state is gone once used.
    assert oauth.sql("select count(*) from auth.flow_state") == [(0,)]
    user = body(await oauth.call("GET", "/user", token=tokens["access_token"]))
    (identity,) = user["identities"]
    assert identity["provider"] == "github"
    assert identity["id"] == "1001"
    assert identity["identity_data"]["email"] == "alice@example.com"
    assert identity["identity_data"]["email_verified"] is True
    assert identity["identity_data"]["iss"] == oauth.provider.url + "/api/v3"
    assert user["email_confirmed_at"]
    # What MadBase sent the provider: the code with our credentials, then the user API.
    token_call = next(r for r in oauth.provider.requests if r.path == "/login/oauth/access_token")
    assert token_call.form["redirect_uri"] == CALLBACK
    assert token_call.form["grant_type"] == "authorization_code"

    again = await oauth.sign_in(f"redirect_to={APP}")
    assert claims(fragment(again)["access_token"])["sub"] == user["id"]
    assert oauth.sql("select count(*) from auth.users") == [(1,)]
    assert oauth.sql("select count(*) from auth.identities") == [(1,)]
    actions = [r[0] for r in oauth.sql("select payload->>'action' from auth.audit_log_entries")]
    assert sorted(actions) == ["login", "user_signedup"]


async def test_redirect_not_allowed_falls_back_to_site_url(oauth: OAuth) -> None:
    response = await oauth.sign_in("redirect_to=https://evil.test/steal")
    assert (response.header("location") or "").startswith(SITE + "#access_token=")


async def test_verified_email_links_to_existing_password_user(oauth: OAuth) -> None:
    signup = await oauth.call(
        "POST", "/signup", {"email": "alice@example.com", "password": "s3cret-pass"}
    )
    user_id = body(signup)["user"]["id"]
    response = await oauth.sign_in(f"redirect_to={APP}")
    token = fragment(response)["access_token"]
    assert claims(token)["sub"] == user_id
    assert claims(token)["app_metadata"]["providers"] == ["email", "github"]
    user = body(await oauth.call("GET", "/user", token=token))
    assert sorted(i["provider"] for i in user["identities"]) == ["email", "github"]
    # The password still works: the account was confirmed already.
    login = await oauth.call(
        "POST",
        "/token?grant_type=password",
        {"email": "alice@example.com", "password": "s3cret-pass"},
    )
    assert login.status == 200


async def test_provider_error_and_bad_state_redirect_with_errors(oauth: OAuth) -> None:
    denied = await oauth.sign_in(f"redirect_to={APP}&login_hint=deny")
    assert denied.status == 302
    assert (denied.header("location") or "").startswith(APP + "?")
    assert query(denied) == {"error": "access_denied", "error_description": "The user said no"}
    assert fragment(denied) == {
        "error": "access_denied",
        "error_description": "The user said no",
        "sb": "",
    }
    missing = await oauth.call("GET", "/callback?code=x")
    assert missing.status == 303
    assert query(missing) == {
        "error": "invalid_request",
        "error_code": "bad_oauth_callback",
        "error_description": "OAuth state parameter missing",
    }
    unknown = await oauth.call("GET", "/callback?code=x&state=6c1b8f8e-0e49-4d52-9b48-2f8a2d1f3b11")
    assert query(unknown)["error_description"] == "OAuth state not found or expired"
    garbage = await oauth.call("GET", "/callback?code=x&state=not-a-uuid")
    assert query(garbage)["error_code"] == "bad_oauth_state"


async def test_stale_state_and_bad_code(oauth: OAuth) -> None:
    started = await oauth.call("GET", f"/authorize?provider=github&redirect_to={APP}")
    back = await oauth.consent(started.header("location") or "")
    oauth.clock.now += timedelta(seconds=301)
    stale = await oauth.call("GET", "/callback?" + urlsplit(back).query)
    assert (stale.status, query(stale)["error_description"]) == (303, "OAuth state has expired")
    oauth.clock.now -= timedelta(seconds=301)
    state = dict(parse_qsl(urlsplit(back).query))["state"]
    forged = await oauth.call("GET", f"/callback?code=forged&state={state}")
    assert forged.status == 302
    assert query(forged) == {
        "error": "server_error",
        "error_code": "unexpected_failure",
        "error_description": "Unable to exchange external code: forg",
    }


async def test_callback_accepts_a_posted_form(oauth: OAuth) -> None:
    started = await oauth.call("GET", f"/authorize?provider=github&redirect_to={APP}")
    back = await oauth.consent(started.header("location") or "")
    response = await oauth.call(
        "POST",
        "/callback",
        raw=urlsplit(back).query.encode(),
        content_type="application/x-www-form-urlencoded",
    )
    assert "access_token" in fragment(response)


# --- PKCE -----------------------------------------------------------------------------------------


async def test_pkce_flow_with_google_id_token(oauth: OAuth) -> None:
    response = await oauth.sign_in(
        f"redirect_to={APP}&code_challenge={CHALLENGE}&code_challenge_method=s256&login_hint=carol",
        provider="google",
    )
    location = response.header("location") or ""
    assert location.startswith(APP + "?code=")
    code = query(response)["code"]
    (row,) = oauth.sql("select user_id is not null, provider_access_token from auth.flow_state")
    assert row[0] is True
    assert row[1].startswith("gho_")
    # Google's user came from the verified id_token (keys via discovery), not the user info API.
    paths = [r.path for r in oauth.provider.requests]
    assert "/jwks" in paths
    assert "/userinfo/v2/me" not in paths

    wrong = await oauth.call(
        "POST", "/token?grant_type=pkce", {"auth_code": code, "code_verifier": "x" * 43}
    )
    assert (wrong.status, body(wrong)["code"]) == (400, "bad_code_verifier")
    session = await oauth.call(
        "POST", "/token?grant_type=pkce", {"auth_code": code, "code_verifier": VERIFIER}
    )
    assert session.status == 200, session.body
    data = body(session)
    assert data["provider_token"].startswith("gho_")
    assert data["provider_refresh_token"].startswith("refresh-")
    assert data["user"]["email"] == "carol@example.com"
    assert data["user"]["identities"][0]["identity_data"]["sub"] == "g-1003"
    assert claims(data["access_token"])["amr"][0]["method"] == "oauth"
    reused = await oauth.call(
        "POST", "/token?grant_type=pkce", {"auth_code": code, "code_verifier": VERIFIER}
    )
    assert (reused.status, body(reused)["code"]) == (404, "flow_state_not_found")


async def test_pkce_code_expires(oauth: OAuth) -> None:
    response = await oauth.sign_in(
        f"code_challenge={VERIFIER}&code_challenge_method=plain", provider="github"
    )
    code = query(response)["code"]
    assert (response.header("location") or "").startswith(SITE + "?code=")
    oauth.clock.now += timedelta(seconds=301)
    late = await oauth.call(
        "POST", "/token?grant_type=pkce", {"auth_code": code, "code_verifier": VERIFIER}
    )
    assert (late.status, body(late)["code"]) == (422, "flow_state_expired")


async def test_unverified_email_without_autoconfirm_is_refused(
    database: str, provider: FakeProvider
) -> None:
    async for strict in make(database, provider, autoconfirm=False):
        response = await strict.sign_in(f"redirect_to={APP}&login_hint=bob")
        assert query(response) == {
            "error": "access_denied",
            "error_code": "provider_email_needs_verification",
            "error_description": (
                "Unverified email with github. Verify the email with github in order to sign in"
            ),
        }
        assert strict.sql("select count(*) from auth.users") == [(0,)]


# --- id_token grant ---------------------------------------------------------------------------------


async def test_id_token_grant_signs_in_with_nonce(oauth: OAuth) -> None:
    now = oauth.clock.now.timestamp()
    token = oauth.provider.id_token(nonce="raw-nonce", now=now)
    response = await oauth.call(
        "POST",
        "/token?grant_type=id_token",
        {"provider": "google", "id_token": token, "nonce": "raw-nonce"},
    )
    assert response.status == 200, response.body
    data = body(response)
    assert data["user"]["email"] == "alice@example.com"
    assert data["user"]["app_metadata"]["provider"] == "google"
    assert data["user"]["user_metadata"]["full_name"] == "Alice Liddell"
    # The same user signs in again with an ES256 token; keys came from the cache.
    jwks_fetches = [r.path for r in oauth.provider.requests].count("/jwks")
    es = oauth.provider.id_token(alg="ES256", now=now)
    again = await oauth.call(
        "POST", "/token?grant_type=id_token", {"provider": "google", "id_token": es}
    )
    assert body(again)["user"]["id"] == data["user"]["id"]
    assert [r.path for r in oauth.provider.requests].count("/jwks") == jwks_fetches


@pytest.mark.parametrize(
    ("make_token", "nonce", "error"),
    [
        (lambda p, now: p.id_token(aud="someone-else", now=now), "", "invalid request"),
        (lambda p, now: p.id_token(now=now, expires_in=-10), "", "invalid request"),
        (
            lambda p, now: p.id_token(iss="https://accounts.google.com", now=now),
            "",
            "invalid request",
        ),
        (lambda p, now: p.id_token(nonce="one", now=now), "two", "invalid nonce"),
        (lambda p, now: p.id_token(nonce="one", now=now), "", "invalid request"),
        (lambda p, now: p.id_token(now=now)[:-4] + "AAAA", "", "invalid request"),
    ],
)
async def test_id_token_grant_refusals(
    oauth: OAuth, make_token: Any, nonce: str, error: str
) -> None:
    token = make_token(oauth.provider, oauth.clock.now.timestamp())
    response = await oauth.call(
        "POST",
        "/token?grant_type=id_token",
        {"provider": "google", "id_token": token, "nonce": nonce or None},
    )
    assert response.status == 400
    assert body(response)["error"] == error
    assert oauth.sql("select count(*) from auth.users") == [(0,)]


async def test_id_token_grant_provider_not_configured(oauth: OAuth) -> None:
    response = await oauth.call(
        "POST", "/token?grant_type=id_token", {"provider": "keycloak", "id_token": "x.y.z"}
    )
    assert (response.status, body(response)) == (
        400,
        {"code": "provider_disabled", "message": 'Provider (issuer "") is not enabled'},
    )
    other = await oauth.call(
        "POST", "/token?grant_type=id_token", {"provider": "myspace", "id_token": "x.y.z"}
    )
    assert body(other)["message"] == 'Custom OIDC provider "myspace" not allowed'


# --- identities -------------------------------------------------------------------------------------


async def test_identities_endpoints_need_manual_linking(oauth: OAuth) -> None:
    token = fragment(await oauth.sign_in(f"redirect_to={APP}"))["access_token"]
    link = await oauth.call(
        "GET", "/user/identities/authorize?provider=google&skip_http_redirect=true", token=token
    )
    assert (link.status, body(link)["code"]) == (404, "manual_linking_disabled")
    unlink = await oauth.call(
        "DELETE", "/user/identities/6c1b8f8e-0e49-4d52-9b48-2f8a2d1f3b11", token=token
    )
    assert (unlink.status, body(unlink)["code"]) == (404, "manual_linking_disabled")
    anonymous = await oauth.call("DELETE", "/user/identities/x")
    assert anonymous.status == 401


async def test_manual_linking_and_unlinking(database: str, provider: FakeProvider) -> None:
    async for linking in make(
        database, provider, external=external(provider, manual_linking_enabled=True)
    ):
        signup = await linking.call(
            "POST", "/signup", {"email": "someone@example.com", "password": "s3cret-pass"}
        )
        token = body(signup)["access_token"]
        only = body(signup)["user"]["identities"][0]["identity_id"]
        single = await linking.call("DELETE", f"/user/identities/{only}", token=token)
        assert (single.status, body(single)["code"]) == (422, "single_identity_not_deletable")

        link = await linking.call(
            "GET",
            f"/user/identities/authorize?provider=github&redirect_to={APP}&skip_http_redirect=true",
            token=token,
        )
        assert link.status == 200
        back = await linking.consent(body(link)["url"])
        done = await linking.call("GET", "/callback?" + urlsplit(back).query)
        linked_token = fragment(done)["access_token"]
        user = body(await linking.call("GET", "/user", token=linked_token))
        assert user["id"] == body(signup)["user"]["id"]
        assert user["email"] == "someone@example.com"
        github = next(i for i in user["identities"] if i["provider"] == "github")

        again = await linking.call(
            "GET", "/user/identities/authorize?provider=github&skip_http_redirect=true", token=token
        )
        back = await linking.consent(body(again)["url"])
        twice = await linking.call("GET", "/callback?" + urlsplit(back).query)
        assert query(twice)["error_code"] == "identity_already_exists"

        bad = await linking.call("DELETE", "/user/identities/nope", token=token)
        assert (bad.status, body(bad)["code"]) == (404, "validation_failed")
        missing = await linking.call(
            "DELETE", "/user/identities/6c1b8f8e-0e49-4d52-9b48-2f8a2d1f3b11", token=token
        )
        assert (missing.status, body(missing)["code"]) == (422, "identity_not_found")
        gone = await linking.call(
            "DELETE", f"/user/identities/{github['identity_id']}", token=token
        )
        assert (gone.status, body(gone)) == (200, {})
        after = body(await linking.call("GET", "/user", token=token))
        assert [i["provider"] for i in after["identities"]] == ["email"]
        assert after["app_metadata"]["providers"] == ["email"]
        assert after["email"] == "someone@example.com"


# --- the runtime's provider requests ------------------------------------------------------------------


async def test_provider_requests_fail_softly_time_out_and_cache(
    database: str, provider: FakeProvider
) -> None:
    async for made in make(database, provider, provider_timeout=0.5):
        service = made.service
        refused = await service._execute(HttpRequest(method="GET", url="http://127.0.0.1:1/x"))
        assert isinstance(refused, HttpFailure)
        assert refused.reason.startswith("ConnectError")
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            port = silent.getsockname()[1]
            slow = await service._execute(
                HttpRequest(method="GET", url=f"http://127.0.0.1:{port}/")
            )
        assert isinstance(slow, HttpFailure)
        keys = HttpRequest(method="GET", url=provider.url + "/jwks", cache_seconds=60)
        first = await service._execute(keys)
        second = await service._execute(keys)
        assert isinstance(first, HttpResponse)
        assert second == first
        assert [r.path for r in provider.requests].count("/jwks") == 1
        missing = HttpRequest(method="GET", url=provider.url + "/nope", cache_seconds=60)
        assert isinstance(await service._execute(missing), HttpResponse)
        assert isinstance(await service._execute(missing), HttpResponse)
        assert [r.path for r in provider.requests].count("/nope") == 2
        posted = await service._execute(
            HttpRequest(
                method="POST",
                url=provider.url + "/token",
                headers=(("content-type", "application/x-www-form-urlencoded"),),
                body=b"client_id=wrong",
            )
        )
        assert isinstance(posted, HttpResponse)
        assert posted.status == 401
        assert posted.header("content-type") == "application/json"
        huge = await service._execute(HttpRequest(method="GET", url=provider.url + "/huge"))
        assert isinstance(huge, HttpFailure)
        assert huge.reason.startswith("answer too large")
