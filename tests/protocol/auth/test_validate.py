"""Request bodies: Go-style JSON decoding, and each endpoint's checks with GoTrue's messages."""

from __future__ import annotations

import contextlib
import hashlib
import json
from base64 import urlsafe_b64encode

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from madbase.protocol.auth import AuthError, AuthLimits
from madbase.protocol.auth.body import parse_json_object
from madbase.protocol.auth.errors import BadJson, RequestEntityTooLarge
from madbase.protocol.auth.validate import (
    AnonymousSignupRequest,
    CodeChallengeMethod,
    OtpRequest,
    PkceChallenge,
    RecoverRequest,
    ResendRequest,
    SignupRequest,
    UserUpdateRequest,
    VerifyRequest,
    format_phone,
    otp_token_hash,
    parse_otp,
    parse_recover,
    parse_resend,
    parse_signup,
    parse_user_update,
    parse_verify,
    parse_verify_link,
    validate_email,
    validate_phone,
    validate_pkce,
    verify_pkce,
)

LIMITS = AuthLimits()
OPEN = AuthLimits(phone_enabled=True, anonymous_users_enabled=True, whatsapp_enabled=True)
VERIFIER = "v" * 50
CHALLENGE = urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()


def j(value: object) -> bytes:
    return json.dumps(value).encode()


def error_of(call: object) -> AuthError:
    assert callable(call)
    with pytest.raises(AuthError) as info:
        call()
    return info.value


# --- JSON decoding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a":1,"a":2}', {"a": 2}),
        (b"null", {}),
        (b' {"x": {"y": [1, 2.5, true, null]}} ', {"x": {"y": [1, 2.5, True, None]}}),
        (b'{"s":"\\ud800x"}', {"s": "\ufffdx"}),
        (b'{"\\udc00":["\\ud83d\\ude00", "\\udbff"]}', {"\ufffd": ["\U0001f600", "\ufffd"]}),
        (b'{"s":"\xff"}', {"s": "\ufffd"}),
        (b'{"n": 1e308}', {"n": 1e308}),
    ],
)
def test_validate_json_object(body: bytes, expected: dict[str, object]) -> None:
    assert parse_json_object(body, limits=LIMITS) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'"x"',
        b"1",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": 1e999}',
        b'{"a": -1e999}',
        b'{"a": ' + b"9" * 400 + b"}",
        b"\xef\xbb\xbf{}",
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_validate_json_bad(body: bytes) -> None:
    err = error_of(lambda: parse_json_object(body, limits=LIMITS))
    assert isinstance(err, BadJson)
    assert err.message.startswith("Could not parse request body as JSON")


def test_validate_json_too_large() -> None:
    limits = AuthLimits(max_body_bytes=10)
    err = error_of(lambda: parse_json_object(b'{"a": "0123456789"}', limits=limits))
    assert isinstance(err, RequestEntityTooLarge)
    assert err.http_status == 413
    assert err.message == "Request body too large (max 10 bytes)"


def test_validate_fields_go_semantics() -> None:
    # Case-insensitive keys, last one wins, null leaves a string field as it was.
    body = b'{"EMAIL":"a@b.co","Email":"c@d.co","email":null,"password":"secret1","x":[1]}'
    request = parse_signup(body, LIMITS)
    assert isinstance(request, SignupRequest)
    assert request.email == "c@d.co"
    # An exact key beats the folded match of another spelling in the same position.
    assert parse_recover(b'{"email":"a@b.co","EMAIL":"c@d.co"}', LIMITS).email == "c@d.co"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"email": 1}',
            "cannot unmarshal number into Go struct field SignupParams.email of type string",
        ),
        (
            b'{"data": []}',
            "cannot unmarshal array into Go struct field SignupParams.data of type map[string]interface {}",
        ),
        (
            b'{"password": true}',
            "cannot unmarshal bool into Go struct field SignupParams.password of type string",
        ),
        (b"[1]", "cannot unmarshal array into Go value of type api.SignupParams"),
        (b'{"email": {"a": 1}}', "cannot unmarshal object into Go struct field"),
        (b'{"email": "x", "phone": "y", "DaTa": "z"}', "SignupParams.DaTa of type map"),
    ],
)
def test_validate_fields_wrong_type_is_bad_json(body: bytes, message: str) -> None:
    err = error_of(lambda: parse_signup(body, OPEN))
    assert isinstance(err, BadJson)
    assert message in err.message


@given(st.binary(max_size=300))
@example(b'{"email":"a@b.co","password":"\\ud800\\ud800\\ud800"}')
@example(b'{"data": {"\\ud800": 1e400}}')
@example(
    b'{"email": "A@B.CO", "password": "123456", "code_challenge": "x", "code_challenge_method": "s256"}'
)
def test_validate_any_bytes_give_request_or_auth_error(body: bytes) -> None:
    for parse in (
        parse_signup,
        parse_otp,
        parse_verify,
        parse_recover,
        parse_resend,
        parse_user_update,
    ):
        with contextlib.suppress(AuthError):
            parse(body, OPEN)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)
keys = st.sampled_from(
    ["email", "phone", "password", "data", "channel", "code_challenge", "code_challenge_method",
     "type", "token", "token_hash", "create_user", "redirect_to", "nonce", "current_password"]
)  # fmt: skip


@given(st.dictionaries(keys, json_values | st.sampled_from(["a@b.co", "+1 555 0100", "sms"])))
def test_validate_any_object_gives_request_or_auth_error(value: dict[str, object]) -> None:
    body = json.dumps(value).encode()
    for parse in (
        parse_signup,
        parse_otp,
        parse_verify,
        parse_recover,
        parse_resend,
        parse_user_update,
    ):
        for limits in (LIMITS, OPEN):
            with contextlib.suppress(AuthError):
                parse(body, limits)


# --- shared checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "normalised"),
    [
        ("Ann@Example.COM", "ann@example.com"),
        ("a.b+c@x-y.z", "a.b+c@x-y.z"),
        ("x@localhost", "x@localhost"),
    ],
)
def test_validate_email_ok(email: str, normalised: str) -> None:
    assert validate_email(email) == normalised


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("", "An email address is required"),
        ("a" * 250 + "@b.com", "An email address is too long"),
        (" a@b.co", "Unable to validate email address: invalid format"),
        ("a@b.co ", "Unable to validate email address: invalid format"),
        ("a@-b.co", "Unable to validate email address: invalid format"),
        ("ünï@b.co", "Unable to validate email address: invalid format"),
        ("a@b", None),
    ],
)
def test_validate_email_bad(email: str, message: str | None) -> None:
    if message is None:
        assert validate_email(email) == email
        return
    assert error_of(lambda: validate_email(email)).message == message


@pytest.mark.parametrize(
    ("phone", "formatted"), [("+1 555 0100", "15550100"), ("4915112345678", "4915112345678")]
)
def test_validate_phone_ok(phone: str, formatted: str) -> None:
    assert validate_phone(phone) == formatted


@pytest.mark.parametrize("phone", ["", "+", "0123", "1", "1234567890123456", "++15550100", "1-555"])
def test_validate_phone_bad(phone: str) -> None:
    err = error_of(lambda: validate_phone(phone))
    assert err.message == "Invalid phone number format (E.164 required)"


def test_validate_format_phone_keeps_inner_plus() -> None:
    assert format_phone("++1") == "+1"


def test_validate_pkce() -> None:
    assert validate_pkce("", "") is None
    assert validate_pkce("S256", CHALLENGE) == PkceChallenge(
        challenge=CHALLENGE, method=CodeChallengeMethod.S256
    )
    assert validate_pkce("plain", "p" * 43).method is CodeChallengeMethod.PLAIN  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("method", "challenge", "message"),
    [
        ("s256", "", "PKCE flow requires code_challenge_method and code_challenge"),
        ("", CHALLENGE, "PKCE flow requires code_challenge_method and code_challenge"),
        ("s256", "a" * 42, "code challenge has to be between 43 and 128 characters"),
        ("s256", "a" * 129, "code challenge has to be between 43 and 128 characters"),
        (
            "s256",
            "a" * 42 + "!",
            "code challenge can only contain alphanumeric characters, hyphens, periods, underscores and tildes",
        ),
        ("sha512", CHALLENGE, "unsupported code_challenge method 'sha512'"),
    ],
)
def test_validate_pkce_bad(method: str, challenge: str, message: str) -> None:
    assert error_of(lambda: validate_pkce(method, challenge)).message == message


def test_validate_verify_pkce() -> None:
    verify_pkce(PkceChallenge(challenge=CHALLENGE, method=CodeChallengeMethod.S256), VERIFIER)
    verify_pkce(PkceChallenge(challenge="p" * 43, method=CodeChallengeMethod.PLAIN), "p" * 43)
    err = error_of(
        lambda: verify_pkce(
            PkceChallenge(challenge=CHALLENGE, method=CodeChallengeMethod.S256), "wrong"
        )
    )
    assert err.error_code == "bad_code_verifier"
    assert err.message == "code challenge does not match previously saved code verifier"


def test_validate_otp_token_hash() -> None:
    assert otp_token_hash("a@b.co", "123456") == hashlib.sha224(b"a@b.co123456").hexdigest()


# --- signup ----------------------------------------------------------------------------------


def test_validate_signup_email() -> None:
    body = j(
        {
            "email": "Ann@Example.com",
            "password": "secret1",
            "data": {"name": "Ann"},
            "code_challenge": CHALLENGE,
            "code_challenge_method": "s256",
            "gotrue_meta_security": {"captcha_token": None},
        }
    )
    request = parse_signup(body, LIMITS)
    assert request == SignupRequest(
        email="ann@example.com",
        phone=None,
        password="secret1",
        data={"name": "Ann"},
        channel=None,
        pkce=PkceChallenge(challenge=CHALLENGE, method=CodeChallengeMethod.S256),
    )
    assert "secret1" not in repr(request)


def test_validate_signup_phone_and_anonymous() -> None:
    request = parse_signup(j({"phone": "+1 555 0100", "password": "secret1"}), OPEN)
    assert request == SignupRequest(
        email=None, phone="15550100", password="secret1", data={}, channel="sms", pkce=None
    )
    whatsapp = parse_signup(
        j({"phone": "15550100", "password": "secret1", "channel": "whatsapp"}), OPEN
    )
    assert isinstance(whatsapp, SignupRequest)
    assert whatsapp.channel == "whatsapp"
    assert parse_signup(j({"data": {"a": 1}}), OPEN) == AnonymousSignupRequest(data={"a": 1})
    assert parse_signup(b"{}", OPEN) == AnonymousSignupRequest(data={})
    assert parse_signup(b"null", OPEN) == AnonymousSignupRequest(data={})


@pytest.mark.parametrize(
    ("body", "limits", "code", "status", "message"),
    [
        ({}, LIMITS, "anonymous_provider_disabled", 422, "Anonymous sign-ins are disabled"),
        (
            {},
            AuthLimits(anonymous_users_enabled=True, disable_signup=True),
            "signup_disabled",
            422,
            "Signups not allowed for this instance",
        ),
        (
            {"email": "a@b.co", "password": "secret1"},
            AuthLimits(disable_signup=True),
            "signup_disabled",
            422,
            "Signups not allowed for this instance",
        ),
        ({"email": "a@b.co"}, LIMITS, "validation_failed", 400, "Signup requires a valid password"),
        (
            {"email": "a@b.co", "password": "12345"},
            LIMITS,
            "weak_password",
            422,
            "Password should be at least 6 characters.",
        ),
        (
            {"email": "a@b.co", "password": "x" * 73},
            LIMITS,
            "validation_failed",
            400,
            "Password cannot be longer than 72 characters",
        ),
        (
            {"email": "a@b.co", "phone": "15550100", "password": "secret1"},
            OPEN,
            "validation_failed",
            400,
            "Only an email address or phone number should be provided on signup.",
        ),
        (
            {"phone": "15550100", "password": "secret1", "channel": "pigeon"},
            OPEN,
            "validation_failed",
            400,
            "Invalid channel, supported values are 'sms' or 'whatsapp'. 'whatsapp' is only supported if Twilio or Twilio Verify is used as the provider.",
        ),
        (
            {"phone": "15550100", "password": "secret1", "channel": "whatsapp"},
            AuthLimits(phone_enabled=True),
            "validation_failed",
            400,
            None,
        ),
        (
            {
                "phone": "15550100",
                "password": "secret1",
                "code_challenge": CHALLENGE,
                "code_challenge_method": "s256",
            },
            OPEN,
            "validation_failed",
            400,
            "PKCE not supported for phone signups",
        ),
        (
            {"email": "a@b.co", "password": "secret1", "code_challenge": CHALLENGE},
            LIMITS,
            "validation_failed",
            400,
            "PKCE flow requires code_challenge_method and code_challenge",
        ),
        (
            {"email": "a@b.co", "password": "secret1"},
            AuthLimits(email_enabled=False),
            "email_provider_disabled",
            400,
            "Email signups are disabled",
        ),
        (
            {"phone": "15550100", "password": "secret1"},
            LIMITS,
            "phone_provider_disabled",
            400,
            "Phone signups are disabled",
        ),
        (
            {"email": "not-an-email", "password": "secret1"},
            LIMITS,
            "validation_failed",
            400,
            "Unable to validate email address: invalid format",
        ),
        (
            {"phone": "abc", "password": "secret1"},
            OPEN,
            "validation_failed",
            400,
            "Invalid phone number format (E.164 required)",
        ),
    ],
)
def test_validate_signup_errors(
    body: dict[str, object], limits: AuthLimits, code: str, status: int, message: str | None
) -> None:
    err = error_of(lambda: parse_signup(j(body), limits))
    assert (err.error_code, err.http_status) == (code, status)
    if message is not None:
        assert err.message == message


# --- otp, verify, recover, resend, user update -------------------------------------------------


def test_validate_otp() -> None:
    assert parse_otp(
        j({"email": "A@b.co", "create_user": False, "data": {"x": 1}}), LIMITS
    ) == OtpRequest(
        email="a@b.co", phone=None, create_user=False, data={"x": 1}, channel=None, pkce=None
    )
    request = parse_otp(j({"phone": "+15550100", "create_user": None}), OPEN)
    assert request == OtpRequest(
        email=None, phone="15550100", create_user=True, data={}, channel="sms", pkce=None
    )


@pytest.mark.parametrize(
    ("body", "limits", "code", "status", "message"),
    [
        (
            {"email": "a@b.co", "phone": "1555"},
            OPEN,
            "validation_failed",
            400,
            "Only an email address or phone number should be provided",
        ),
        (
            {"email": "a@b.co", "channel": "sms"},
            OPEN,
            "validation_failed",
            400,
            "Channel should only be specified with Phone OTP",
        ),
        ({}, OPEN, "validation_failed", 400, "One of email or phone must be set"),
        (
            {"email": "a@b.co"},
            AuthLimits(email_enabled=False),
            "email_provider_disabled",
            422,
            "Email logins are disabled",
        ),
        (
            {"phone": "15550100"},
            LIMITS,
            "phone_provider_disabled",
            400,
            "Unsupported phone provider",
        ),
        (
            {"phone": "15550100", "channel": "whatsapp"},
            AuthLimits(phone_enabled=True),
            "validation_failed",
            400,
            None,
        ),
        (
            {"email": "bad"},
            LIMITS,
            "validation_failed",
            400,
            "Unable to validate email address: invalid format",
        ),
    ],
)
def test_validate_otp_errors(
    body: dict[str, object], limits: AuthLimits, code: str, status: int, message: str | None
) -> None:
    err = error_of(lambda: parse_otp(j(body), limits))
    assert (err.error_code, err.http_status) == (code, status)
    if message is not None:
        assert err.message == message


def test_validate_verify() -> None:
    by_email = parse_verify(j({"type": "email", "token": "123456", "email": "A@b.co"}), LIMITS)
    assert by_email == VerifyRequest(
        type="email", token_hash=otp_token_hash("a@b.co", "123456"), email="a@b.co"
    )
    by_phone = parse_verify(j({"type": "sms", "token": "123456", "phone": "+1 555 0100"}), LIMITS)
    assert by_phone == VerifyRequest(
        type="sms", token_hash=otp_token_hash("15550100", "123456"), phone="15550100"
    )
    by_hash = parse_verify(j({"type": "magiclink", "token_hash": "abc"}), LIMITS)
    assert by_hash == VerifyRequest(type="magiclink", token_hash="abc")
    assert parse_verify_link("abc", "signup") == VerifyRequest(type="signup", token_hash="abc")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"token": "1"}, 400, "Verify requires a verification type"),
        ({"type": "email"}, 400, "Verify requires either a token or a token hash"),
        (
            {"type": "email", "token": "1", "token_hash": "h"},
            400,
            "Verify requires either a token or a token hash",
        ),
        ({"type": "email", "token": "1", "email": "bad"}, 422, "Invalid email format"),
        (
            {"type": "email", "token": "1"},
            400,
            "Only an email address or phone number should be provided on verify",
        ),
        (
            {"type": "email", "token": "1", "email": "a@b.co", "phone": "1555"},
            400,
            "Only an email address or phone number should be provided on verify",
        ),
        (
            {"type": "sms", "token": "1", "phone": "x"},
            400,
            "Invalid phone number format (E.164 required)",
        ),
        (
            {"type": "email", "token_hash": "h", "email": "a@b.co"},
            400,
            "Only the token_hash and type should be provided",
        ),
        (
            {"type": "email", "token_hash": "h", "redirect_to": "x"},
            400,
            "Only the token_hash and type should be provided",
        ),
        ({"type": "password", "token_hash": "h"}, 400, "Unsupported verification type"),
    ],
)
def test_validate_verify_errors(body: dict[str, object], status: int, message: str) -> None:
    err = error_of(lambda: parse_verify(j(body), LIMITS))
    assert (err.error_code, err.http_status, err.message) == ("validation_failed", status, message)


@pytest.mark.parametrize(
    ("token", "kind", "message"),
    [
        ("t", None, "Verify requires a verification type"),
        (None, "signup", "Verify requires a token or a token hash"),
        ("t", "nope", "Unsupported verification type"),
    ],
)
def test_validate_verify_link_errors(token: str | None, kind: str | None, message: str) -> None:
    assert error_of(lambda: parse_verify_link(token, kind)).message == message


def test_validate_recover() -> None:
    body = j({"email": "A@b.co", "code_challenge": CHALLENGE, "code_challenge_method": "s256"})
    assert parse_recover(body, LIMITS) == RecoverRequest(
        email="a@b.co", pkce=PkceChallenge(challenge=CHALLENGE, method=CodeChallengeMethod.S256)
    )
    assert (
        error_of(lambda: parse_recover(b"{}", LIMITS)).message
        == "Password recovery requires an email"
    )


def test_validate_resend() -> None:
    assert parse_resend(j({"type": "signup", "email": "A@b.co"}), LIMITS) == ResendRequest(
        type="signup", email="a@b.co", phone=None, pkce=None
    )
    assert parse_resend(j({"type": "phone_change", "phone": "+15550100"}), OPEN) == ResendRequest(
        type="phone_change", email=None, phone="15550100", pkce=None
    )


@pytest.mark.parametrize(
    ("body", "limits", "code", "message"),
    [
        (
            {"type": "recovery", "email": "a@b.co"},
            LIMITS,
            "validation_failed",
            "Missing one of these types: signup, email_change, sms, phone_change",
        ),
        (
            {"type": "signup"},
            LIMITS,
            "validation_failed",
            "Type provided requires an email address",
        ),
        ({"type": "sms"}, OPEN, "validation_failed", "Type provided requires a phone number"),
        (
            {"type": "email_change", "email": "a@b.co", "phone": "1555"},
            OPEN,
            "validation_failed",
            "Only an email address or phone number should be provided.",
        ),
        (
            {"type": "email_change"},
            OPEN,
            "validation_failed",
            "Missing email address or phone number",
        ),
        (
            {"type": "signup", "email": "a@b.co"},
            AuthLimits(email_enabled=False),
            "email_provider_disabled",
            "Email logins are disabled",
        ),
        (
            {"type": "sms", "phone": "15550100"},
            LIMITS,
            "phone_provider_disabled",
            "Phone logins are disabled",
        ),
        (
            {"type": "signup", "email": "a@b.co", "code_challenge": "x"},
            LIMITS,
            "validation_failed",
            "PKCE flow requires code_challenge_method and code_challenge",
        ),
    ],
)
def test_validate_resend_errors(
    body: dict[str, object], limits: AuthLimits, code: str, message: str
) -> None:
    err = error_of(lambda: parse_resend(j(body), limits))
    assert (err.error_code, err.message) == (code, message)
    assert err.http_status == 400


def test_validate_user_update() -> None:
    assert parse_user_update(b"{}", LIMITS) == UserUpdateRequest()
    request = parse_user_update(
        j(
            {
                "email": "New@b.co",
                "phone": "+1 555 0100",
                "password": "secret12",
                "current_password": "old",
                "nonce": "123456",
                "data": {"a": 1},
                "app_metadata": {"b": 2},
            }
        ),
        LIMITS,
    )
    assert request == UserUpdateRequest(
        email="new@b.co",
        phone="15550100",
        channel="sms",
        password="secret12",
        current_password="old",
        nonce="123456",
        data={"a": 1},
        app_metadata={"b": 2},
    )
    # null resets a pointer or map field, whatever came before it.
    reset = parse_user_update(
        b'{"password":"secret12","password":null,"data":{},"data":null}', LIMITS
    )
    assert reset.password is None
    assert reset.data is None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"password": ""}, "weak_password"),
        ({"password": "short"}, "weak_password"),
        ({"email": "bad"}, "validation_failed"),
        ({"phone": "15550100", "channel": "fax"}, "validation_failed"),
        ({"code_challenge": "x"}, "validation_failed"),
        ({"password": 1}, "bad_json"),
    ],
)
def test_validate_user_update_errors(body: dict[str, object], code: str) -> None:
    assert error_of(lambda: parse_user_update(j(body), LIMITS)).error_code == code
