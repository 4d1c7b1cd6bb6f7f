"""Shared Hypothesis strategies: HTTP requests for the gateway, API keys and JWT secrets.

Fixed values (`SECRET`, `NOW`) live here too, so property tests and fuzz seeds agree on them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

from hypothesis import strategies as st

from madbase.protocol.http import Request
from madbase.protocol.identity import API_KEY_ROLES, mint_api_key

# Supabase's local-development secret: long enough for HS256 (RFC 7518 §3.2 asks for 32 bytes).
SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())

MOUNTS = ("/rest/v1", "/auth/v1", "/storage/v1", "/realtime/v1")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# The headers the gateway reads, plus a few it must ignore.
INTERESTING_HEADERS = (
    "apikey",
    "authorization",
    "origin",
    "access-control-request-method",
    "access-control-request-headers",
    "x-supabase-api-version",
    "x-request-id",
    "content-type",
)

# pyjwt refuses HMAC secrets that look like PEM or OpenSSH keys; ours are never shaped like that.
_SSH_KEY_PREFIXES = ("ssh-", "ecdsa-sha2-")

jwt_secrets = st.text(min_size=32, max_size=80).filter(
    lambda s: not s.startswith(_SSH_KEY_PREFIXES) and "-----BEGIN" not in s
)
api_key_roles = st.sampled_from(sorted(API_KEY_ROLES))
# Issue times from 2001 to 2100: API keys live ten years, so this stays far from year 9999.
issue_times = st.integers(min_value=1_000_000_000, max_value=4_102_444_800)


def forge_jwt(header: object, payload: object, secret: str = SECRET) -> str:
    """A JWT with any JSON header and payload, HMAC-SHA256-signed with `secret` whatever `alg` says."""
    return sign_raw_jwt(
        json.dumps(header, separators=(",", ":")).encode(),
        json.dumps(payload, separators=(",", ":")).encode(),
        secret,
    )


def sign_raw_jwt(header: bytes, payload: bytes, secret: str = SECRET) -> str:
    """A JWT whose header and payload are these bytes (JSON or not), HMAC-SHA256-signed."""

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(payload)}"
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(sig)}"


# Claim values of every JSON type, around `NOW`, so the time checks see in-range and odd values.
_claim_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=NOW_TS - 100_000, max_value=NOW_TS + 100_000),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    st.lists(st.sampled_from(["anon", 1]), max_size=2),
    st.dictionaries(st.sampled_from(["anon", "role"]), st.integers(), max_size=1),
)
_odd_headers = st.one_of(
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["HS256", "HS512", "RS256", "none", "hs256"])},
        optional={"typ": st.just("JWT"), "kid": st.text(max_size=5)},
    ),
    st.dictionaries(st.text(max_size=5), _claim_values, max_size=3),
    _claim_values,
)
_odd_payloads = st.one_of(
    st.dictionaries(
        st.sampled_from(["role", "exp", "nbf", "iat", "sub"]), _claim_values, max_size=4
    ),
    _claim_values,
)


@st.composite
def forged_tokens(draw: st.DrawFn) -> str:
    """A token signed with `SECRET` whose header and claims may be anything JSON allows.

    Each part is well formed half of the time (a coin flip: `one_of` would favour the many odd
    branches), so the role and time checks behind the signature check are reached often.
    """
    header = {"alg": "HS256", "typ": "JWT"} if draw(st.booleans()) else draw(_odd_headers)
    if draw(st.booleans()):
        role = (
            draw(st.sampled_from(sorted(API_KEY_ROLES)))
            if draw(st.booleans())
            else draw(_claim_values)
        )
        payload = {"role": role}
        for claim in ("exp", "nbf", "iat"):
            if draw(st.booleans()):
                payload[claim] = draw(
                    st.integers(min_value=NOW_TS - 100_000, max_value=NOW_TS + 100_000)
                    if draw(st.booleans())
                    else _claim_values
                )
    else:
        payload = draw(_odd_payloads)
    return forge_jwt(header, payload)


@st.composite
def valid_api_keys(draw: st.DrawFn) -> str:
    """A key minted with `SECRET`, valid at `NOW`."""
    role = draw(api_key_roles)
    issued_at = draw(st.integers(min_value=NOW_TS - 3600, max_value=NOW_TS))
    return mint_api_key(SECRET, role, issued_at=issued_at)


# Text with the characters parsers trip on: separators, percent signs, NUL, non-ASCII.
_tricky_chars = st.sampled_from(list("/?&=%#.,;: \t\x00\x7féü€🎉\u202e"))
tricky_text = st.text(alphabet=st.one_of(_tricky_chars, st.characters()), max_size=40)
latin1_text = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=60)

api_keys = st.one_of(
    valid_api_keys(),
    tricky_text,
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", tricky_text, tricky_text, tricky_text),
    st.just(""),
    st.just("  "),
)

methods = st.one_of(st.sampled_from(METHODS), st.text(max_size=10))

targets = st.one_of(
    tricky_text,
    st.builds(
        lambda prefix, rest: prefix + rest,
        st.sampled_from(
            (
                "",
                "/",
                "/health",
                "/health/",
                "/rest/v10",
                "/auth/v1/health",
                "/auth/v1/settings",
                *MOUNTS,
            )
        ),
        tricky_text,
    ),
    st.builds(
        lambda mount, key: f"{mount}/x?apikey={key}",
        st.sampled_from(MOUNTS),
        api_keys,
    ),
)


@st.composite
def headers(draw: st.DrawFn) -> tuple[tuple[str, str], ...]:
    """A header list: names the gateway reads or random ones; apikey values are often real keys."""
    out: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        name = draw(st.one_of(st.sampled_from(INTERESTING_HEADERS), latin1_text))
        value = draw(api_keys) if name in ("apikey", "authorization") else draw(latin1_text)
        out.append((name, value))
    return tuple(out)


requests = st.builds(
    Request,
    method=methods,
    target=targets,
    headers=headers(),
    body=st.binary(max_size=20),
    client=st.none() | st.just("127.0.0.1"),
)
