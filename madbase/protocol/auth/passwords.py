"""Password policy and password-hash schemes; hashing itself is a command the runtime carries out.

Policy (GoTrue api/password.go): more than 72 bytes is `validation_failed`; shorter than the
minimum length (in bytes, as Go's `len`) gives reason `length`; missing any configured character
group gives reason `characters` (once, whatever the number of groups missed). On sign-up and
password change a weak password is refused with `weak_password` (422); on the password grant it
only rides along in the session as `weak_password`.

Hashes (`auth.users.encrypted_password`): MadBase writes argon2id; GoTrue writes bcrypt and reads
argon2i/argon2id and Firebase scrypt. A successful sign-in with any other scheme than argon2id is
the moment to rehash (`needs_rehash`).
"""

from __future__ import annotations

import enum
import re
from typing import Final, TypeAlias, final

import attrs

from madbase.protocol.auth.errors import ValidationFailed, WeakPassword
from madbase.protocol.auth.limits import MAX_PASSWORD_BYTES, AuthLimits

__all__ = [
    "CheckPassword",
    "HashPassword",
    "HashScheme",
    "PasswordCommand",
    "check_password_strength",
    "hash_scheme",
    "needs_rehash",
    "password_weakness",
]

_ARGON2: Final = re.compile(r"\$(argon2(?:d|i|id))\$v=(?:16|19)\$m=[0-9]+,t=[0-9]+,p=[0-9]+")
_BCRYPT: Final = re.compile(r"\$2[abxy]?\$[0-9]{2}\$[./A-Za-z0-9]{53}")


class HashScheme(enum.StrEnum):
    """How a stored password hash was made."""

    NONE = "none"  # no password (OAuth, OTP and anonymous users)
    ARGON2ID = "argon2id"
    ARGON2I = "argon2i"
    BCRYPT = "bcrypt"
    FIREBASE_SCRYPT = "firebase_scrypt"
    UNKNOWN = "unknown"


def hash_scheme(encrypted_password: str | None) -> HashScheme:
    """The scheme of a stored hash.

    >>> hash_scheme("$2a$10$" + "a" * 53), hash_scheme(""), hash_scheme("$argon2d$v=19$m=1,t=1,p=1$s$h")
    (<HashScheme.BCRYPT: 'bcrypt'>, <HashScheme.NONE: 'none'>, <HashScheme.UNKNOWN: 'unknown'>)
    """
    if not encrypted_password:
        return HashScheme.NONE
    if (match := _ARGON2.match(encrypted_password)) is not None:
        # GoTrue reads argon2i and argon2id only; argon2d is refused.
        return {"argon2id": HashScheme.ARGON2ID, "argon2i": HashScheme.ARGON2I}.get(
            match[1], HashScheme.UNKNOWN
        )
    if _BCRYPT.fullmatch(encrypted_password) is not None:
        return HashScheme.BCRYPT
    if encrypted_password.startswith("$fbscrypt$"):
        return HashScheme.FIREBASE_SCRYPT
    return HashScheme.UNKNOWN


def needs_rehash(encrypted_password: str | None) -> bool:
    """True when a password that just verified should be stored again as argon2id.

    Parameters of an argon2id hash are the runtime's business (argon2-cffi's check_needs_rehash).

    >>> needs_rehash("$2b$10$" + "a" * 53), needs_rehash("$argon2id$v=19$m=65536,t=2,p=1$s$h")
    (True, False)
    """
    return hash_scheme(encrypted_password) in {
        HashScheme.BCRYPT,
        HashScheme.ARGON2I,
        HashScheme.FIREBASE_SCRYPT,
    }


def password_weakness(password: str, limits: AuthLimits) -> WeakPassword | None:
    """Why `password` fails the policy, as the `WeakPassword` GoTrue would build, or None.

    >>> password_weakness("abc", AuthLimits()).message
    'Password should be at least 6 characters.'

    Raises:
        ValidationFailed: longer than 72 bytes.
    """
    size = len(password.encode("utf-8", "surrogatepass"))
    if size > MAX_PASSWORD_BYTES:
        raise ValidationFailed(f"Password cannot be longer than {MAX_PASSWORD_BYTES} characters")
    reasons: list[str] = []
    messages: list[str] = []
    if size < limits.password_min_length:
        reasons.append("length")
        messages.append(f"Password should be at least {limits.password_min_length} characters.")
    groups = limits.password_required_characters
    if any(not set(group) & set(password) for group in groups):
        reasons.append("characters")
        messages.append(
            f"Password should contain at least one character of each: {', '.join(groups)}."
        )
    if not reasons:
        return None
    return WeakPassword(" ".join(messages), reasons=tuple(reasons))


def check_password_strength(password: str, limits: AuthLimits) -> None:
    """Refuse a new password that fails the policy (sign-up, password change, admin create).

    Raises:
        ValidationFailed: longer than 72 bytes.
        WeakPassword: too short or missing a required character group.
    """
    weakness = password_weakness(password, limits)
    if weakness is not None:
        raise weakness


@final
@attrs.frozen(kw_only=True)
class HashPassword:
    """Command: hash `password` with argon2id; the runtime answers with the encoded hash."""

    password: str = attrs.field(repr=False)


@final
@attrs.frozen(kw_only=True)
class CheckPassword:
    """Command: verify `password` against `encrypted_password`; the runtime answers a bool.

    The runtime picks the verifier by `hash_scheme` and answers False for `NONE`/`UNKNOWN`.
    """

    encrypted_password: str = attrs.field(repr=False)
    password: str = attrs.field(repr=False)


PasswordCommand: TypeAlias = HashPassword | CheckPassword
