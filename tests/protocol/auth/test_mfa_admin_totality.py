"""`/factors` and `/admin/users` are total: any body, path or query gets a GoTrue answer, never a 500.

The flows run against `plausible`, a fake runtime whose database holds one user with one TOTP
factor and a live session, so validation gets past authentication and loading every time.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from madbase.protocol.auth import AuthCommand, DrawRandom, HashPassword, RunTransaction
from madbase.protocol.auth.flows import auth_flow
from madbase.protocol.auth.mfa.totp import totp_at
from madbase.protocol.sql import DbResult
from tests.protocol.auth.test_flows import (
    NOW,
    RANDOM,
    SETTINGS,
    USER_ID,
    access_token,
    make_request,
)
from tests.protocol.auth.test_mfa_admin_flows import (
    CHALLENGE_ID,
    FACTOR_ID,
    TOTP_SECRET,
    factor_row,
    service_token,
    session_row,
    user_row,
)


def plausible(command: AuthCommand) -> object:
    """A runtime whose database holds one user with one TOTP factor and a live session."""
    match command:
        case DrawRandom(size=size):
            return RANDOM[:size]
        case HashPassword():
            return "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
        case RunTransaction(tx=transaction):
            out = []
            for statement in transaction.statements:
                sql = statement.sql
                rows: tuple[tuple[bytes | None, ...], ...] = ()
                if sql.startswith("select") and "mfa_challenges c join" in sql:
                    challenge = {
                        "id": CHALLENGE_ID,
                        "created_at": "2024-06-01T11:59:30+00:00",
                        "verified_at": None,
                        "ip_address": "127.0.0.1",
                    }
                    rows = ((json.dumps(challenge).encode(), TOTP_SECRET.encode()),)
                elif sql.startswith("select (select count(*)"):
                    rows = ((b"0", b"[]"),)
                elif sql.startswith("select jsonb_build_object(\n  'user'") and "'session'" in sql:
                    rows = ((user_row([factor_row()]), session_row()),)
                elif sql.startswith("select jsonb_build_object(\n  'user'"):
                    rows = ((user_row([factor_row()]),),)
                elif sql.startswith("select jsonb_build_object(\n  'session'"):
                    rows = ((session_row("aal2", ("password", "totp")),),)
                out.append(DbResult(rows=rows, command="OK"))
            return out
    return False


def answer_plausibly(method: str, path: str, body: bytes, token: str) -> int:
    request = make_request(method, path, raw=body, token=token)
    flow = auth_flow(request, path.split("?", 1)[0], SETTINGS, now=NOW)
    result: object = None
    try:
        while True:
            result = plausible(flow.send(result))
    except StopIteration as stop:
        response = stop.value
    assert response.status < 500, (response.status, response.body)
    if response.status >= 400:
        assert isinstance(json.loads(response.body)["code"], str)
    return response.status


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
admin_fields = st.sampled_from(
    [
        "email",
        "phone",
        "password",
        "password_hash",
        "id",
        "aud",
        "role",
        "email_confirm",
        "phone_confirm",
        "user_metadata",
        "app_metadata",
        "ban_duration",
        "should_soft_delete",
        "friendly_name",
    ]
)
factor_fields = st.sampled_from(
    ["factor_type", "friendly_name", "issuer", "phone", "challenge_id", "code", "channel"]
)
admin_routes = st.sampled_from(
    [
        ("POST", "/admin/users"),
        ("PUT", f"/admin/users/{USER_ID}"),
        ("DELETE", f"/admin/users/{USER_ID}"),
        ("PUT", f"/admin/users/{USER_ID}/factors/{FACTOR_ID}"),
    ]
)
factor_routes = st.sampled_from(
    [
        ("POST", "/factors"),
        ("POST", f"/factors/{FACTOR_ID}/challenge"),
        ("POST", f"/factors/{FACTOR_ID}/verify"),
        ("DELETE", f"/factors/{FACTOR_ID}"),
    ]
)
bodies = st.one_of(
    st.binary(max_size=40),
    st.dictionaries(admin_fields | factor_fields, json_values, max_size=5).map(
        lambda d: json.dumps(d).encode()
    ),
)


@settings(max_examples=150)
@given(admin_routes, bodies)
def test_admin_routes_answer_any_body(route: tuple[str, str], body: bytes) -> None:
    answer_plausibly(*route, body, service_token())


@settings(max_examples=150)
@given(factor_routes, bodies)
def test_factor_routes_answer_any_body(route: tuple[str, str], body: bytes) -> None:
    answer_plausibly(*route, body, access_token())


def test_plausible_runtime_serves_the_happy_paths() -> None:
    assert answer_plausibly("GET", "/admin/users?page=2&per_page=5", b"", service_token()) == 200
    assert answer_plausibly("POST", "/admin/users", b'{"email":"a@b.co"}', service_token()) == 200
    assert (
        answer_plausibly(
            "POST", "/factors", b'{"factor_type":"totp","friendly_name":"n"}', access_token()
        )
        == 200
    )
    code = totp_at(b"12345678901234567890", NOW).encode()
    verify_body = b'{"challenge_id":"%s","code":"%s"}' % (CHALLENGE_ID.encode(), code)
    assert (
        answer_plausibly("POST", f"/factors/{FACTOR_ID}/verify", verify_body, access_token()) == 200
    )


@given(st.text(max_size=30), st.text(max_size=30))
def test_admin_paths_and_queries_never_fail(segment: str, query: str) -> None:
    answer_plausibly("GET", f"/admin/users/{quote(segment)}/factors", b"", service_token())
    answer_plausibly("GET", f"/admin/users?{quote(query, safe='=&')}", b"", service_token())
