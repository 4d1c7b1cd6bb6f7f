"""The claims every project token meets: strict JSON, types, roles, audience, and the role query."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from madbase.protocol.identity.claims import (
    DEFAULT_TOKEN_ROLES,
    LATEST_EXP,
    CheckedClaims,
    ClaimsError,
    check_claims,
    parse_claims,
    token_roles,
    token_roles_statement,
)
from madbase.protocol.sql import DbResult

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
claim_names = st.sampled_from(["role", "sub", "aud", "exp", "nbf", "iat", "x"])


def checked(claims: dict[str, object], audience: str | None = None) -> CheckedClaims:
    return check_claims(claims, default_role="anon", roles=DEFAULT_TOKEN_ROLES, audience=audience)


def refusal(claims: dict[str, object], audience: str | None = None) -> str:
    with pytest.raises(ClaimsError) as caught:
        checked(claims, audience)
    return caught.value.message


def test_parse_claims_is_strict_json() -> None:
    assert parse_claims(b'{"a":[1,2.5,"x",null,true]}') == {"a": [1, 2.5, "x", None, True]}
    for raw in (b'{"a":NaN}', b'{"a":-Infinity}', b'{"a":1e400}', b"[]", b"", b"\xff", b"{"):
        with pytest.raises(ClaimsError, match="Parsing claims failed"):
            parse_claims(raw)
    with pytest.raises(ClaimsError):
        parse_claims(b"[" * 100_000 + b"]" * 100_000)


def test_check_claims_keeps_role_subject_and_dates() -> None:
    result = checked({"role": "authenticated", "sub": "u", "exp": 2.5, "nbf": 1, "iat": -3})
    assert result == CheckedClaims(
        role="authenticated", subject="u", expires_at=2.5, not_before=1, issued_at=-3
    )
    assert checked({}).role == "anon"
    assert checked({"exp": LATEST_EXP}).expires_at == LATEST_EXP


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": LATEST_EXP + 1}, "JWT expired"),
        ({"exp": 1e300}, "JWT expired"),
        ({"exp": False}, "The JWT 'exp' claim must be a number"),
        ({"nbf": "1"}, "The JWT 'nbf' claim must be a number"),
        ({"iat": [1]}, "The JWT 'iat' claim must be a number"),
        ({"aud": 1}, "The JWT 'aud' claim must be a string or an array of strings"),
        ({"aud": [None]}, "The JWT 'aud' claim must be a string or an array of strings"),
        ({"role": {"r": 1}}, "The JWT 'role' claim must be a string"),
        ({"sub": ["u"]}, "The JWT 'sub' claim must be a string"),
        ({"role": "supabase_admin"}, 'permission denied to set role "supabase_admin"'),
    ],
)
def test_check_claims_refusals(claims: dict[str, object], message: str) -> None:
    assert refusal(claims) == message


def test_check_claims_audience_only_for_tokens_with_one() -> None:
    assert checked({"aud": "app"}, "app").role == "anon"
    assert checked({"aud": ["x", "app"]}, "app").role == "anon"
    assert checked({}, "app").role == "anon"
    assert checked({"aud": "other"}).role == "anon"  # no audience configured
    for aud in ("other", ["other"], []):
        assert refusal({"aud": aud}, "app") == "JWT not in audience"


def test_token_roles_from_the_database_answer() -> None:
    statement = token_roles_statement()
    assert "pg_has_role('authenticator', r.oid, 'MEMBER')" in statement.sql
    assert "current_user" not in statement.sql  # the pool may log in as someone else
    assert statement.params == ()
    answer = DbResult(rows=((b'["anon","authenticated","service_role"]',),), command="SELECT 1")
    assert token_roles(answer) == DEFAULT_TOKEN_ROLES
    assert token_roles(DbResult(rows=((b"[]",),), command="SELECT 1")) == frozenset()


@given(st.binary(max_size=200))
@example(b'{"role":"anon","exp":1e999}')
def test_parse_claims_gives_an_object_or_claims_error(raw: bytes) -> None:
    with contextlib.suppress(ClaimsError):
        assert isinstance(parse_claims(raw), dict)


@given(st.dictionaries(claim_names, json_values, max_size=6), st.none() | st.text(max_size=3))
def test_check_claims_accepts_only_allowed_roles_and_typed_claims(
    claims: dict[str, object], audience: str | None
) -> None:
    with contextlib.suppress(ClaimsError):
        result = checked(claims, audience)
        assert result.role in DEFAULT_TOKEN_ROLES
        assert result.subject is None or isinstance(result.subject, str)
        assert result.expires_at is None or result.expires_at <= LATEST_EXP
        json.dumps(claims, allow_nan=False)
