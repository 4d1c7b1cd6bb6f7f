"""The project's one verifier: API key and bearer token over one verification set."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from madbase.protocol.identity import (
    ApiKeyError,
    KeyKind,
    Principal,
    SigningKey,
    SigningKeys,
    UnverifiableToken,
    Verifier,
    mint_api_key,
)
from madbase.protocol.identity import signing as signing_module
from tests.strategies import NOW, NOW_TS, SECRET

ANON_KEY = mint_api_key(SECRET, "anon", issued_at=NOW_TS - 60)
OLD_SECRET = "the-previous-secret-of-this-project-32+chars"
NEW_SECRET = "the-next-secret-of-this-project-at-least-32"


class CountingJws:
    """pyjwt's signature check, counted."""

    def __init__(self, real: jwt.PyJWS) -> None:
        self.real = real
        self.calls = 0

    def decode(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.real.decode(*args, **kwargs)


@pytest.fixture
def jws(monkeypatch: pytest.MonkeyPatch) -> CountingJws:
    counting = CountingJws(signing_module._JWS)
    monkeypatch.setattr(signing_module, "_JWS", counting)
    return counting


def user_token(secret: str = SECRET, **header: str) -> str:
    claims = {"role": "authenticated", "sub": "u-1", "exp": NOW_TS + 3600}
    return jwt.encode(claims, secret, algorithm="HS256", headers=header or None)


def test_verifier_checks_a_key_sent_as_both_credentials_once(jws: CountingJws) -> None:
    verifier = Verifier(SECRET)
    for _ in range(3):
        key = verifier.api_key(ANON_KEY, now=NOW)
        identity = verifier.identify(f"Bearer {ANON_KEY}", now=NOW)
        assert key.role == "anon"
        assert key.kind is KeyKind.LEGACY
        assert isinstance(identity, Principal)
        assert identity.role == "anon"
    assert jws.calls == 1


def test_verifier_checks_each_distinct_token_once(jws: CountingJws) -> None:
    verifier = Verifier(SECRET)
    token = user_token()
    for _ in range(3):
        verifier.api_key(ANON_KEY, now=NOW)
        identity = verifier.identify(f"Bearer {token}", now=NOW)
        assert isinstance(identity, Principal)
        assert identity.subject == "u-1"
    assert jws.calls == 2


def test_verifier_identify_returns_the_refusal_instead_of_raising() -> None:
    refused = Verifier(SECRET).identify(f"Bearer {user_token(OLD_SECRET)}", now=NOW)
    assert isinstance(refused, UnverifiableToken)
    assert refused.message == "JWSError JWSInvalidSignature"


def test_verifier_hs512_bearer_verified_is_still_no_api_key() -> None:
    token = jwt.encode({"role": "anon", "exp": NOW_TS + 60}, SECRET + SECRET, algorithm="HS512")
    verifier = Verifier(SECRET + SECRET)
    assert isinstance(verifier.identify(f"Bearer {token}", now=NOW), Principal)
    with pytest.raises(ApiKeyError, match="unsupported signing algorithm"):
        verifier.api_key(token, now=NOW)  # the remembered signature does not widen HS256-only


def test_signing_keys_without_kid_try_each_key_in_order() -> None:
    # A rotation's grace window: tokens signed with the previous secret still verify.
    keys = SigningKeys((SigningKey(secret=NEW_SECRET), SigningKey(secret=OLD_SECRET)))
    verifier = Verifier(keys)
    for secret in (NEW_SECRET, OLD_SECRET):
        assert isinstance(verifier.identify(f"Bearer {user_token(secret)}", now=NOW), Principal)
    assert isinstance(verifier.identify(f"Bearer {user_token(SECRET)}", now=NOW), UnverifiableToken)


def test_signing_keys_kid_picks_its_key_only() -> None:
    keys = SigningKeys(
        (SigningKey(secret=NEW_SECRET, key_id="new"), SigningKey(secret=OLD_SECRET, key_id="old"))
    )
    verifier = Verifier(keys)
    assert isinstance(
        verifier.identify(f"Bearer {user_token(OLD_SECRET, kid='old')}", now=NOW), Principal
    )
    wrong = verifier.identify(f"Bearer {user_token(OLD_SECRET, kid='new')}", now=NOW)
    assert isinstance(wrong, UnverifiableToken)
    assert wrong.message == "JWSError JWSInvalidSignature"
    unknown = verifier.identify(f"Bearer {user_token(OLD_SECRET, kid='gone')}", now=NOW)
    assert isinstance(unknown, UnverifiableToken)
    assert unknown.message == "No suitable key or wrong key type"


def test_signing_keys_legacy_secret_ignores_a_kid() -> None:
    # The legacy secret has no id: a token naming one is checked with it, as before.
    assert isinstance(
        Verifier(SECRET).identify(f"Bearer {user_token(SECRET, kid='x')}", now=NOW), Principal
    )


def test_signing_keys_forget_everything_when_full(jws: CountingJws) -> None:
    keys = SigningKeys.hs256(SECRET)
    keys = SigningKeys(keys.keys, max_entries=1)
    first, second = user_token(), ANON_KEY
    for token in (first, second, first):
        keys.verify(token)
    assert jws.calls == 3


def test_verifier_shares_roles_and_audience_with_both_checks() -> None:
    verifier = Verifier(SECRET, roles=frozenset({"anon"}), audience="me")
    assert verifier.roles == frozenset({"anon"})
    assert verifier.audience == "me"
    assert verifier.bearer.roles == frozenset({"anon"})
    refused = verifier.identify(f"Bearer {user_token()}", now=NOW)
    assert not isinstance(refused, Principal)
    assert refused.message == 'permission denied to set role "authenticated"'


def test_signing_keys_payload_that_is_not_base64_is_malformed() -> None:
    header = "eyJhbGciOiJIUzI1NiJ9"  # {"alg":"HS256"}
    with pytest.raises(signing_module.SignatureError) as caught:
        SigningKeys.hs256(SECRET).verify(f"{header}.!!!.c2ln")
    assert caught.value.malformed
    refused = Verifier(SECRET).identify(f"Bearer {header}.!!!.c2ln", now=NOW)
    assert isinstance(refused, UnverifiableToken)
    assert refused.message == "JWSError (CompactDecodeError Invalid number of parts)"
