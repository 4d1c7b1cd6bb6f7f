"""Fuzz API-key verification: any token is accepted or refused with `ApiKeyError`, nothing else.

The input is decoded as UTF-8 with `surrogateescape`, so invalid bytes become lone surrogates and
reach the verifier as text that cannot be re-encoded.

    pip install atheris
    python fuzz/fuzz_api_key.py fuzz/corpus/api_key
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from madbase.protocol.identity import API_KEY_ROLES, ApiKeyError, verify_api_key

# The same fixed secret and clock as the seed keys in fuzz/corpus/ (and tests/strategies.py).
SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def test_one_input(data: bytes) -> None:
    """Verify the token in `data`; only `ApiKeyError` may escape, and only valid roles pass."""
    token = data.decode("utf-8", "surrogateescape")
    try:
        claims = verify_api_key(token, SECRET, now=NOW)
    except ApiKeyError:
        return
    assert claims.role in API_KEY_ROLES, claims


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
