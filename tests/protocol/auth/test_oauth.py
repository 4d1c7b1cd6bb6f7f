"""OAuth flows driven by hand: /authorize, /callback, the pkce and id_token grants, linking and
identities, every command answered by a fake (rows shaped as the runtime tests see them)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import attrs
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.auth import (
    AuthCommand,
    DrawRandom,
    ExternalSettings,
    HttpFailure,
    HttpRequest,
    HttpResponse,
    ProviderConfig,
    RunTransaction,
    auth_flow,
)
from madbase.protocol.auth.idtoken import unverified_issuer, verify_id_token
from madbase.protocol.auth.pkce import (
    FlowStateRow,
    check_flow_state,
    decode_flow_state,
    insert_flow_state,
    issue_auth_code,
    new_flow_state,
    pkce_redirect_url,
)
from madbase.protocol.auth.validate import CodeChallengeMethod, PkceChallenge
from madbase.protocol.http import Request
from madbase.protocol.sql import DbError, DbResult
from tests.protocol.auth.test_flows import (
    NOW,
    RANDOM,
    SETTINGS,
    STAMP,
    USER_ID,
    Answer,
    Run,
    access_token,
    decode,
    drive,
    drive_request,
    finish,
    rand,
    tx,
    user_json,
)

GH = "https://gh.test"
GOOGLE = "https://g.test"
FLOW_ID = "44444444-4444-4444-8444-444444444444"
CODE = "55555555-5555-4555-8555-555555555555"
VERIFIER = "verifier-" * 6
APP = "http://localhost:3000/welcome"


def providers(**overrides: Any) -> ExternalSettings:
    return ExternalSettings(
        providers=(
            ProviderConfig(name="github", client_ids=("gh-id",), secret="gh-secret", url=GH),
            ProviderConfig(name="google", client_ids=("g-id", "ios-id"), secret="g-s", url=GOOGLE),
            ProviderConfig(name="gitlab", client_ids=("gl",), secret=""),
            ProviderConfig(name="discord", client_ids=(), secret="x"),
            ProviderConfig(name="keycloak", client_ids=("kc",), secret="x"),
            ProviderConfig(name="azure", client_ids=("az",), secret="x"),
            ProviderConfig(name="apple", client_ids=("ap",), secret="x"),
        ),
        redirect_uri="http://api.test/auth/v1/callback",
        **overrides,
    )


OAUTH = attrs.evolve(SETTINGS, external=providers())


def run(method: str, path: str, answers: list[Answer], body: Any = None, **kwargs: Any) -> Run:
    kwargs.setdefault("settings", OAUTH)
    return drive(method, path, body, answers, **kwargs)


def http(status: int, value: Any, *, raw: bytes | None = None) -> Answer:
    def answer(command: AuthCommand) -> object:
        assert isinstance(command, HttpRequest), command
        return HttpResponse(
            status=status, body=raw if raw is not None else json.dumps(value).encode()
        )

    return answer


def offline(command: AuthCommand) -> object:
    assert isinstance(command, HttpRequest), command
    return HttpFailure(reason="ConnectError")


def flow_json(**overrides: Any) -> bytes:
    row: dict[str, Any] = {
        "id": FLOW_ID,
        "user_id": None,
        "auth_code": None,
        "code_challenge": None,
        "code_challenge_method": None,
        "provider_type": "github",
        "provider_access_token": "",
        "provider_refresh_token": "",
        "authentication_method": "oauth",
        "auth_code_issued_at": None,
        "created_at": STAMP,
        "referrer": APP,
        "linking_target_id": None,
    }
    row.update(overrides)
    return json.dumps(row).encode()


def pkce_flow(**overrides: Any) -> bytes:
    return flow_json(
        auth_code=CODE, code_challenge=VERIFIER, code_challenge_method="plain", **overrides
    )


def location(result: Run) -> tuple[str, dict[str, str], dict[str, str]]:
    where = result.response.header("location") or ""
    parts = urlsplit(where)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return where, query, dict(parse_qsl(parts.fragment, keep_blank_values=True))


GITHUB_USER = {"id": 1001, "login": "alice", "name": "Alice", "avatar_url": "https://a/1"}
GITHUB_EMAILS = [{"email": "alice@example.com", "primary": True, "verified": True}]
CANDIDATES_NONE = ((None, b"[]", b"[]", b"f"),)


def identity_row(
    user: bytes = b"", identity_id: str = "66666666-6666-4666-8666-666666666666"
) -> bytes:
    loaded = json.loads(user or user_json())
    return json.dumps({"identity_id": identity_id, "user": loaded}).encode()


def github_answers(candidates: Any = CANDIDATES_NONE, *, last: bytes | None = None) -> list[Answer]:
    return [
        http(200, {"access_token": "gho_1", "token_type": "bearer"}),
        http(200, GITHUB_USER),
        http(200, GITHUB_EMAILS),
        tx(first=candidates, read_only=True),
        rand,
        rand,
        tx(last=((last or user_json(raw_app_meta_data={"provider": "github"}),),)),
    ]


def callback(
    answers: list[Answer], *, flow: bytes | None = None, query: str = "code=abc", **kw: Any
) -> Run:
    return run(
        "GET",
        f"/callback?{query}&state={FLOW_ID}",
        [tx(first=((flow or flow_json(),),), read_only=True), *answers],
        **kw,
    )


# --- /authorize -----------------------------------------------------------------------------------


def test_authorize_builds_the_provider_url_and_stores_a_flow_state() -> None:
    result = run(
        "GET",
        f"/authorize?provider=github&redirect_to={APP}&scopes=repo&state=evil&client_id=evil"
        f"&login_hint=al&code_challenge={VERIFIER}&code_challenge_method=PLAIN",
        [rand, tx()],
    )
    assert result.status == 302
    where, query, _ = location(result)
    assert where.startswith(GH + "/login/oauth/authorize?")
    flow_id = str(__import__("uuid").UUID(bytes=RANDOM[:16], version=4))
    assert query == {
        "client_id": "gh-id",
        "login_hint": "al",
        "redirect_to": APP,
        "redirect_uri": "http://api.test/auth/v1/callback",
        "response_type": "code",
        "scope": "user:email repo",
        "state": flow_id,
    }
    (insert,) = result.statements
    assert insert.params[0] == flow_id
    assert insert.params[3:6] == ("plain", VERIFIER, "github")
    assert insert.params[11] == APP


def test_authorize_apple_uses_form_post() -> None:
    result = run("GET", "/authorize?provider=apple", [rand, tx()])
    _, query, _ = location(result)
    assert query["response_mode"] == "form_post"
    assert query["scope"] == "email name"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("provider=myspace", "Unsupported provider: Provider myspace could not be found"),
        ("", "Unsupported provider: Provider  could not be found"),
        ("provider=twitch", "Unsupported provider: Provider twitch could not be found"),
        ("provider=discord", "Unsupported provider: missing OAuth client ID"),
        ("provider=gitlab", "Unsupported provider: missing OAuth secret"),
        ("provider=keycloak", "Unsupported provider: unable to find URL for the Keycloak provider"),
        (
            "provider=github&code_challenge=abc",
            "PKCE flow requires code_challenge_method and code_challenge",
        ),
    ],
)
def test_authorize_refusals(query: str, message: str) -> None:
    result = run("GET", f"/authorize?{query}", [])
    assert (result.status, result.code, result.body["message"]) == (
        400,
        "validation_failed",
        message,
    )


def test_authorize_unconfigured_provider_is_not_enabled() -> None:
    result = run("GET", "/authorize?provider=github", [], settings=SETTINGS)
    assert result.body["message"] == "Unsupported provider: provider is not enabled"


def test_authorize_needs_a_redirect_uri() -> None:
    settings = attrs.evolve(OAUTH, external=attrs.evolve(providers(), redirect_uri=""))
    result = run("GET", "/authorize?provider=github", [], settings=settings)
    assert result.body["message"] == "Unsupported provider: missing redirect URI"


# --- /callback: state -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "answers", "description", "code"),
    [
        ("code=x", [], "OAuth state parameter missing", "bad_oauth_callback"),
        ("state=nope", [], "OAuth state parameter is invalid", "bad_oauth_state"),
        (
            f"state={FLOW_ID}",
            [tx(read_only=True)],
            "OAuth state not found or expired",
            "bad_oauth_state",
        ),
        (
            f"state={FLOW_ID}",
            [tx(first=((flow_json(created_at="2024-06-01T11:54:59+00:00"),),))],
            "OAuth state has expired",
            "bad_oauth_state",
        ),
        (
            f"state={FLOW_ID}",
            [tx(first=((pkce_flow(user_id=USER_ID),),))],
            "State has already been used",
            "flow_state_already_used",
        ),
    ],
)
def test_callback_state_errors_go_to_the_site(
    query: str, answers: list[Answer], description: str, code: str
) -> None:
    result = run("GET", f"/callback?{query}", answers)
    where, params, fragment = location(result)
    assert result.status == 303
    assert where.startswith(SETTINGS.site_url + "?")
    assert params == {
        "error": "invalid_request",
        "error_code": code,
        "error_description": description,
    }
    assert fragment == {}
    assert result.response.error_code == code  # for the access log


# --- /callback: provider and exchange -------------------------------------------------------------


def test_callback_passes_on_the_providers_error() -> None:
    result = callback([], query="error=access_denied&error_description=No+way")
    where, query, fragment = location(result)
    assert where.startswith(APP + "?")
    assert query == {"error": "access_denied", "error_description": "No way"}
    assert fragment == {"error": "access_denied", "error_description": "No way", "sb": ""}
    assert result.response.error_code == "access_denied"


def test_callback_error_keeps_the_redirect_query() -> None:
    flow = flow_json(referrer=APP + "?tab=2#old")
    result = callback([], flow=flow, query="error=server_error")
    where, query, fragment = location(result)
    assert query == {"error": "server_error", "error_description": "", "tab": "2"}
    assert fragment == {"error": "server_error", "sb": ""}
    assert "#old" not in where


@pytest.mark.parametrize(
    ("answers", "description"),
    [
        ([], "OAuth callback with missing authorization code missing"),
        ([offline], "Unable to exchange external code: abc"),
        ([http(401, {"error": "invalid_client"})], "Unable to exchange external code: abc"),
        ([http(200, {"token_type": "bearer"})], "Unable to exchange external code: abc"),
        (
            [http(200, {"access_token": "t"}), http(500, {})],
            "Error getting user profile from external provider",
        ),
        (
            [http(200, {"access_token": "t"}), http(200, {"login": "no id"}), http(200, [])],
            "Error getting user profile from external provider",
        ),
        (
            [http(200, {"access_token": "t"}), http(200, GITHUB_USER), http(200, [])],
            "Error getting user email from external provider",
        ),
    ],
)
def test_callback_exchange_failures(answers: list[Answer], description: str) -> None:
    query = "code=abc" if answers else "nothing=1"
    result = callback(answers, query=query)
    _, params, _ = location(result)
    assert params["error_description"] == description
    assert params["error"] == ("invalid_request" if not answers else "server_error")


def test_callback_for_a_provider_since_disabled() -> None:
    result = callback([], flow=flow_json(provider_type="gitlab"))
    _, params, _ = location(result)
    assert params["error_code"] == "oauth_provider_not_supported"
    assert params["error_description"] == "Unsupported provider: missing OAuth secret"


def test_callback_implicit_creates_the_user_and_redirects_with_tokens() -> None:
    result = callback(github_answers())
    where, query, fragment = location(result)
    assert where.startswith(APP + "#")
    assert query == {}
    assert list(fragment) == [
        "access_token",
        "expires_at",
        "expires_in",
        "provider_token",
        "refresh_token",
        "sb",
        "token_type",
    ]
    assert fragment["provider_token"] == "gho_1"
    assert decode(fragment["access_token"])["amr"][0]["method"] == "oauth"
    exchange = next(c for c in result.commands if isinstance(c, HttpRequest))
    form = dict(parse_qsl(exchange.body.decode()))
    assert form == {
        "grant_type": "authorization_code",
        "code": "abc",
        "redirect_uri": "http://api.test/auth/v1/callback",
        "client_id": "gh-id",
        "client_secret": "gh-secret",
    }
    userinfo = [c for c in result.commands if isinstance(c, HttpRequest)][1]
    assert ("authorization", "Bearer gho_1") in userinfo.headers
    starts = [" ".join(s.sql.split()[:3]) for s in result.transactions[-1].statements]
    assert starts[:4] == [
        "insert into auth.users",
        "insert into auth.identities",
        "insert into auth.audit_log_entries",
        "delete from auth.flow_state",
    ]
    candidates = result.transactions[1].statements[0]
    assert candidates.params == ("1001", "github", '{"alice@example.com"}', "alice@example.com")


def test_callback_user_deleted_meanwhile_is_a_server_error() -> None:
    answers = github_answers()
    answers[-1] = tx()
    _, query, _ = location(callback(answers))
    assert query["error_description"] == "user vanished while signing in"


def test_callback_implicit_forwards_a_provider_refresh_token() -> None:
    answers = github_answers()
    answers[0] = http(200, {"access_token": "gho_1", "refresh_token": "r1"})
    _, _, fragment = location(callback(answers))
    assert fragment["provider_refresh_token"] == "r1"


def test_callback_pkce_claims_the_flow_state() -> None:
    answers = github_answers()[:5]
    answers += [tx(first=((CODE.encode(),),)), tx()]
    result = callback(answers, flow=pkce_flow())
    where, _, fragment = location(result)
    assert where == f"{APP}?code={CODE}"
    assert fragment == {}
    claim = result.transactions[2].statements[0]
    assert claim.sql.startswith("update auth.flow_state set user_id")
    assert claim.params[2] == "gho_1"


def test_callback_pkce_claimed_twice_is_already_used() -> None:
    answers = [*github_answers()[:5], tx()]
    _, query, _ = location(callback(answers, flow=pkce_flow()))
    assert query["error_code"] == "flow_state_already_used"
    assert query["error"] == "invalid_request"


def form_post(body: bytes, answers: list[Answer]) -> Run:
    request = Request(
        method="POST",
        target="/auth/v1/callback",
        headers=(("content-type", "application/x-www-form-urlencoded; charset=utf-8"),),
        body=body,
    )
    return drive_request(request, answers, settings=OAUTH)


def test_callback_accepts_posted_forms() -> None:
    answers = [tx(first=((flow_json(),),), read_only=True), *github_answers()]
    result = form_post(f"code=abc&state={FLOW_ID}".encode(), answers)
    assert "access_token" in location(result)[2]
    broken = form_post(b"\xff", [])
    assert location(broken)[1]["error_code"] == "bad_oauth_callback"


# --- linking decisions -----------------------------------------------------------------------------


def test_existing_identity_signs_its_user_in() -> None:
    candidates = ((identity_row(), b"[]", b"[]", b"f"),)
    result = callback(github_answers(candidates))
    starts = [" ".join(s.sql.split()[:3]) for s in result.transactions[-1].statements]
    assert starts[0] == "update auth.identities set"
    assert "insert into auth.users" not in starts
    payloads = [s for s in result.statements if "audit_log_entries" in s.sql]
    assert [p.params[2] for p in payloads] == ["login"]


def test_verified_email_links_to_the_user_with_that_address() -> None:
    candidates = ((None, b"[]", b"[" + user_json() + b"]", b"t"),)
    result = callback(github_answers(candidates))
    writes = result.transactions[-1].statements
    assert writes[0].sql.startswith("insert into auth.identities")
    assert writes[0].params[2] == USER_ID
    actions = [s.params[2] for s in writes if "audit_log_entries" in s.sql]
    assert actions == ["identity_linked", "login"]


def test_several_accounts_with_the_address_is_a_server_error() -> None:
    other = user_json(id="77777777-7777-4777-8777-777777777777")
    candidates = ((None, b"[" + user_json() + b"," + other + b"]", b"[]", b"t"),)
    result = callback(github_answers(candidates)[:5])
    _, query, _ = location(result)
    assert query["error"] == "server_error"
    assert query["error_description"].startswith("Multiple accounts with the same email")


def test_banned_user_is_denied() -> None:
    banned = user_json(banned_until="2099-01-01T00:00:00+00:00")
    candidates = ((identity_row(banned), b"[]", b"[]", b"f"),)
    _, query, _ = location(callback(github_answers(candidates)[:5]))
    assert (query["error"], query["error_code"]) == ("access_denied", "user_banned")


def test_unconfirmed_user_keeps_only_the_new_identity() -> None:
    pending = user_json(email_confirmed_at=None)
    candidates = ((None, b"[" + pending + b"]", b"[]", b"t"),)
    result = callback(github_answers(candidates))
    writes = result.transactions[-1].statements
    drop = next(s for s in writes if s.sql.startswith("with d as (delete from auth.identities"))
    assert drop.params == (USER_ID, drop.params[1], "true")
    assert any("email_confirmed_at = $2" in s.sql for s in writes)
    actions = [s.params[2] for s in writes if "audit_log_entries" in s.sql]
    assert actions == ["identity_linked", "user_signedup"]


def test_without_autoconfirm_unverified_addresses_are_refused() -> None:
    strict = attrs.evolve(OAUTH, autoconfirm=False)
    answers = github_answers()[:4]
    answers[2] = http(200, [{"email": "alice@example.com", "primary": True, "verified": False}])
    answers.append(rand)
    _, query, _ = location(callback(answers, settings=strict))
    assert query["error_code"] == "provider_email_needs_verification"
    pending = user_json(email_confirmed_at=None)
    linked = github_answers(((identity_row(pending), b"[]", b"[]", b"f"),))[:5]
    linked[2] = answers[2]
    _, query, _ = location(callback(linked, settings=strict))
    assert query["error"] == "access_denied"


def test_unverified_taken_address_creates_a_user_without_it() -> None:
    strict = attrs.evolve(OAUTH, autoconfirm=False)
    answers = github_answers(((None, b"[]", b"[]", b"t"),))
    answers[2] = http(200, [{"email": "alice@example.com", "primary": True, "verified": False}])
    # Without autoconfirm and unverified, GoTrue would mail a confirmation; MadBase refuses.
    _, query, _ = location(callback(answers[:5], settings=strict))
    assert query["error_code"] == "provider_email_needs_verification"
    verified_elsewhere = github_answers(((None, b"[]", b"[]", b"t"),))
    verified_elsewhere[2] = http(
        200, [{"email": "x@example.com", "primary": False, "verified": True}]
    )
    result = callback(verified_elsewhere)
    insert = result.transactions[-1].statements[0]
    assert insert.sql.startswith("insert into auth.users")
    assert insert.params[4] is None  # no primary address: none for the user


def test_signup_disabled_is_access_denied() -> None:
    closed = attrs.evolve(OAUTH, limits=attrs.evolve(OAUTH.limits, disable_signup=True))
    _, query, _ = location(callback(github_answers()[:5], settings=closed))
    assert (query["error"], query["error_code"]) == ("access_denied", "signup_disabled")


# --- manual linking ---------------------------------------------------------------------------------

LINKING = attrs.evolve(OAUTH, external=providers(manual_linking_enabled=True))
ME = (user_json(), b"t")


def test_link_identity_answers_the_url_or_redirects() -> None:
    token = access_token()
    result = run(
        "GET",
        "/user/identities/authorize?provider=github&skip_http_redirect=true",
        [tx(first=(ME,)), rand, tx()],
        token=token,
        settings=LINKING,
    )
    assert result.status == 200
    assert result.body["url"].startswith(GH + "/login/oauth/authorize?")
    assert result.statements[1].params[12] == USER_ID
    redirect = run(
        "GET",
        "/user/identities/authorize?provider=github",
        [tx(first=(ME,)), rand, tx()],
        token=token,
        settings=LINKING,
    )
    assert redirect.status == 302
    disabled = run(
        "GET", "/user/identities/authorize?provider=github", [tx(first=(ME,))], token=token
    )
    assert (disabled.status, disabled.code) == (404, "manual_linking_disabled")


def test_linking_callback_adds_the_identity_to_the_target() -> None:
    flow = flow_json(linking_target_id=USER_ID)
    answers = [
        http(200, {"access_token": "gho_1"}),
        http(200, GITHUB_USER),
        http(200, GITHUB_EMAILS),
    ]
    answers += [
        tx(first=((user_json(),),)),
        tx(first=CANDIDATES_NONE),
        rand,
        rand,
        tx(last=((user_json(),),)),
    ]
    result = callback(answers, flow=flow)
    assert "access_token" in location(result)[2]
    writes = result.transactions[-1].statements
    assert writes[0].sql.startswith("insert into auth.identities")
    assert writes[0].params[2] == USER_ID


def test_linking_callback_refusals() -> None:
    flow = flow_json(linking_target_id=USER_ID)
    base = [http(200, {"access_token": "gho_1"}), http(200, GITHUB_USER), http(200, GITHUB_EMAILS)]
    gone = callback([*base, tx()], flow=flow)
    assert location(gone)[1]["error_description"] == "Linking target user not found"
    mine = ((identity_row(), b"[]", b"[]", b"f"),)
    again = callback([*base, tx(first=((user_json(),),)), tx(first=mine), rand], flow=flow)
    assert location(again)[1]["error_description"] == "Identity is already linked"
    other = (
        (identity_row(user_json(id="77777777-7777-4777-8777-777777777777")), b"[]", b"[]", b"f"),
    )
    theirs = callback([*base, tx(first=((user_json(),),)), tx(first=other), rand], flow=flow)
    assert location(theirs)[1]["error_description"] == "Identity is already linked to another user"


def test_linking_gives_an_anonymous_user_its_address() -> None:
    flow = flow_json(linking_target_id=USER_ID)
    anonymous = user_json(email=None, is_anonymous=True)
    answers = [
        http(200, {"access_token": "gho_1"}),
        http(200, GITHUB_USER),
        http(200, GITHUB_EMAILS),
    ]
    answers += [
        tx(first=((anonymous,),)),
        tx(first=CANDIDATES_NONE),
        rand,
        rand,
        tx(last=((user_json(),),)),
    ]
    writes = callback(answers, flow=flow).transactions[-1].statements
    assert any(
        s.sql.startswith("update auth.users set email = $2, is_anonymous = false") for s in writes
    )
    unverified = [*answers]
    unverified[2] = http(200, [{"email": "a@x.test", "primary": True, "verified": False}])
    result = callback(unverified[:6], flow=flow)
    assert location(result)[1]["error_code"] == "email_not_confirmed"


# --- DELETE /user/identities/{id} ---------------------------------------------------------------------

IDENTITY = "88888888-8888-4888-8888-888888888888"


def two_identities(provider: str = "github") -> bytes:
    loaded = json.loads(user_json())
    loaded["identities"] = [
        {"id": "99999999-9999-4999-8999-999999999999", "provider_id": USER_ID, "user_id": USER_ID,
         "provider": "email", "identity_data": {}, "created_at": STAMP, "updated_at": STAMP},
        {"id": IDENTITY, "provider_id": "1001", "user_id": USER_ID, "provider": provider,
         "identity_data": {}, "created_at": STAMP, "updated_at": STAMP},
    ]  # fmt: skip
    return json.dumps(loaded).encode()


@pytest.mark.parametrize("provider", ["github", "phone"])
def test_delete_identity(provider: str) -> None:
    me = ((two_identities(provider), b"t"),)
    result = run(
        "DELETE",
        f"/user/identities/{IDENTITY}",
        [tx(first=me), rand, tx()],
        token=access_token(),
        settings=LINKING,
    )
    assert (result.status, result.body) == (200, {})
    sqls = [s.sql for s in result.transactions[-1].statements]
    assert sqls[1] == "delete from auth.identities where id = $1::uuid"
    assert ("phone = null" in sqls[2]) is (provider == "phone")


def test_delete_identity_refusals() -> None:
    token = access_token()
    one = run(
        "DELETE", f"/user/identities/{IDENTITY}", [tx(first=(ME,))], token=token, settings=LINKING
    )
    assert (one.status, one.code) == (422, "single_identity_not_deletable")
    two = ((two_identities(), b"t"),)
    unknown = run(
        "DELETE", f"/user/identities/{USER_ID}", [tx(first=two)], token=token, settings=LINKING
    )
    assert (unknown.status, unknown.code) == (422, "identity_not_found")
    bad = run("DELETE", "/user/identities/x", [tx(first=two)], token=token, settings=LINKING)
    assert (bad.status, bad.code) == (404, "validation_failed")
    conflict = run(
        "DELETE",
        f"/user/identities/{IDENTITY}",
        [tx(first=two), rand, lambda c: DbError(sqlstate="23505", message="dup")],
        token=token,
        settings=LINKING,
    )
    assert (conflict.status, conflict.code) == (422, "email_conflict_identity_not_deletable")
    broken = run(
        "DELETE",
        f"/user/identities/{IDENTITY}",
        [tx(first=two), rand, lambda c: DbError(sqlstate="XX000", message="boom")],
        token=token,
        settings=LINKING,
    )
    assert (broken.status, broken.code) == (500, "unexpected_failure")
    off = run("DELETE", f"/user/identities/{IDENTITY}", [tx(first=two)], token=token)
    assert (off.status, off.code) == (404, "manual_linking_disabled")


# --- /settings --------------------------------------------------------------------------------------


def test_settings_list_enabled_providers() -> None:
    external = run("GET", "/settings", []).body["external"]
    assert external["github"] is True
    assert external["google"] is True
    assert external["twitch"] is False


# --- PKCE: flow state helpers and the grant ---------------------------------------------------------


def test_flow_state_round_trip_and_expiry() -> None:
    pkce = PkceChallenge(challenge=VERIFIER, method=CodeChallengeMethod.PLAIN)
    state = new_flow_state(
        RANDOM,
        provider_type="email",
        authentication_method="magiclink",
        pkce=pkce,
        now=NOW,
        user_id=USER_ID,
    )
    insert = insert_flow_state(state)
    assert insert.params[1:4] == (USER_ID, state.auth_code, "plain")
    row = json.loads(flow_json())
    row.update(
        id=state.id, user_id=USER_ID, auth_code=state.auth_code, code_challenge=VERIFIER,
        code_challenge_method="plain", provider_type="email", authentication_method="magiclink",
        referrer=None, auth_code_issued_at="2024-06-01T12:10:00",
    )  # fmt: skip
    decoded = decode_flow_state(json.dumps(row).encode())
    assert decoded is not None
    assert attrs.evolve(decoded, auth_code_issued_at=None) == state
    # A magic link's code lives from its issue; others from creation.
    assert not decoded.is_expired(now=NOW + timedelta(seconds=700), expiry_seconds=300)
    assert decoded.is_expired(now=NOW + timedelta(seconds=901), expiry_seconds=300)
    assert attrs.evolve(decoded, authentication_method="oauth").is_expired(
        now=NOW + timedelta(seconds=301), expiry_seconds=300
    )
    assert decode_flow_state(None) is None
    implicit = new_flow_state(
        RANDOM, provider_type="github", authentication_method="oauth", pkce=None, now=NOW
    )
    assert (implicit.auth_code, implicit.is_pkce) == (None, False)
    assert insert_flow_state(implicit).params[3:5] == (None, None)
    assert issue_auth_code(USER_ID, "magiclink", now=NOW).params == (USER_ID, "magiclink", STAMP)


def test_check_flow_state_order() -> None:
    pkce = PkceChallenge(challenge=VERIFIER, method=CodeChallengeMethod.PLAIN)
    state = FlowStateRow(
        id=FLOW_ID,
        provider_type="github",
        authentication_method="oauth",
        created_at=NOW,
        user_id=USER_ID,
        pkce=pkce,
    )
    assert check_flow_state(state, VERIFIER, now=NOW, expiry_seconds=300) is state
    for bad, code in [
        (None, "flow_state_not_found"),
        (attrs.evolve(state, user_id=None), "flow_state_not_found"),
        (attrs.evolve(state, pkce=None), "flow_state_not_found"),
        (attrs.evolve(state, created_at=NOW - timedelta(seconds=301)), "flow_state_expired"),
        (state, "bad_code_verifier"),
    ]:
        with pytest.raises(Exception) as raised:  # noqa: PT011 - the code is checked
            check_flow_state(
                bad, "wrong" if bad is state else VERIFIER, now=NOW, expiry_seconds=300
            )
        assert getattr(raised.value, "error_code", None) == code


def test_pkce_redirect_url_replaces_an_old_code() -> None:
    assert pkce_redirect_url("http://a.test/?code=old&x=1&a=2&a=1", "new") == (
        "http://a.test/?a=2&a=1&code=new&x=1"
    )


GRANT = {"auth_code": CODE, "code_verifier": VERIFIER}


def test_pkce_grant_issues_a_session_once() -> None:
    flow = pkce_flow(user_id=USER_ID, provider_access_token="gho_9", provider_refresh_token="r9")
    result = run(
        "POST",
        "/token?grant_type=pkce",
        [
            tx(first=((flow, user_json()),), read_only=True),
            tx(first=((FLOW_ID.encode(),),)),
            rand,
            tx(last=((user_json(),),)),
        ],
        GRANT,
    )
    assert result.status == 200, result.body
    assert (result.body["provider_token"], result.body["provider_refresh_token"]) == ("gho_9", "r9")
    assert decode(result.body["access_token"])["amr"][0]["method"] == "oauth"
    audit = next(s for s in result.statements if "audit_log_entries" in s.sql)
    assert json.loads(audit.params[4] or "{}") == {"provider_type": "github"}


@pytest.mark.parametrize(
    ("answers", "status", "code"),
    [
        ([tx(read_only=True)], 404, "flow_state_not_found"),
        ([tx(first=((pkce_flow(), user_json()),))], 404, "flow_state_not_found"),
        ([tx(first=((pkce_flow(user_id=USER_ID), None),))], 404, "flow_state_not_found"),
        (
            [
                tx(
                    first=(
                        (
                            pkce_flow(user_id=USER_ID, created_at="2024-06-01T11:50:00+00:00"),
                            user_json(),
                        ),
                    )
                )
            ],
            422,
            "flow_state_expired",
        ),
        (
            [tx(first=((pkce_flow(user_id=USER_ID), user_json()),)), tx()],
            404,
            "flow_state_not_found",
        ),
    ],
)
def test_pkce_grant_refusals(answers: list[Answer], status: int, code: str) -> None:
    result = run("POST", "/token?grant_type=pkce", answers, GRANT)
    assert (result.status, result.code) == (status, code)


def test_pkce_grant_bad_verifier() -> None:
    flow = flow_json(
        user_id=USER_ID, auth_code=CODE, code_challenge="x" * 43, code_challenge_method="s256"
    )
    result = run("POST", "/token?grant_type=pkce", [tx(first=((flow, user_json()),))], GRANT)
    assert (result.status, result.code) == (400, "bad_code_verifier")


# --- id_token -----------------------------------------------------------------------------------------

RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC = ec.generate_private_key(ec.SECP256R1())


def jwks() -> dict[str, Any]:
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA.public_key()))
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC.public_key()))
    return {"keys": [{**rsa_jwk, "kid": "r"}, {**ec_jwk, "kid": "e"}]}


def id_token(*, alg: str = "RS256", kid: str | None = "r", key: Any = None, **claims: Any) -> str:
    body: dict[str, Any] = {
        "iss": GOOGLE,
        "sub": "g-1",
        "aud": "g-id",
        "exp": int(NOW.timestamp()) + 60,
        "email": "alice@example.com",
        "email_verified": True,
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    signer = key if key is not None else (RSA if alg.startswith("RS") else EC)
    return jwt.encode(body, signer, algorithm=alg, headers={"kid": kid} if kid else None)


DISCOVERY = {
    "jwks_uri": GOOGLE + "/jwks",
    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
}


def keys_answers() -> list[Answer]:
    return [http(200, DISCOVERY), http(200, jwks())]


def grant(token: str, **body: Any) -> dict[str, Any]:
    return {"provider": "google", "id_token": token, **body}


def test_id_token_grant_signs_in() -> None:
    nonce = hashlib.sha256(b"raw").hexdigest()
    answers = [*keys_answers(), tx(first=CANDIDATES_NONE), rand, rand, tx(last=((user_json(),),))]
    result = run(
        "POST", "/token?grant_type=id_token", answers, grant(id_token(nonce=nonce), nonce="raw")
    )
    assert result.status == 200, result.body
    discovery, keys = (c for c in result.commands if isinstance(c, HttpRequest))
    assert discovery.url == GOOGLE + "/.well-known/openid-configuration"
    assert (discovery.cache_seconds, keys.url) == (600, GOOGLE + "/jwks")
    candidates = result.transactions[0].statements[0]
    assert candidates.params[:2] == ("g-1", "google")


def test_id_token_grant_accepts_any_configured_audience_and_es256() -> None:
    token = id_token(alg="ES256", kid="e", aud=["other", "ios-id"])
    answers = [*keys_answers(), tx(first=CANDIDATES_NONE), rand, rand, tx(last=((user_json(),),))]
    assert run("POST", "/token?grant_type=id_token", answers, grant(token)).status == 200


@pytest.mark.parametrize(
    ("token", "body", "error", "description"),
    [
        (
            id_token(aud="nobody"),
            {},
            "invalid request",
            "Unacceptable audience in id_token: [nobody]",
        ),
        (id_token(sub=""), {}, "invalid request", "Missing sub claim in id_token"),
        (
            id_token(nonce="abc"),
            {},
            "invalid request",
            "Passed nonce and nonce in id_token should either both exist or not.",
        ),
        (
            id_token(),
            {"nonce": "raw"},
            "invalid request",
            "Passed nonce and nonce in id_token should either both exist or not.",
        ),
        (id_token(nonce="abc"), {"nonce": "raw"}, "invalid nonce", "Nonces mismatch"),
        (id_token(exp=int(NOW.timestamp()) - 1), {}, "invalid request", "Bad ID token"),
        (id_token(exp=None), {}, "invalid request", "Bad ID token"),
        (id_token(iss="https://accounts.google.com"), {}, "invalid request", "Bad ID token"),
        (id_token(kid="unknown"), {}, "invalid request", "Bad ID token"),
        (id_token(alg="ES256", kid="r"), {}, "invalid request", "Bad ID token"),
        (id_token(alg="RS512"), {}, "invalid request", "Bad ID token"),
        (
            jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256"),
            {},
            "invalid request",
            "Bad ID token",
        ),
        ("not.a.jwt", {}, "invalid request", "Bad ID token"),
        (id_token(at_hash="AAAA"), {"access_token": "ya29"}, "invalid request", "Bad ID token"),
    ],
)
def test_id_token_grant_refusals(
    token: str, body: dict[str, Any], error: str, description: str
) -> None:
    result = run("POST", "/token?grant_type=id_token", keys_answers(), grant(token, **body))
    assert (result.status, result.body) == (400, {"error": error, "error_description": description})


def test_id_token_without_kid_tries_every_key() -> None:
    answers = [*keys_answers(), tx(first=CANDIDATES_NONE), rand, rand, tx(last=((user_json(),),))]
    token = id_token(kid=None, alg="ES256")
    assert run("POST", "/token?grant_type=id_token", answers, grant(token)).status == 200


def test_id_token_at_hash_matches_the_access_token() -> None:
    digest = hashlib.sha256(b"ya29").digest()
    at_hash = jwt.utils.base64url_encode(digest[:16]).decode()
    answers = [*keys_answers(), tx(first=CANDIDATES_NONE), rand, rand, tx(last=((user_json(),),))]
    result = run(
        "POST",
        "/token?grant_type=id_token",
        answers,
        grant(id_token(at_hash=at_hash), access_token="ya29"),
    )
    assert result.status == 200


@pytest.mark.parametrize(
    "answers",
    [
        [offline],
        [http(404, {})],
        [http(200, [])],
        [http(200, {"issuer": GOOGLE})],
        [http(200, DISCOVERY), http(200, {"keys": "no"})],
    ],
)
def test_id_token_key_fetch_failures(answers: list[Answer]) -> None:
    result = run("POST", "/token?grant_type=id_token", answers, grant(id_token()))
    if len(answers) == 2:
        assert (result.status, result.body["error_description"]) == (400, "Bad ID token")
    else:
        assert (result.status, result.code) == (500, "unexpected_failure")


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"provider": "keycloak"}, "provider_disabled", 'Provider (issuer "") is not enabled'),
        (
            {"provider": "myspace"},
            "validation_failed",
            'Custom OIDC provider "myspace" not allowed',
        ),
        ({"provider": "github"}, "validation_failed", 'Custom OIDC provider "github" not allowed'),
        (
            {"provider": "apple"},
            "validation_failed",
            "Unable to detect issuer in ID token for Apple provider",
        ),
        (
            {"provider": "apple", "id_token": id_token(iss="https://x.test")},
            "validation_failed",
            "Detected ID token issuer is not an Apple ID token issuer",
        ),
        (
            {"provider": "azure", "id_token": id_token(iss="https://x.test")},
            "validation_failed",
            "Detected ID token issuer is not an Azure ID token issuer",
        ),
        (
            {
                "provider": "azure",
                "id_token": id_token(iss="https://sts.windows.net/t/"),
                "issuer": "https://other",
            },
            "validation_failed",
            "Provided issuer does not match ID token issuer",
        ),
    ],
)
def test_id_token_provider_refusals(body: dict[str, Any], code: str, message: str) -> None:
    result = run("POST", "/token?grant_type=id_token", [], {"id_token": "x.y.z", **body})
    assert (result.status, result.code, result.body["message"]) == (400, code, message)


def test_id_token_unconfigured_google_names_its_issuer() -> None:
    result = run("POST", "/token?grant_type=id_token", [], grant("x.y.z"), settings=SETTINGS)
    assert (
        result.body["message"] == 'Provider (issuer "https://accounts.google.com") is not enabled'
    )


def test_id_token_azure_with_a_configured_tenant() -> None:
    tenant = "https://login.test/tenant"
    settings = attrs.evolve(
        OAUTH,
        external=ExternalSettings(
            providers=(ProviderConfig(name="azure", client_ids=("az",), url=tenant),)
        ),
    )
    wrong = run(
        "POST",
        "/token?grant_type=id_token",
        [],
        {"provider": "azure", "id_token": id_token(iss="https://sts.windows.net/x/")},
        settings=settings,
    )
    assert wrong.body["message"] == "Detected ID token issuer is not an Azure ID token issuer"
    token = id_token(iss=tenant + "/v2.0", aud="az", tid="t", xms_edov=True)
    answers = [*keys_answers(), tx(first=CANDIDATES_NONE), rand, rand, tx(last=((user_json(),),))]
    result = run(
        "POST",
        "/token?grant_type=id_token",
        answers,
        {"provider": "azure", "id_token": token},
        settings=settings,
    )
    assert result.status == 200, result.body
    assert next(c for c in result.commands if isinstance(c, HttpRequest)).url == (
        tenant + "/v2.0/.well-known/openid-configuration"
    )


def test_id_token_link_identity_needs_a_session() -> None:
    result = run("POST", "/token?grant_type=id_token", [], grant("x.y.z", link_identity=True))
    assert (result.status, result.body["error_description"]) == (
        400,
        "Linking requires a valid user access token in Authorization",
    )
    answers = [
        tx(first=(ME,)),
        *keys_answers(),
        tx(first=CANDIDATES_NONE),
        rand,
        rand,
        tx(last=((user_json(),),)),
    ]
    linked = run(
        "POST",
        "/token?grant_type=id_token",
        answers,
        grant(id_token(), link_identity=True),
        token=access_token(),
    )
    assert linked.status == 200
    assert linked.transactions[-1].statements[0].params[2] == USER_ID


def test_unverified_issuer() -> None:
    assert unverified_issuer(id_token()) == GOOGLE
    assert unverified_issuer("x") == ""
    assert unverified_issuer("a.!!!.c") == ""
    numeric = base64.urlsafe_b64encode(b'{"iss": 5}').decode().rstrip("=")
    assert unverified_issuer(f"h.{numeric}.s") == ""


def test_verify_id_token_without_issuer_check() -> None:
    claims = verify_id_token(
        id_token(iss="https://any.test"), jwks()["keys"], algorithms=["RS256"], issuer=None, now=NOW
    )
    assert claims["iss"] == "https://any.test"


# --- the google callback reads the id_token ---------------------------------------------------------


def test_google_callback_verifies_the_id_token() -> None:
    flow = flow_json(provider_type="google")
    token = id_token()
    answers = [
        http(200, {"access_token": "ya29", "id_token": token, "refresh_token": "1//r"}),
        *keys_answers(),
        tx(first=CANDIDATES_NONE),
        rand,
        rand,
        tx(last=((user_json(),),)),
    ]
    _, _, fragment = location(callback(answers, flow=flow))
    assert (fragment["provider_token"], fragment["provider_refresh_token"]) == ("ya29", "1//r")
    wrong_audience = [
        http(200, {"access_token": "ya29", "id_token": id_token(aud="x")}),
        *keys_answers(),
    ]
    _, query, _ = location(callback(wrong_audience, flow=flow))
    assert query["error_description"] == "Error getting user profile from external provider"


def test_google_callback_without_id_token_uses_userinfo() -> None:
    flow = flow_json(provider_type="google")
    answers = [
        http(200, {"access_token": "ya29"}),
        http(200, {"id": "g-1", "email": "alice@example.com", "verified_email": True}),
        tx(first=CANDIDATES_NONE),
        rand,
        rand,
        tx(last=((user_json(),),)),
    ]
    assert "access_token" in location(callback(answers, flow=flow))[2]


def test_azure_callback_needs_an_id_token() -> None:
    flow = flow_json(provider_type="azure")
    _, query, _ = location(callback([http(200, {"access_token": "a"})], flow=flow))
    assert query["error_description"] == "Error getting user profile from external provider"


def test_azure_callback_fetches_keys_only_from_azure_issuers() -> None:
    flow = flow_json(provider_type="azure")
    foreign = id_token(iss="http://169.254.169.254", aud="az")
    result = callback([http(200, {"access_token": "a", "id_token": foreign})], flow=flow)
    assert location(result)[1]["error_description"] == (
        "Error getting user profile from external provider"
    )
    assert sum(isinstance(c, HttpRequest) for c in result.commands) == 1
    tenant = "https://login.microsoftonline.com/t/v2.0"
    token = id_token(iss=tenant, aud="az")
    answers = [
        http(200, {"access_token": "a", "id_token": token}),
        *keys_answers(),
        tx(first=CANDIDATES_NONE),
        rand,
        rand,
        tx(last=((user_json(),),)),
    ]
    result = callback(answers, flow=flow)
    assert "access_token" in location(result)[2]
    discovery = [c for c in result.commands if isinstance(c, HttpRequest)][1]
    assert discovery.url == tenant + "/.well-known/openid-configuration"


def draws(result: Run) -> list[int]:
    return [c.size for c in result.commands if isinstance(c, DrawRandom)]


def test_commands_are_all_answered_by_type() -> None:
    # A guard on the helpers above: every command kind the OAuth flows yield is one we fake.
    result = callback(github_answers())
    assert {type(c) for c in result.commands} == {RunTransaction, HttpRequest, DrawRandom}
    assert draws(result) == [64, 40]


# --- totality ------------------------------------------------------------------------------------------

QUERY_VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [FLOW_ID, "github", "google", "apple", "azure", "keycloak", VERIFIER, "s256", "plain", APP]
    ),
)
QUERIES = st.lists(
    st.tuples(
        st.sampled_from(
            ["provider", "state", "code", "error", "redirect_to", "scopes", "code_challenge",
             "code_challenge_method", "error_description", "skip_http_redirect", "x"]
        ),
        QUERY_VALUES,
    ),
    max_size=6,
)  # fmt: skip
PROVIDER_BODIES = st.one_of(
    st.binary(max_size=100),
    st.sampled_from(
        [
            json.dumps({"access_token": "t", "id_token": "a.b.c"}).encode(),
            json.dumps({"access_token": "t"}).encode(),
            json.dumps(GITHUB_USER).encode(),
            json.dumps(GITHUB_EMAILS).encode(),
            json.dumps(DISCOVERY).encode(),
            b"[]",
        ]
    ),
)


@given(
    path=st.sampled_from(["/authorize", "/callback", "/user/identities/authorize"]),
    query=QUERIES,
    flow=st.sampled_from([None, flow_json(), pkce_flow(), flow_json(provider_type="google")]),
    status=st.sampled_from([200, 400, 500]),
    provider_body=PROVIDER_BODIES,
)
def test_oauth_endpoints_answer_whatever_they_are_sent(
    path: str, query: list[tuple[str, str]], flow: bytes | None, status: int, provider_body: bytes
) -> None:
    def answer(command: AuthCommand) -> object:
        match command:
            case RunTransaction(tx=transaction):
                first = transaction.statements[0].sql
                # The session check reads (user, has session); the flow state reads come first.
                rows: tuple[tuple[bytes | None, ...], ...] = (
                    ((user_json(), b"t"),)
                    if "exists(select 1 from auth.sessions" in first
                    else ((flow, user_json()),)
                    if flow is not None
                    else ()
                )
                return [DbResult(rows=rows, command="SELECT") for _ in transaction.statements]
            case HttpRequest():
                return HttpResponse(status=status, body=provider_body)
            case DrawRandom(size=size):
                return RANDOM[:size]
        raise AssertionError(command)

    request = Request(
        method="GET",
        target=f"/auth/v1{path}?{urlencode(query)}",
        headers=(("authorization", f"Bearer {access_token()}"),),
    )
    response = finish(auth_flow(request, path, LINKING, now=NOW), answer)
    assert (
        response.status in (200, 302, 303)
        or 400 <= response.status < 500
        or (response.status == 500 and path == "/user/identities/authorize")
    )
    if response.status in (302, 303):
        assert response.header("location")
