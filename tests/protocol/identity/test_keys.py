"""Project API keys: minting, and verifying signature, algorithm, role and dates against `now`."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone

import jwt
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from madbase.protocol.identity import (
    API_KEY_ROLES,
    ApiKeyClaims,
    ApiKeyError,
    ApiKeyVerifier,
    mint_api_key,
    verify_api_key,
)
from madbase.protocol.identity.keys import API_KEY_LIFETIME_SECONDS, CLOCK_SKEW_SECONDS
from tests.strategies import (
    NOW,
    NOW_TS,
    SECRET,
    api_key_roles,
    forge_jwt,
    forged_tokens,
    issue_times,
    jwt_secrets,
    sign_raw_jwt,
)

OTHER_SECRET = "another-secret-that-is-at-least-32-chars"
T = 1_700_000_000
TEN_YEARS = 10 * 365 * 24 * 3600


def at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def verify(token: str, *, now: datetime = NOW, secret: str = SECRET) -> ApiKeyClaims:
    return verify_api_key(token, secret, now=now)


def refused(token: str, *, now: datetime = NOW, secret: str = SECRET) -> str:
    """The reason `token` is refused."""
    with pytest.raises(ApiKeyError) as info:
        verify(token, now=now, secret=secret)
    return str(info.value)


# --- minting --------------------------------------------------------------------------------


def test_mint_api_key_is_deterministic() -> None:
    assert mint_api_key(SECRET, "anon", issued_at=T) == mint_api_key(SECRET, "anon", issued_at=T)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((SECRET, "anon", T, "madbase"), (SECRET, "anon", T + 1, "madbase")),
        ((SECRET, "anon", T, "madbase"), (SECRET, "service_role", T, "madbase")),
        ((SECRET, "anon", T, "madbase"), (OTHER_SECRET, "anon", T, "madbase")),
        ((SECRET, "anon", T, "madbase"), (SECRET, "anon", T, "other")),
    ],
)
def test_mint_api_key_differs_with_any_input(
    a: tuple[str, str, int, str], b: tuple[str, str, int, str]
) -> None:
    def mint(args: tuple[str, str, int, str]) -> str:
        secret, role, issued_at, ref = args
        return mint_api_key(secret, role, issued_at=issued_at, ref=ref)

    assert mint(a) != mint(b)


@pytest.mark.parametrize("role", sorted(API_KEY_ROLES))
def test_mint_api_key_carries_supabase_claims(role: str) -> None:
    key = mint_api_key(SECRET, role, issued_at=T)
    assert jwt.get_unverified_header(key) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(key, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {
        "iss": "supabase",
        "ref": "madbase",
        "role": role,
        "iat": T,
        "exp": T + TEN_YEARS,
    }
    assert API_KEY_LIFETIME_SECONDS == TEN_YEARS


def test_mint_api_key_uses_given_ref() -> None:
    key = mint_api_key(SECRET, "anon", issued_at=T, ref="abcdefghijklmnopqrst")
    claims = jwt.decode(key, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["ref"] == "abcdefghijklmnopqrst"


# --- verification: accepted -----------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(API_KEY_ROLES))
def test_verify_api_key_returns_claims(role: str) -> None:
    key = mint_api_key(SECRET, role, issued_at=T)
    assert verify(key, now=at(T + 60)) == ApiKeyClaims(
        role=role, issued_at=T, expires_at=T + TEN_YEARS
    )


def test_verify_api_key_accepts_pyjwt_keys_from_supabase() -> None:
    # A key as Supabase's dashboard issues it: extra claims and no `typ` are fine.
    token = jwt.encode(
        {"iss": "supabase", "ref": "xyz", "role": "anon", "iat": T, "exp": T + 100, "extra": [1]},
        SECRET,
        algorithm="HS256",
        headers={"typ": None},
    )
    assert verify(token, now=at(T)).role == "anon"


def test_verify_api_key_refuses_a_key_without_exp() -> None:
    token = forge_jwt({"alg": "HS256"}, {"role": "service_role"})
    assert refused(token, now=at(0)) == "claim exp is missing"
    token = forge_jwt({"alg": "HS256"}, {"role": "service_role", "exp": None})
    assert refused(token, now=at(0)) == "claim exp is missing"


def test_verify_api_key_returns_all_time_claims() -> None:
    token = forge_jwt({"alg": "HS256"}, {"role": "anon", "exp": T + 10, "nbf": T - 5, "iat": T})
    assert verify(token, now=at(T)) == ApiKeyClaims(
        role="anon", issued_at=T, expires_at=T + 10, not_before=T - 5
    )


def test_verifier_remembers_valid_keys_but_checks_dates_every_time() -> None:
    verifier = ApiKeyVerifier(SECRET, max_entries=2)
    token = forge_jwt({"alg": "HS256"}, {"role": "anon", "exp": T + 100})
    assert verifier.verify(token, now=at(T)).role == "anon"
    assert verifier.verify(token, now=at(T + 100)).role == "anon"
    with pytest.raises(ApiKeyError, match="expired"):
        verifier.verify(token, now=at(T + 1000))


def test_verifier_never_remembers_refused_keys_and_stays_bounded() -> None:
    verifier = ApiKeyVerifier(SECRET, max_entries=2)
    forged = forge_jwt({"alg": "HS256"}, {"role": "anon", "exp": T + 100}, secret="x" * 40)
    for _ in range(2):
        with pytest.raises(ApiKeyError, match="invalid signature"):
            verifier.verify(forged, now=at(T))
    tokens = [forge_jwt({"alg": "HS256"}, {"role": "anon", "exp": T + i}) for i in range(100, 105)]
    for token in tokens:
        assert verifier.verify(token, now=at(T)).expires_at > T
    assert len(verifier._known) <= 2
    # a key checked with another secret is not accepted from memory by this verifier
    other = ApiKeyVerifier("y" * 40)
    with pytest.raises(ApiKeyError):
        other.verify(tokens[-1], now=at(T))


@pytest.mark.parametrize(
    ("claim", "offset", "ok"),
    [
        # now - exp: accepted up to the skew past expiry.
        ("exp", 0, True),
        ("exp", CLOCK_SKEW_SECONDS, True),
        ("exp", CLOCK_SKEW_SECONDS + 1, False),
        ("exp", 3600, False),
        # now - nbf: accepted from the skew before it.
        ("nbf", 0, True),
        ("nbf", -CLOCK_SKEW_SECONDS, True),
        ("nbf", -CLOCK_SKEW_SECONDS - 1, False),
        ("nbf", -3600, False),
        # now - iat: a key issued slightly in the future (clock skew) is fine.
        ("iat", 0, True),
        ("iat", -CLOCK_SKEW_SECONDS, True),
        ("iat", -CLOCK_SKEW_SECONDS - 1, False),
    ],
)
def test_verify_api_key_time_claims_allow_skew(claim: str, offset: int, ok: bool) -> None:
    claims: dict[str, object] = {"role": "anon", "exp": T + 10**6, claim: T}
    token = forge_jwt({"alg": "HS256", "typ": "JWT"}, claims)
    now = at(T + offset)
    if ok:
        assert verify(token, now=now).role == "anon"
    else:
        reason = refused(token, now=now)
        assert (
            reason
            == {"exp": "expired", "nbf": "not yet valid", "iat": "issued in the future"}[claim]
        )


def test_verify_api_key_minted_key_expires_after_ten_years() -> None:
    key = mint_api_key(SECRET, "anon", issued_at=T)
    assert verify(key, now=at(T + TEN_YEARS + CLOCK_SKEW_SECONDS)).role == "anon"
    assert refused(key, now=at(T + TEN_YEARS + CLOCK_SKEW_SECONDS + 1)) == "expired"


def test_verify_api_key_compares_aware_now_in_any_zone() -> None:
    key = mint_api_key(SECRET, "anon", issued_at=T)
    tokyo = timezone(timedelta(hours=9))
    assert verify(key, now=at(T).astimezone(tokyo)).role == "anon"
    assert refused(key, now=at(T - 3600).astimezone(tokyo)) == "issued in the future"


# --- verification: refused ------------------------------------------------------------------


def test_verify_api_key_refuses_wrong_secret() -> None:
    key = mint_api_key(OTHER_SECRET, "anon", issued_at=NOW_TS)
    assert refused(key) == "invalid signature"


def test_verify_api_key_refuses_tampered_payload() -> None:
    key = mint_api_key(SECRET, "anon", issued_at=NOW_TS)
    header, _, sig = key.split(".")
    other_payload = mint_api_key(SECRET, "service_role", issued_at=NOW_TS).split(".")[1]
    assert refused(f"{header}.{other_payload}.{sig}") == "invalid signature"


ANON_CLAIMS = {"role": "anon", "iat": NOW_TS, "exp": NOW_TS + 3600}


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(
            forge_jwt({"alg": "none", "typ": "JWT"}, ANON_CLAIMS).rsplit(".", 1)[0] + ".",
            id="alg-none",
        ),
        pytest.param(forge_jwt({"alg": "none"}, ANON_CLAIMS), id="alg-none-signed"),
        pytest.param(jwt.encode(ANON_CLAIMS, SECRET + SECRET, algorithm="HS512"), id="hs512"),
        pytest.param(jwt.encode(ANON_CLAIMS, SECRET, algorithm="HS384"), id="hs384"),
        pytest.param(forge_jwt({"alg": "RS256", "typ": "JWT"}, ANON_CLAIMS), id="rs256-header"),
        pytest.param(forge_jwt({"alg": "hs256"}, ANON_CLAIMS), id="lower-case-alg"),
        pytest.param(forge_jwt({"typ": "JWT"}, ANON_CLAIMS), id="no-alg"),
    ],
)
def test_verify_api_key_refuses_other_algorithms(token: str) -> None:
    assert refused(token) == "unsupported signing algorithm"


@pytest.mark.parametrize(
    "claims",
    [
        {"role": "authenticated"},
        {"role": "ANON"},
        {"role": "postgres"},
        {"role": ""},
        {"role": None},
        {"role": ["anon"]},
        {},
        {"sub": "user-id", "role": "authenticated", "aud": "authenticated"},
    ],
)
def test_verify_api_key_refuses_non_api_key_roles(claims: dict[str, object]) -> None:
    assert refused(forge_jwt({"alg": "HS256"}, claims)) == "not an API key role"


def test_verify_api_key_refuses_minted_authenticated_role() -> None:
    assert refused(mint_api_key(SECRET, "authenticated", issued_at=NOW_TS)) == "not an API key role"


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "value", [str(NOW_TS + 10), float(NOW_TS), True, False, [NOW_TS], {"t": 1}]
)
def test_verify_api_key_refuses_non_integer_time_claims(claim: str, value: object) -> None:
    token = forge_jwt({"alg": "HS256"}, {"role": "anon", claim: value})
    assert refused(token) == f"claim {claim} is not an integer"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c",
        "....",
        " ",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9.",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        "é.é.é",
        "\x00.\x00.\x00",
        "\ud800",  # a lone surrogate: cannot be UTF-8 encoded
        "eyJhbGciOiJIUzI1NiJ9.\udcff.x",
        pytest.param(forge_jwt({"alg": "HS256"}, ["anon"]), id="payload-is-a-list"),
        pytest.param(forge_jwt({"alg": "HS256"}, "anon"), id="payload-is-a-string"),
        pytest.param(forge_jwt(["HS256"], {"role": "anon"}), id="header-is-a-list"),
        pytest.param(
            forge_jwt({"alg": "HS256", "crit": ["x"]}, {"role": "anon"}), id="unknown-crit"
        ),
    ],
)
def test_verify_api_key_refuses_malformed_tokens(token: str) -> None:
    refused(token)


# --- properties -----------------------------------------------------------------------------


@given(st.text(alphabet=st.characters(codec=None), max_size=300))
@example("\ud800")
@example("a.b.c")
def test_verify_api_key_on_any_text_raises_only_api_key_error(token: str) -> None:
    with contextlib.suppress(ApiKeyError):  # the only failure allowed
        verify(token)


@given(forged_tokens())
@example(forge_jwt({"alg": "HS256"}, {"role": ["anon"]}))
@example(forge_jwt({"alg": "HS256"}, {"role": {"anon": 1}}))
def test_verify_api_key_on_forged_claims_checks_every_rule(token: str) -> None:
    try:
        claims = verify(token)
    except ApiKeyError:
        return
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert claims.role in API_KEY_ROLES
    for stamp in (claims.expires_at, claims.issued_at):
        assert stamp is None or (isinstance(stamp, int) and not isinstance(stamp, bool))
    if claims.expires_at is not None:
        assert claims.expires_at + CLOCK_SKEW_SECONDS >= NOW_TS
    if claims.issued_at is not None:
        assert claims.issued_at - CLOCK_SKEW_SECONDS <= NOW_TS


@given(jwt_secrets, api_key_roles, issue_times)
def test_verify_api_key_round_trips_minted_keys(secret: str, role: str, issued_at: int) -> None:
    key = mint_api_key(secret, role, issued_at=issued_at)
    assert verify_api_key(key, secret, now=at(issued_at)) == ApiKeyClaims(
        role=role, issued_at=issued_at, expires_at=issued_at + API_KEY_LIFETIME_SECONDS
    )


@given(jwt_secrets, jwt_secrets, api_key_roles)
def test_verify_api_key_refuses_any_other_secret(secret: str, other: str, role: str) -> None:
    key = mint_api_key(secret, role, issued_at=NOW_TS)
    if secret.encode() != other.encode():
        assert refused(key, secret=other) == "invalid signature"


# --- the rules every project token meets ------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": 10**30}, "JWT expired"),
        ({"exp": 253_402_300_800}, "JWT expired"),
        ({"aud": 5}, "The JWT 'aud' claim must be a string or an array of strings"),
        ({"aud": ["x", 3]}, "The JWT 'aud' claim must be a string or an array of strings"),
        ({"sub": 5}, "The JWT 'sub' claim must be a string"),
    ],
)
def test_verify_api_key_claims_meet_the_token_rules(claims: dict[str, object], reason: str) -> None:
    token = forge_jwt({"alg": "HS256"}, {"role": "anon", "exp": NOW_TS + 60, **claims})
    assert refused(token) == reason


@pytest.mark.parametrize("payload", ['{"role":"anon","exp":NaN}', '{"role":"anon","exp":1e309}'])
def test_verify_api_key_refuses_claims_that_are_not_json(payload: str) -> None:
    assert refused(sign_raw_jwt(b'{"alg":"HS256"}', payload.encode())) == "malformed claims"


def test_verifier_key_role_must_be_one_the_authenticator_may_switch_to() -> None:
    key = mint_api_key(SECRET, "service_role", issued_at=NOW_TS)
    only_anon = ApiKeyVerifier(SECRET, roles=frozenset({"anon", "authenticated"}))
    with pytest.raises(ApiKeyError, match='permission denied to set role "service_role"'):
        only_anon.verify(key, now=NOW)
    assert ApiKeyVerifier(SECRET).verify(key, now=NOW).role == "service_role"


def test_verifier_audience_applies_to_keys_that_carry_one() -> None:
    verifier = ApiKeyVerifier(SECRET, audience="app")
    assert verifier.verify(mint_api_key(SECRET, "anon", issued_at=NOW_TS), now=NOW).role == "anon"
    listed = forge_jwt({"alg": "HS256"}, {"role": "anon", "exp": NOW_TS + 60, "aud": ["app"]})
    assert verifier.verify(listed, now=NOW).role == "anon"
    other = forge_jwt({"alg": "HS256"}, {"role": "anon", "exp": NOW_TS + 60, "aud": "other"})
    with pytest.raises(ApiKeyError, match="JWT not in audience"):
        verifier.verify(other, now=NOW)
