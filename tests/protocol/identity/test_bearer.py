"""Bearer tokens -> database role and claims, as PostgREST decides them."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from datetime import UTC, datetime

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.identity import (
    BearerError,
    BearerVerifier,
    InvalidClaims,
    Principal,
    UnverifiableToken,
    verify_bearer,
)
from tests.strategies import SECRET, forge_jwt, sign_raw_jwt

T = 1_800_000_000
AUD_TYPE = "The JWT 'aud' claim must be a string or an array of strings"


def at(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


def bearer(claims: dict[str, object], *, secret: str = SECRET, alg: str = "HS256") -> str:
    return "Bearer " + jwt.encode(claims, secret, algorithm=alg)


def refused(authorization: str, **kwargs: object) -> tuple[str, str]:
    with pytest.raises(BearerError) as caught:
        verify_bearer(authorization, SECRET, now=at(T), **kwargs)  # type: ignore[arg-type]
    # PostgREST's code for each kind of refusal (`madbase.protocol.rest.token_error`).
    code = "PGRST303" if isinstance(caught.value, InvalidClaims) else "PGRST301"
    assert isinstance(caught.value, InvalidClaims | UnverifiableToken)
    return code, caught.value.message


@pytest.mark.parametrize("header", [None, "", "   "])
def test_bearer_absent_is_the_anonymous_role(header: str | None) -> None:
    auth = verify_bearer(header, SECRET, now=at(T))
    assert auth == Principal(role="anon", claims_json='{"role":"anon"}')
    custom = verify_bearer(header, SECRET, now=at(T), anon_role="web_anon")
    assert custom.role == "web_anon"
    assert json.loads(custom.claims_json) == {"role": "web_anon"}


def test_bearer_user_token_gives_role_claims_and_subject() -> None:
    claims = {
        "sub": "8d7f1b0e-0000-4000-8000-000000000001",
        "role": "authenticated",
        "email": "ann@example.com",
        "exp": T + 3600,
        "iat": T,
        "app_metadata": {"provider": "email"},
    }
    auth = verify_bearer(bearer(claims), SECRET, now=at(T))
    assert auth.role == "authenticated"
    assert auth.subject == claims["sub"]
    assert json.loads(auth.claims_json) == claims


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    token = jwt.encode({"role": "service_role", "exp": T + 10}, SECRET, algorithm="HS256")
    assert verify_bearer(f"{scheme} {token}", SECRET, now=at(T)).role == "service_role"


def test_bearer_without_role_claim_is_anonymous_role_with_claims() -> None:
    auth = verify_bearer(bearer({"sub": "x", "exp": T + 10}), SECRET, now=at(T))
    assert auth.role == "anon"
    assert json.loads(auth.claims_json) == {"sub": "x", "exp": T + 10, "role": "anon"}


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_bearer_accepts_every_hmac_algorithm(alg: str) -> None:
    secret = SECRET * 2  # long enough for HS512
    auth = verify_bearer(
        bearer({"role": "authenticated"}, secret=secret, alg=alg), secret, now=at(T)
    )
    assert auth.role == "authenticated"


@pytest.mark.parametrize(
    ("authorization", "code", "message"),
    [
        ("Basic dXNlcjpwYXNz", "PGRST301", "No suitable key or wrong key type"),
        ("Bearer ", "PGRST301", "Empty JWT is sent in Authorization header"),
        ("Bearer a.b", "PGRST301", "Expected 3 parts in JWT; got 2"),
        ("Bearer a.b.c.d", "PGRST301", "Expected 3 parts in JWT; got 4"),
        ("Bearer x.y.z", "PGRST301", "JWSError (CompactDecodeError Invalid number of parts)"),
        ("Bearer é.b.c", "PGRST301", "Empty JWT is sent in Authorization header"),
    ],
)
def test_bearer_malformed_tokens_are_refused(authorization: str, code: str, message: str) -> None:
    assert refused(authorization) == (code, message)


def test_bearer_wrong_secret_and_alg_none_are_refused() -> None:
    assert refused(bearer({"role": "service_role"}, secret="x" * 40)) == (
        "PGRST301",
        "JWSError JWSInvalidSignature",
    )
    none_token = forge_jwt({"alg": "none", "typ": "JWT"}, {"role": "service_role"})
    assert refused("Bearer " + none_token)[0] == "PGRST301"
    rs = forge_jwt({"alg": "RS256"}, {"role": "service_role"})
    assert refused("Bearer " + rs) == ("PGRST301", "No suitable key or wrong key type")


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"role": "authenticated", "exp": T - 31}, "JWT expired"),
        ({"role": "authenticated", "nbf": T + 31}, "JWT not yet valid"),
        ({"role": "authenticated", "iat": T + 31}, "JWT issued at future"),
        ({"role": "authenticated", "exp": "tomorrow"}, "The JWT 'exp' claim must be a number"),
        ({"role": "authenticated", "exp": True}, "The JWT 'exp' claim must be a number"),
        ({"role": "authenticated", "nbf": [T]}, "The JWT 'nbf' claim must be a number"),
        ({"role": "authenticated", "iat": {"t": T}}, "The JWT 'iat' claim must be a number"),
        # No forever tokens: PostgREST reads an exp beyond its range as 0, expired.
        ({"role": "authenticated", "exp": 1e300}, "JWT expired"),
        ({"role": "authenticated", "exp": 10**30}, "JWT expired"),
        ({"role": "authenticated", "exp": 253_402_300_800}, "JWT expired"),
        ({"role": "authenticated", "aud": 5}, AUD_TYPE),
        ({"role": "authenticated", "aud": ["x", 3]}, AUD_TYPE),
        ({"role": "authenticated", "aud": {"x": 1}}, AUD_TYPE),
        ({"role": ["authenticated"]}, "The JWT 'role' claim must be a string"),
        ({"role": None}, "The JWT 'role' claim must be a string"),
        ({"role": "authenticated", "sub": 5}, "The JWT 'sub' claim must be a string"),
        ({"role": ""}, 'permission denied to set role ""'),
        ({"role": "postgres"}, 'permission denied to set role "postgres"'),
        ({"role": "authenticator"}, 'permission denied to set role "authenticator"'),
        ({"role": "pg_read_server_files"}, 'permission denied to set role "pg_read_server_files"'),
    ],
)
def test_bearer_invalid_claims_are_pgrst303(claims: dict[str, object], message: str) -> None:
    assert refused("Bearer " + forge_jwt({"alg": "HS256"}, claims)) == ("PGRST303", message)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"role":"anon","exp":NaN}',
        b'{"role":"anon","exp":Infinity}',
        b'{"role":"anon","nbf":-Infinity}',
        b'{"role":"anon","exp":1e309}',
        b'{"role":"anon","x":{"y":[1e999]}}',
        b'{"role":"anon"',
        b"[]",
        b"\xff",
    ],
)
def test_bearer_claims_that_are_not_json_are_refused(payload: bytes) -> None:
    # Python's parser takes NaN and Infinity and reads 1e309 as infinity; Postgres takes neither.
    token = "Bearer " + sign_raw_jwt(b'{"alg":"HS256"}', payload)
    assert refused(token) == ("PGRST303", "Parsing claims failed")


def test_bearer_roles_are_the_given_set() -> None:
    custom = frozenset({"anon", "web_user"})
    token = bearer({"role": "web_user"})
    assert verify_bearer(token, SECRET, now=at(T), roles=custom).role == "web_user"
    assert refused(token) == ("PGRST303", 'permission denied to set role "web_user"')
    assert refused(bearer({"role": "authenticated"}), roles=custom)[0] == "PGRST303"
    # Without a role claim the anonymous role applies, and it must be allowed too.
    assert refused(bearer({"sub": "x"}), roles=frozenset({"authenticated"})) == (
        "PGRST303",
        'permission denied to set role "anon"',
    )


def test_bearer_dates_allow_thirty_seconds_of_skew() -> None:
    for claims in ({"exp": T - 30}, {"nbf": T + 30}, {"iat": T + 30}, {"exp": T - 29.5}):
        auth = verify_bearer(bearer({"role": "anon", **claims}), SECRET, now=at(T))
        assert auth.role == "anon"


def test_bearer_far_dates_are_numbers_like_any_other() -> None:
    assert refused(bearer({"role": "anon", "nbf": 1e300})) == ("PGRST303", "JWT not yet valid")
    assert refused(bearer({"role": "anon", "iat": 10**40})) == ("PGRST303", "JWT issued at future")
    old = verify_bearer(bearer({"role": "anon", "nbf": -1e300, "iat": 0}), SECRET, now=at(T))
    assert old.role == "anon"
    last = verify_bearer(bearer({"role": "anon", "exp": 253_402_300_799}), SECRET, now=at(T))
    assert last.expires_at == 253_402_300_799


def test_bearer_audience_checked_only_when_configured() -> None:
    token = bearer({"role": "authenticated", "aud": "authenticated"})
    assert verify_bearer(token, SECRET, now=at(T)).role == "authenticated"
    assert verify_bearer(token, SECRET, now=at(T), audience="authenticated").role == "authenticated"
    listed = bearer({"role": "authenticated", "aud": ["a", "authenticated"]})
    assert (
        verify_bearer(listed, SECRET, now=at(T), audience="authenticated").role == "authenticated"
    )
    assert refused(token, audience="other") == ("PGRST303", "JWT not in audience")
    assert refused(bearer({"role": "anon", "aud": []}), audience="other") == (
        "PGRST303",
        "JWT not in audience",
    )
    # PostgREST: a token without `aud` (the project's API keys) is in every audience.
    for claims in ({"role": "anon"}, {"role": "anon", "aud": None}):
        assert verify_bearer(bearer(claims), SECRET, now=at(T), audience="other").role == "anon"


def test_verifier_caches_signatures_but_checks_dates_each_time() -> None:
    verifier = BearerVerifier(SECRET, max_entries=2)
    token = bearer({"role": "authenticated", "exp": T + 100})
    first = verifier.verify(token, now=at(T))
    assert verifier.verify(token, now=at(T + 50)) is first
    with pytest.raises(BearerError, match="JWT expired"):
        verifier.verify(token, now=at(T + 1000))
    forged = bearer({"role": "service_role"}, secret="z" * 40)
    for _ in range(2):
        with pytest.raises(BearerError, match="JWSInvalidSignature"):
            verifier.verify(forged, now=at(T))
    for i in range(5):
        verifier.verify(bearer({"role": "authenticated", "n": i}), now=at(T))
    assert len(verifier._known) <= 2
    assert verifier.verify(None, now=at(T)).role == "anon"


def test_verifier_audience_applies_to_remembered_tokens() -> None:
    verifier = BearerVerifier(SECRET, audience="authenticated")
    with pytest.raises(BearerError, match="audience"):
        verifier.verify(bearer({"role": "authenticated", "aud": "x"}), now=at(T))
    good = bearer({"role": "authenticated", "aud": "authenticated"})
    assert verifier.verify(good, now=at(T)).role == "authenticated"
    assert verifier.verify(good, now=at(T)).role == "authenticated"


@given(st.text(max_size=300))
def test_bearer_any_header_gives_auth_or_bearer_error(header: str) -> None:
    with contextlib.suppress(BearerError):
        auth = verify_bearer(header, SECRET, now=at(T))
        assert json.loads(auth.claims_json)["role"] == auth.role


@given(
    st.dictionaries(
        st.text(max_size=10),
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        max_size=6,
    )
)
def test_bearer_signed_claims_of_any_shape_never_crash(claims: dict[str, object]) -> None:
    # Signed by hand: pyjwt's encoder refuses some shapes (a non-string `iss`) that a token
    # from elsewhere may still carry.
    def part(value: object) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = part({"alg": "HS256", "typ": "JWT"}) + "." + part(claims)
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    encoded = base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    token = f"Bearer {signing_input}.{encoded}"
    with contextlib.suppress(BearerError):
        auth = verify_bearer(token, SECRET, now=at(T))
        assert json.loads(auth.claims_json)["role"] == auth.role
