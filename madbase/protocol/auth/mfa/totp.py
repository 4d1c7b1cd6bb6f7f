"""TOTP for MFA factors: RFC 6238 codes, the base32 secret and the `otpauth://` URI.

GoTrue enrols TOTP factors with pquerna/otp's defaults (Google Authenticator's): a 20-byte secret
written as unpadded base32, HMAC-SHA1, 6 digits, 30-second steps; it verifies with one step of
skew either way. The secret comes in as random bytes and the time as `now`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from datetime import datetime
from typing import Final
from urllib.parse import quote

__all__ = [
    "TOTP_DIGITS",
    "TOTP_PERIOD_SECONDS",
    "TOTP_SECRET_BYTES",
    "decode_secret",
    "encode_secret",
    "hotp",
    "otpauth_uri",
    "totp_at",
    "verify_totp",
]

TOTP_SECRET_BYTES: Final = 20  # pquerna/otp GenerateOpts.SecretSize default
TOTP_PERIOD_SECONDS: Final = 30
TOTP_DIGITS: Final = 6
TOTP_SKEW_STEPS: Final = 1  # mfa.go: totp.ValidateOpts{Skew: 1}

# Go's url path escaping keeps these besides the unreserved characters (net/url shouldEscape).
_PATH_SAFE: Final = "-_.~$&+,/:;=@"


def encode_secret(secret: bytes) -> str:
    """`secret` as unpadded upper-case base32, as pquerna/otp writes it.

    >>> encode_secret(b"12345678901234567890")
    'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'
    """
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def decode_secret(text: str) -> bytes:
    """The bytes of a base32 secret (case, padding and surrounding space ignored, as in Go).

    Raises:
        ValueError: not base32.
    """
    cleaned = text.strip().upper()
    cleaned += "=" * (-len(cleaned) % 8)
    try:
        return base64.b32decode(cleaned)
    except ValueError as err:  # binascii.Error is a ValueError
        raise ValueError("secret is not base32") from err


def hotp(secret: bytes, counter: int, *, digits: int = TOTP_DIGITS) -> str:
    """RFC 4226 HOTP with HMAC-SHA1, zero-padded to `digits`.

    >>> [hotp(b"12345678901234567890", c) for c in (0, 1, 9)]
    ['755224', '287082', '520489']
    """
    mac = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def _step(now: datetime) -> int:
    return int(now.timestamp() // TOTP_PERIOD_SECONDS)


def totp_at(secret: bytes, now: datetime) -> str:
    """The RFC 6238 code of `secret` for the 30-second step containing `now`.

    >>> from datetime import UTC
    >>> totp_at(b"12345678901234567890", datetime.fromtimestamp(59, UTC))
    '287082'
    """
    return hotp(secret, _step(now))


def verify_totp(code: str, secret: str, *, now: datetime) -> bool:
    """True when `code` is the code of base32 `secret` for `now`'s step or one step either side.

    Like pquerna/otp, surrounding whitespace in `code` is ignored and a code of any other length
    than 6 never matches; a secret that is not base32 never matches.
    """
    code = code.strip()
    if len(code) != TOTP_DIGITS or not code.isascii():
        return False
    try:
        key = decode_secret(secret)
    except ValueError:
        return False
    step = _step(now)
    matched = False
    for delta in range(-TOTP_SKEW_STEPS, TOTP_SKEW_STEPS + 1):
        if step + delta < 0:
            continue
        # Compare every candidate: the time taken does not tell which step matched.
        matched |= hmac.compare_digest(hotp(key, step + delta), code)
    return matched


def otpauth_uri(*, issuer: str, account: str, secret: str) -> str:
    """The key URI pquerna/otp builds: `otpauth://totp/<issuer>:<account>?<sorted query>`.

    The label is escaped as Go escapes a URL path, the query values as Go's `url.Values.Encode`.

    >>> otpauth_uri(issuer="localhost:3000", account="a@b.co", secret="ABC")
    'otpauth://totp/localhost:3000:a@b.co?algorithm=SHA1&digits=6&issuer=localhost%3A3000&period=30&secret=ABC'
    """
    label = quote(f"{issuer}:{account}", safe=_PATH_SAFE)
    query = "&".join(
        f"{key}={quote(value, safe='-_.~').replace('%20', '+')}"
        for key, value in (
            ("algorithm", "SHA1"),
            ("digits", str(TOTP_DIGITS)),
            ("issuer", issuer),
            ("period", str(TOTP_PERIOD_SECONDS)),
            ("secret", secret),
        )
    )
    return f"otpauth://totp/{label}?{query}"
