"""TOTP math: RFC 4226/6238 vectors, skew window, base32 secrets and the otpauth URI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.auth.mfa.totp import (
    TOTP_PERIOD_SECONDS,
    decode_secret,
    encode_secret,
    hotp,
    otpauth_uri,
    totp_at,
    verify_totp,
)

RFC_SECRET = b"12345678901234567890"


@pytest.mark.parametrize(
    ("counter", "code"),
    [(0, "755224"), (1, "287082"), (2, "359152"), (3, "969429"), (4, "338314"), (9, "520489")],
)
def test_hotp_matches_rfc4226_appendix_d(counter: int, code: str) -> None:
    assert hotp(RFC_SECRET, counter) == code


@pytest.mark.parametrize(
    ("unix", "code"),
    [
        (59, "287082"),
        (1111111109, "081804"),
        (1111111111, "050471"),
        (1234567890, "005924"),
        (2000000000, "279037"),
        (20000000000, "353130"),
    ],
)
def test_totp_matches_rfc6238_appendix_b(unix: int, code: str) -> None:
    # RFC 6238 lists 8 digits; the 6-digit code is their last six.
    now = datetime.fromtimestamp(unix, UTC)
    assert totp_at(RFC_SECRET, now) == code
    assert verify_totp(code, encode_secret(RFC_SECRET), now=now)


secrets = st.binary(min_size=10, max_size=32)
instants = st.integers(min_value=1000, max_value=2**34).map(
    lambda s: datetime.fromtimestamp(s, UTC)
)


@given(secrets)
def test_secret_base32_round_trip(secret: bytes) -> None:
    text = encode_secret(secret)
    assert "=" not in text
    assert text == text.upper()
    assert decode_secret(text) == secret
    assert decode_secret(f"  {text.lower()} ") == secret


@given(secrets, instants, st.sampled_from([-1, 0, 1]))
def test_verify_accepts_one_step_of_skew(secret: bytes, now: datetime, steps: int) -> None:
    code = totp_at(secret, now + timedelta(seconds=steps * TOTP_PERIOD_SECONDS))
    assert verify_totp(code, encode_secret(secret), now=now)
    assert verify_totp(f" {code}\n", encode_secret(secret), now=now)


@given(secrets, instants, st.sampled_from([-3, -2, 2, 3]))
def test_verify_refuses_codes_outside_the_window(secret: bytes, now: datetime, steps: int) -> None:
    code = totp_at(secret, now + timedelta(seconds=steps * TOTP_PERIOD_SECONDS))
    window = {totp_at(secret, now + timedelta(seconds=d * TOTP_PERIOD_SECONDS)) for d in (-1, 0, 1)}
    assert verify_totp(code, encode_secret(secret), now=now) is (code in window)


@given(st.text(max_size=12), st.text(max_size=40), instants)
def test_verify_is_total(code: str, secret: str, now: datetime) -> None:
    result = verify_totp(code, secret, now=now)
    assert isinstance(result, bool)
    if len(code.strip()) != 6:
        assert result is False


def test_verify_refuses_wrong_lengths_and_non_base32() -> None:
    now = datetime.fromtimestamp(59, UTC)
    good = encode_secret(RFC_SECRET)
    assert not verify_totp("28708", good, now=now)
    assert not verify_totp("2870820", good, now=now)
    assert not verify_totp("287082", "not base32!", now=now)


def test_otpauth_uri_as_pquerna_writes_it() -> None:
    uri = otpauth_uri(issuer="localhost:3000", account="a b@example.com", secret="ABCD")
    assert uri == (
        "otpauth://totp/localhost:3000:a%20b@example.com"
        "?algorithm=SHA1&digits=6&issuer=localhost%3A3000&period=30&secret=ABCD"
    )


@given(
    st.text(min_size=1, max_size=30).filter(lambda s: ":" not in s),
    st.text(min_size=1, max_size=40),
    secrets,
)
def test_otpauth_uri_parses_back(issuer: str, account: str, secret: bytes) -> None:
    encoded = encode_secret(secret)
    uri = otpauth_uri(issuer=issuer, account=account, secret=encoded)
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == f"/{issuer}:{account}"
    query = parse_qs(parts.query, keep_blank_values=True)
    assert query == {
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "issuer": [issuer],
        "period": ["30"],
        "secret": [encoded],
    }
