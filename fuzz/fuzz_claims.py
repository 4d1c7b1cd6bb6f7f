"""Fuzz a JWT's claims: any payload is accepted or refused with `ClaimsError`, nothing else.

Accepted claims name an allowed role and hold only what Postgres takes as JSON (no NaN, no
infinity), since they become `request.jwt.claims`.

    pip install atheris
    python fuzz/fuzz_claims.py fuzz/corpus/claims
"""

from __future__ import annotations

import json
import sys

from madbase.protocol.identity.claims import (
    DEFAULT_TOKEN_ROLES,
    ClaimsError,
    check_claims,
    parse_claims,
)


def test_one_input(data: bytes) -> None:
    """Parse and check the payload in `data`; only `ClaimsError` may escape."""
    try:
        claims = parse_claims(data)
        checked = check_claims(
            claims, default_role="anon", roles=DEFAULT_TOKEN_ROLES, audience="authenticated"
        )
    except ClaimsError:
        return
    assert checked.role in DEFAULT_TOKEN_ROLES, checked
    json.dumps(claims, allow_nan=False)  # raises ValueError on NaN or infinity


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
