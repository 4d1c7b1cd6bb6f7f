"""Bodies of the user-facing `/auth/v1` endpoints that start or finish a flow: typed request or `AuthError`.

Each endpoint checks its fields with GoTrue's messages and in GoTrue's order (signup.go,
anonymous.go, otp.go, verify.go, recover.go, resend.go, user.go; shared checks from mail.go,
phone.go, pkce.go and security/pkce.go). Bodies are decoded by `body.decode_fields`.

Email addresses are checked with GoTrue's pattern and lower-cased (GoTrue does not trim them);
phone numbers lose a leading `+` and all spaces and must then be E.164 digits.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from base64 import urlsafe_b64encode
from typing import Final, final

import attrs

from madbase.protocol.auth.body import FieldKind, decode_fields
from madbase.protocol.auth.errors import (
    AnonymousProviderDisabled,
    BadCodeVerifier,
    EmailProviderDisabled,
    PhoneProviderDisabled,
    SignupDisabled,
    ValidationFailed,
)
from madbase.protocol.auth.limits import AuthLimits
from madbase.protocol.auth.passwords import check_password_strength
from madbase.protocol.http.messages import JsonValue

__all__ = [
    "AnonymousSignupRequest",
    "CodeChallengeMethod",
    "OtpRequest",
    "PkceChallenge",
    "RecoverRequest",
    "ResendRequest",
    "SignupRequest",
    "UserUpdateRequest",
    "VerifyRequest",
    "check_channel",
    "format_phone",
    "otp_token_hash",
    "parse_otp",
    "parse_recover",
    "parse_resend",
    "parse_signup",
    "parse_user_update",
    "parse_verify",
    "parse_verify_link",
    "validate_email",
    "validate_phone",
    "validate_pkce",
    "verify_pkce",
]

JsonObject = dict[str, JsonValue]

# badoux/checkmail's format check, which GoTrue uses (the HTML5 "valid e-mail address" rule).
_EMAIL: Final = re.compile(
    r"[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*"
)
_E164: Final = re.compile(r"[1-9][0-9]{1,14}")
# RFC 7636 §4.2 code challenge alphabet and length (pkce.go).
_CODE_CHALLENGE: Final = re.compile(r"[a-zA-Z._~0-9-]+")
MIN_CODE_CHALLENGE: Final = 43
MAX_CODE_CHALLENGE: Final = 128
_INVALID_CHANNEL: Final = (
    "Invalid channel, supported values are 'sms' or 'whatsapp'. 'whatsapp' is only supported if "
    "Twilio or Twilio Verify is used as the provider."
)
_PKCE_PARAMS: Final = "PKCE flow requires code_challenge_method and code_challenge"
VERIFY_TYPES: Final = frozenset(
    {"signup", "invite", "recovery", "magiclink", "email_change", "email", "sms", "phone_change"}
)
RESEND_TYPES: Final = frozenset({"signup", "email_change", "sms", "phone_change"})
_S: Final = FieldKind.STRING


def validate_email(email: str) -> str:
    """`email` lower-cased, once it passes GoTrue's checks.

    >>> validate_email("Ann@Example.COM")
    'ann@example.com'

    Raises:
        ValidationFailed: empty, longer than 255 bytes or not an address.
    """
    if not email:
        raise ValidationFailed("An email address is required")
    if len(email.encode("utf-8", "surrogatepass")) > 255:
        raise ValidationFailed("An email address is too long")
    if _EMAIL.fullmatch(email) is None:
        raise ValidationFailed("Unable to validate email address: invalid format")
    return email.lower()


def format_phone(phone: str) -> str:
    """`phone` without one leading `+` and without spaces, as GoTrue stores numbers.

    >>> format_phone("+1 555 0100")
    '15550100'
    """
    return phone.removeprefix("+").replace(" ", "")


def validate_phone(phone: str) -> str:
    """`format_phone(phone)`, once it is an E.164 number.

    Raises:
        ValidationFailed: not E.164 after formatting.
    """
    formatted = format_phone(phone)
    if _E164.fullmatch(formatted) is None:
        raise ValidationFailed("Invalid phone number format (E.164 required)")
    return formatted


def check_channel(channel: str, limits: AuthLimits) -> None:
    """Refuse an OTP channel other than `sms`, or `whatsapp` when enabled.

    Raises:
        ValidationFailed: any other channel.
    """
    if channel != "sms" and not (channel == "whatsapp" and limits.whatsapp_enabled):
        raise ValidationFailed(_INVALID_CHANNEL)


def otp_token_hash(email_or_phone: str, token: str) -> str:
    """The hash GoTrue stores for an OTP: hex SHA-224 of the address followed by the token.

    >>> otp_token_hash("a@b.co", "123456")[:16]
    '4911e82389643aeb'
    """
    return hashlib.sha224((email_or_phone + token).encode("utf-8", "surrogatepass")).hexdigest()


class CodeChallengeMethod(enum.StrEnum):
    """PKCE challenge methods (`auth.code_challenge_method`)."""

    S256 = "s256"
    PLAIN = "plain"


@final
@attrs.frozen(kw_only=True)
class PkceChallenge:
    """A PKCE code challenge sent with a request that starts a flow."""

    challenge: str
    method: CodeChallengeMethod


def validate_pkce(method: str, challenge: str) -> PkceChallenge | None:
    """The PKCE challenge of a request, None for the implicit flow (both empty).

    The method is matched case-insensitively, as GoTrue does.

    Raises:
        ValidationFailed: only one of the two given, a challenge of the wrong length or
            alphabet, or a method other than `s256`/`plain`.
    """
    if (challenge == "") != (method == ""):
        raise ValidationFailed(_PKCE_PARAMS)
    if not challenge:
        return None
    if not MIN_CODE_CHALLENGE <= len(challenge) <= MAX_CODE_CHALLENGE:
        raise ValidationFailed(
            f"code challenge has to be between {MIN_CODE_CHALLENGE} and {MAX_CODE_CHALLENGE}"
            " characters"
        )
    if _CODE_CHALLENGE.fullmatch(challenge) is None:
        raise ValidationFailed(
            "code challenge can only contain alphanumeric characters, hyphens, periods,"
            " underscores and tildes"
        )
    try:
        parsed = CodeChallengeMethod(method.lower())
    except ValueError:
        raise ValidationFailed(f"unsupported code_challenge method {method!r}") from None
    return PkceChallenge(challenge=challenge, method=parsed)


def verify_pkce(challenge: PkceChallenge, verifier: str) -> None:
    """Check a `code_verifier` against the stored challenge (constant-time comparison).

    Raises:
        BadCodeVerifier: the verifier does not match.
    """
    expected = challenge.challenge.encode("utf-8", "surrogatepass")
    given = verifier.encode("utf-8", "surrogatepass")
    if challenge.method is CodeChallengeMethod.S256:
        given = urlsafe_b64encode(hashlib.sha256(given).digest()).rstrip(b"=")
    if not hmac.compare_digest(expected, given):
        raise BadCodeVerifier


@final
@attrs.frozen(kw_only=True)
class SignupRequest:
    """POST /signup with an email address or a phone number."""

    email: str | None
    phone: str | None
    password: str = attrs.field(repr=False)
    data: JsonObject
    channel: str | None
    pkce: PkceChallenge | None


@final
@attrs.frozen(kw_only=True)
class AnonymousSignupRequest:
    """POST /signup with neither email nor phone: an anonymous user."""

    data: JsonObject


_SIGNUP: Final = {
    "email": _S,
    "phone": _S,
    "password": _S,
    "data": FieldKind.MAP,
    "channel": _S,
    "code_challenge_method": _S,
    "code_challenge": _S,
}


def parse_signup(body: bytes, limits: AuthLimits) -> SignupRequest | AnonymousSignupRequest:
    """Validate a POST /signup body (signup.go, anonymous.go).

    Raises:
        AuthError: bad_json, validation_failed, weak_password, signup_disabled,
            anonymous_provider_disabled, email_provider_disabled or phone_provider_disabled (400).
    """
    f = decode_fields(body, limits, "SignupParams", _SIGNUP)
    email, phone, data = f.text("email"), f.text("phone"), f.mapping("data") or {}
    if not email and not phone:
        if not limits.anonymous_users_enabled:
            raise AnonymousProviderDisabled
        if limits.disable_signup:
            raise SignupDisabled
        return AnonymousSignupRequest(data=data)
    if limits.disable_signup:
        raise SignupDisabled
    password, challenge = f.text("password"), f.text("code_challenge")
    channel = (f.text("channel") or "sms") if not email else None
    if not password:
        raise ValidationFailed("Signup requires a valid password")
    check_password_strength(password, limits)
    if email and phone:
        raise ValidationFailed(
            "Only an email address or phone number should be provided on signup."
        )
    if channel is not None:
        check_channel(channel, limits)
        if challenge:
            raise ValidationFailed("PKCE not supported for phone signups")
    pkce = validate_pkce(f.text("code_challenge_method"), challenge)
    if email:
        if not limits.email_enabled:
            raise EmailProviderDisabled("Email signups are disabled", status=400)
        return SignupRequest(
            email=validate_email(email),
            phone=None,
            password=password,
            data=data,
            channel=None,
            pkce=pkce,
        )
    if not limits.phone_enabled:
        raise PhoneProviderDisabled("Phone signups are disabled", status=400)
    return SignupRequest(
        email=None,
        phone=validate_phone(phone),
        password=password,
        data=data,
        channel=channel,
        pkce=pkce,
    )


@final
@attrs.frozen(kw_only=True)
class OtpRequest:
    """POST /otp: a magic link / email OTP (`email`) or an SMS OTP (`phone`, `channel`)."""

    email: str | None
    phone: str | None
    create_user: bool
    data: JsonObject
    channel: str | None
    pkce: PkceChallenge | None


_OTP: Final = {
    "email": _S,
    "phone": _S,
    "create_user": FieldKind.BOOL,
    "data": FieldKind.MAP,
    "channel": _S,
    "code_challenge_method": _S,
    "code_challenge": _S,
}


def parse_otp(body: bytes, limits: AuthLimits) -> OtpRequest:
    """Validate a POST /otp body (otp.go; `create_user` defaults to true).

    Raises:
        AuthError: bad_json, validation_failed, email_provider_disabled (422) or
            phone_provider_disabled (400).
    """
    f = decode_fields(body, limits, "OtpParams", _OTP)
    email, phone, channel = f.text("email"), f.text("phone"), f.text("channel")
    if email and phone:
        raise ValidationFailed("Only an email address or phone number should be provided")
    if email and channel:
        raise ValidationFailed("Channel should only be specified with Phone OTP")
    pkce = validate_pkce(f.text("code_challenge_method"), f.text("code_challenge"))
    create_user, data = f.flag("create_user", default=True), f.mapping("data") or {}
    if email:
        if not limits.email_enabled:
            raise EmailProviderDisabled
        return OtpRequest(
            email=validate_email(email),
            phone=None,
            create_user=create_user,
            data=data,
            channel=None,
            pkce=pkce,
        )
    if phone:
        if not limits.phone_enabled:
            raise PhoneProviderDisabled("Unsupported phone provider", status=400)
        number = validate_phone(phone)
        check_channel(channel or "sms", limits)
        return OtpRequest(
            email=None,
            phone=number,
            create_user=create_user,
            data=data,
            channel=channel or "sms",
            pkce=pkce,
        )
    raise ValidationFailed("One of email or phone must be set")


@final
@attrs.frozen(kw_only=True)
class VerifyRequest:
    """POST /verify or GET /verify: the OTP's hash to look up, and the address it was sent to."""

    type: str
    token_hash: str = attrs.field(repr=False)
    email: str | None = None
    phone: str | None = None
    redirect_to: str = ""


_VERIFY: Final = {
    "type": _S,
    "token": _S,
    "token_hash": _S,
    "email": _S,
    "phone": _S,
    "redirect_to": _S,
}


def parse_verify(body: bytes, limits: AuthLimits) -> VerifyRequest:
    """Validate a POST /verify body (verify.go): `{type, token, email|phone}` or `{type, token_hash}`.

    With a token, `token_hash` is computed from the normalised address and the token.

    Raises:
        AuthError: bad_json or validation_failed (422 for a bad email address).
    """
    f = decode_fields(body, limits, "VerifyParams", _VERIFY)
    kind, token, token_hash = f.text("type"), f.text("token"), f.text("token_hash")
    email, phone, redirect_to = f.text("email"), f.text("phone"), f.text("redirect_to")
    if not kind:
        raise ValidationFailed("Verify requires a verification type")
    if bool(token) == bool(token_hash):
        raise ValidationFailed("Verify requires either a token or a token hash")
    if token:
        if phone and not email:
            number = validate_phone(phone)
            result = VerifyRequest(
                type=kind, token_hash=otp_token_hash(number, token), phone=number
            )
        elif email and not phone:
            try:
                address = validate_email(email)
            except ValidationFailed:
                raise ValidationFailed("Invalid email format", status=422) from None
            result = VerifyRequest(
                type=kind, token_hash=otp_token_hash(address, token), email=address
            )
        else:
            raise ValidationFailed(
                "Only an email address or phone number should be provided on verify"
            )
    else:
        if email or phone or redirect_to:
            raise ValidationFailed("Only the token_hash and type should be provided")
        result = VerifyRequest(type=kind, token_hash=token_hash)
    if kind not in VERIFY_TYPES:
        raise ValidationFailed("Unsupported verification type")
    return attrs.evolve(result, redirect_to=redirect_to)


def parse_verify_link(token: str | None, kind: str | None) -> VerifyRequest:
    """Validate the query of GET /verify (the link in a mail): the token is the token hash.

    Raises:
        ValidationFailed: no type, no token, or an unknown type.
    """
    if not kind:
        raise ValidationFailed("Verify requires a verification type")
    if not token:
        raise ValidationFailed("Verify requires a token or a token hash")
    if kind not in VERIFY_TYPES:
        raise ValidationFailed("Unsupported verification type")
    return VerifyRequest(type=kind, token_hash=token)


@final
@attrs.frozen(kw_only=True)
class RecoverRequest:
    """POST /recover."""

    email: str
    pkce: PkceChallenge | None


def parse_recover(body: bytes, limits: AuthLimits) -> RecoverRequest:
    """Validate a POST /recover body (recover.go).

    Raises:
        AuthError: bad_json or validation_failed.
    """
    f = decode_fields(
        body,
        limits,
        "RecoverParams",
        {"email": _S, "code_challenge": _S, "code_challenge_method": _S},
    )
    if not f.text("email"):
        raise ValidationFailed("Password recovery requires an email")
    email = validate_email(f.text("email"))
    pkce = validate_pkce(f.text("code_challenge_method"), f.text("code_challenge"))
    return RecoverRequest(email=email, pkce=pkce)


@final
@attrs.frozen(kw_only=True)
class ResendRequest:
    """POST /resend: `type` is signup, email_change, sms or phone_change."""

    type: str
    email: str | None
    phone: str | None
    pkce: PkceChallenge | None


def parse_resend(body: bytes, limits: AuthLimits) -> ResendRequest:
    """Validate a POST /resend body (resend.go).

    Raises:
        AuthError: bad_json, validation_failed, email_provider_disabled or
            phone_provider_disabled (400).
    """
    f = decode_fields(
        body,
        limits,
        "ResendConfirmationParams",
        {"type": _S, "email": _S, "phone": _S, "code_challenge": _S, "code_challenge_method": _S},
    )
    kind, email, phone = f.text("type"), f.text("email"), f.text("phone")
    if kind not in RESEND_TYPES:
        raise ValidationFailed(
            "Missing one of these types: signup, email_change, sms, phone_change"
        )
    pkce = None
    if kind in ("signup", "email_change"):
        pkce = validate_pkce(f.text("code_challenge_method"), f.text("code_challenge"))
    if not email and kind == "signup":
        raise ValidationFailed("Type provided requires an email address")
    if not phone and kind == "sms":
        raise ValidationFailed("Type provided requires a phone number")
    if email and phone:
        raise ValidationFailed("Only an email address or phone number should be provided.")
    if email:
        if not limits.email_enabled:
            raise EmailProviderDisabled(status=400)
        return ResendRequest(type=kind, email=validate_email(email), phone=None, pkce=pkce)
    if phone:
        if not limits.phone_enabled:
            raise PhoneProviderDisabled(status=400)
        return ResendRequest(type=kind, email=None, phone=validate_phone(phone), pkce=pkce)
    raise ValidationFailed("Missing email address or phone number")


@final
@attrs.frozen(kw_only=True)
class UserUpdateRequest:
    """PUT /user; None (or `""` for text) means "leave unchanged"."""

    email: str | None = None
    phone: str | None = None
    channel: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    current_password: str | None = attrs.field(default=None, repr=False)
    nonce: str = attrs.field(default="", repr=False)
    data: JsonObject | None = None
    app_metadata: JsonObject | None = None
    pkce: PkceChallenge | None = None


_USER_UPDATE: Final = {
    "email": _S,
    "password": FieldKind.OPTIONAL_STRING,
    "current_password": FieldKind.OPTIONAL_STRING,
    "nonce": _S,
    "data": FieldKind.MAP,
    "app_metadata": FieldKind.MAP,
    "phone": _S,
    "channel": _S,
    "code_challenge": _S,
    "code_challenge_method": _S,
}


def parse_user_update(body: bytes, limits: AuthLimits) -> UserUpdateRequest:
    """Validate a PUT /user body (user.go); a given password, even `""`, must pass the policy.

    Raises:
        AuthError: bad_json, validation_failed or weak_password.
    """
    f = decode_fields(body, limits, "UserUpdateParams", _USER_UPDATE)
    email = validate_email(f.text("email")) if f.text("email") else None
    phone, channel = None, None
    if f.text("phone"):
        phone = validate_phone(f.text("phone"))
        channel = f.text("channel") or "sms"
        check_channel(channel, limits)
    password = f.optional_text("password")
    if password is not None:
        check_password_strength(password, limits)
    return UserUpdateRequest(
        email=email,
        phone=phone,
        channel=channel,
        password=password,
        current_password=f.optional_text("current_password"),
        nonce=f.text("nonce"),
        data=f.mapping("data"),
        app_metadata=f.mapping("app_metadata"),
        pkce=validate_pkce(f.text("code_challenge_method"), f.text("code_challenge")),
    )
