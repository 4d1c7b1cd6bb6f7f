"""Password policy (GoTrue's messages and reasons) and hash-scheme detection."""

from __future__ import annotations

import pytest

from madbase.protocol.auth import (
    AuthLimits,
    CheckPassword,
    HashPassword,
    HashScheme,
    hash_scheme,
    parse_required_characters,
)
from madbase.protocol.auth.errors import ValidationFailed, WeakPassword
from madbase.protocol.auth.passwords import check_password_strength, needs_rehash, password_weakness

GROUPS = parse_required_characters(
    "abcdefghijklmnopqrstuvwxyz:ABCDEFGHIJKLMNOPQRSTUVWXYZ:0123456789"
)
STRICT = AuthLimits(password_min_length=8, password_required_characters=GROUPS)
CHARS_MESSAGE = (
    "Password should contain at least one character of each: abcdefghijklmnopqrstuvwxyz, "
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ, 0123456789."
)


@pytest.mark.parametrize(
    ("password", "limits", "reasons", "message"),
    [
        ("12345", AuthLimits(), ("length",), "Password should be at least 6 characters."),
        ("", AuthLimits(), ("length",), "Password should be at least 6 characters."),
        ("abcdefgh", STRICT, ("characters",), CHARS_MESSAGE),
        ("aB1", STRICT, ("length",), "Password should be at least 8 characters."),
        (
            "ab",
            STRICT,
            ("length", "characters"),
            "Password should be at least 8 characters. " + CHARS_MESSAGE,
        ),
    ],
)
def test_passwords_weak(
    password: str, limits: AuthLimits, reasons: tuple[str, ...], message: str
) -> None:
    weakness = password_weakness(password, limits)
    assert weakness is not None
    assert weakness.reasons == reasons
    assert weakness.message == message
    with pytest.raises(WeakPassword) as info:
        check_password_strength(password, limits)
    assert info.value.reasons == reasons


@pytest.mark.parametrize(
    ("password", "limits"),
    [("123456", AuthLimits()), ("aB3defgh", STRICT), ("ééé", AuthLimits())],  # 6 bytes
)
def test_passwords_strong(password: str, limits: AuthLimits) -> None:
    assert password_weakness(password, limits) is None
    check_password_strength(password, limits)


def test_passwords_too_long_is_validation_failed() -> None:
    password_weakness("a" * 72, AuthLimits())
    with pytest.raises(ValidationFailed, match="Password cannot be longer than 72 characters"):
        password_weakness("é" * 37, AuthLimits())  # 74 bytes


def test_passwords_min_length_floor() -> None:
    assert AuthLimits(password_min_length=2).password_min_length == 6
    assert AuthLimits(password_min_length=10).password_min_length == 10


@pytest.mark.parametrize(
    ("value", "groups"),
    [
        ("", ()),
        ("abc", ("abc",)),
        ("a:b:c", ("a", "b", "c")),
        ("a\\:b:c", ("a:b", "c")),
        ("::a::", ("a",)),
    ],
)
def test_passwords_required_characters_setting(value: str, groups: tuple[str, ...]) -> None:
    assert parse_required_characters(value) == groups


ARGON2ID = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g"
BCRYPT = "$2a$10$" + "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"[:53]


@pytest.mark.parametrize(
    ("stored", "scheme", "rehash"),
    [
        (None, HashScheme.NONE, False),
        ("", HashScheme.NONE, False),
        (ARGON2ID, HashScheme.ARGON2ID, False),
        (ARGON2ID.replace("argon2id", "argon2i"), HashScheme.ARGON2I, True),
        (ARGON2ID.replace("argon2id", "argon2d"), HashScheme.UNKNOWN, False),
        (BCRYPT, HashScheme.BCRYPT, True),
        (BCRYPT.replace("$2a$", "$2b$"), HashScheme.BCRYPT, True),
        (BCRYPT.replace("$2a$", "$2y$"), HashScheme.BCRYPT, True),
        (BCRYPT[:-1], HashScheme.UNKNOWN, False),
        ("$fbscrypt$v=1,n=14,r=8,p=1$salt$hash", HashScheme.FIREBASE_SCRYPT, True),
        ("plaintext", HashScheme.UNKNOWN, False),
    ],
)
def test_passwords_hash_scheme(stored: str | None, scheme: HashScheme, rehash: bool) -> None:
    assert hash_scheme(stored) is scheme
    assert needs_rehash(stored) is rehash


def test_passwords_commands_hide_secrets() -> None:
    assert "hunter2" not in repr(HashPassword(password="hunter2"))
    check = CheckPassword(encrypted_password=ARGON2ID, password="hunter2")
    assert "hunter2" not in repr(check)
    assert ARGON2ID not in repr(check)
