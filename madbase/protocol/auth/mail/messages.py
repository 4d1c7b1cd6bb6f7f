"""Auth mail as values: the `SendMail` command, its templates, action links, redirect checks, OTPs.

A flow that mails yields `SendMail(to, subject, html, text, kind)`; the runtime's mailer (SMTP or
the outbox directory) delivers it and answers `None`, or a short reason when delivery failed.

Links follow GoTrue's template mailer (mailer/templatemailer): `<API URL>/verify?token=<hashed
token>&type=<type>&redirect_to=<url>`, the redirect URL left as it is unless it holds `&`, `=` or
`#` (then query-escaped). The wording of the default templates is ours; subjects are GoTrue's
defaults. `redirect_to` is accepted when it points back at the site (scheme, host and port; any
port on loopback hosts) or matches a glob of the allow list (GoTrue's `uri_allow_list`, globs with
`.` and `/` as separators); anything else falls back to the site URL.
"""

from __future__ import annotations

import enum
import html
import ipaddress
import re
from typing import Final, final
from urllib.parse import SplitResult, quote_plus, urlsplit

import attrs

from madbase.protocol.http.messages import Request

__all__ = [
    "MAIL_QUOTA_EXCEEDED",
    "OTP_RANDOM_BYTES",
    "MailKind",
    "MailSettings",
    "SendMail",
    "SendSms",
    "SmsNotSent",
    "action_link",
    "compile_glob",
    "otp_from_random",
    "redirect_allowed",
    "referrer",
    "render_mail",
    "render_sms",
]

# What the runtime answers a `SendMail` with when the project-wide mail quota is used up
# (GoTrue's RATE_LIMIT_EMAIL_SENT): the flow answers 429 over_email_send_rate_limit.
MAIL_QUOTA_EXCEEDED: Final = "over_email_send_rate_limit"

# Random bytes drawn per OTP: 64 bits make the modulo bias towards low codes negligible.
OTP_RANDOM_BYTES: Final = 8


class MailKind(enum.StrEnum):
    """The templates (GoTrue's template names)."""

    CONFIRMATION = "confirmation"
    INVITE = "invite"
    MAGIC_LINK = "magic_link"
    RECOVERY = "recovery"
    EMAIL_CHANGE = "email_change"
    REAUTHENTICATION = "reauthentication"


@final
@attrs.frozen(kw_only=True)
class SendMail:
    """Command: deliver one message; the runtime answers None, or a reason it could not
    (`MAIL_QUOTA_EXCEEDED` when the project's hourly mail quota is used up)."""

    to: str
    # The reauthentication subject carries the code: out of reprs, like the bodies.
    subject: str = attrs.field(repr=False)
    html: str = attrs.field(repr=False)
    text: str = attrs.field(repr=False)
    kind: MailKind


@final
@attrs.frozen(kw_only=True)
class SendSms:
    """Command: send one text message; the runtime answers its message id, or `SmsNotSent`."""

    to: str
    text: str = attrs.field(repr=False)
    kind: str


@final
@attrs.frozen(kw_only=True)
class SmsNotSent:
    """The runtime's answer to `SendSms` when the message could not be sent."""

    reason: str


def render_sms(otp: str) -> str:
    """GoTrue's default SMS template (SMS_TEMPLATE).

    >>> render_sms("123456")
    'Your code is 123456'
    """
    return f"Your code is {otp}"


@final
@attrs.frozen(kw_only=True)
class MailSettings:
    """What the mailing flows need besides the auth limits (defaults: GoTrue's configuration.go)."""

    # API_EXTERNAL_URL: where the links in mails point (`<public URL>/auth/v1`).
    external_url: str = "http://localhost:8000/auth/v1"
    # URI_ALLOW_LIST: globs of redirect URLs accepted besides the site URL.
    redirect_allow_list: tuple[str, ...] = ()
    # MAILER_OTP_EXP: one day.
    otp_expiry_seconds: int = 86400
    # MAILER_OTP_LENGTH: 6 (GoTrue accepts 6 to 10).
    otp_length: int = attrs.field(default=6, validator=attrs.validators.in_(range(6, 11)))
    # SMTP_MAX_FREQUENCY: one minute between two mails of one kind to one user.
    max_frequency_seconds: int = 60
    # MAILER_SECURE_EMAIL_CHANGE_ENABLED: confirm an email change from both addresses.
    secure_email_change: bool = True
    # SECURITY_UPDATE_PASSWORD_REQUIRE_REAUTHENTICATION: a nonce for password changes (off).
    password_require_reauthentication: bool = False
    # Whether text messages can be sent at all (GoTrue: an SMS provider is configured).
    sms_enabled: bool = False
    # SMS_OTP_EXP and SMS_MAX_FREQUENCY: a minute each.
    sms_otp_expiry_seconds: int = 60
    sms_max_frequency_seconds: int = 60


def otp_from_random(random: bytes, length: int = 6) -> str:
    """A zero-padded decimal OTP of `length` digits from random bytes.

    >>> otp_from_random(bytes(8))
    '000000'
    >>> otp_from_random((123456).to_bytes(8, "big"))
    '123456'
    """
    return str(int.from_bytes(random[:OTP_RANDOM_BYTES], "big") % 10**length).zfill(length)


def _encode_redirect(url: str) -> str:
    # GoTrue leaves a redirect URL as given unless it holds characters that would break the query.
    return quote_plus(url) if any(c in url for c in "&=#") else url


def action_link(
    external_url: str, token_hash: str, verification_type: str, redirect_to: str
) -> str:
    """The link of a mail: GET /verify with the hashed token.

    >>> action_link("http://h/auth/v1", "ab12", "signup", "http://h:3000/")
    'http://h/auth/v1/verify?token=ab12&type=signup&redirect_to=http://h:3000/'
    >>> action_link("http://h/auth/v1/", "ab", "recovery", "http://a/?x=1")
    'http://h/auth/v1/verify?token=ab&type=recovery&redirect_to=http%3A%2F%2Fa%2F%3Fx%3D1'
    """
    return (
        f"{external_url.rstrip('/')}/verify?token={quote_plus(token_hash)}"
        f"&type={quote_plus(verification_type)}&redirect_to={_encode_redirect(redirect_to)}"
    )


# (subject, heading, sentence, button) per template; `{token}` is the OTP.
_TEMPLATES: Final = {
    MailKind.CONFIRMATION: (
        "Confirm your email address",
        "Confirm your email address",
        "Open the link below to confirm this address and finish creating your account.",
        "Confirm my email address",
    ),
    MailKind.INVITE: (
        "You've been invited",
        "You have been invited",
        "An account was created for you. Open the link below to accept the invitation.",
        "Accept the invitation",
    ),
    MailKind.MAGIC_LINK: (
        "Your sign-in link",
        "Sign in",
        "Open the link below to sign in. It works once and expires soon.",
        "Sign me in",
    ),
    MailKind.RECOVERY: (
        "Reset your password",
        "Reset your password",
        "Someone asked to reset the password of this account. Open the link below to choose a"
        " new one; if it was not you, ignore this message.",
        "Choose a new password",
    ),
    MailKind.EMAIL_CHANGE: (
        "Confirm your new email address",
        "Confirm the change of your email address",
        "Open the link below to confirm {new_email} as the new address of your account; if you"
        " did not ask for this, ignore this message.",
        "Confirm the new address",
    ),
    MailKind.REAUTHENTICATION: (
        "{token} is your verification code",
        "Your verification code",
        "Enter the code below to confirm it is you. It expires soon.",
        "",
    ),
}


def render_mail(
    kind: MailKind,
    *,
    to: str,
    otp: str,
    link: str | None = None,
    new_email: str = "",
) -> SendMail:
    """The message of template `kind` for `to`, with the action link (if any) and the OTP.

    >>> m = render_mail(MailKind.MAGIC_LINK, to="a@b.co", otp="123456", link="http://x/verify")
    >>> (m.subject, "123456" in m.text, "http://x/verify" in m.html)
    ('Your sign-in link', True, True)
    """
    subject, heading, sentence, button = _TEMPLATES[kind]
    sentence = sentence.format(new_email=new_email)
    subject = subject.format(token=otp)
    text_lines = [heading, "", sentence, ""]
    html_parts = [f"<h2>{html.escape(heading)}</h2>", f"<p>{html.escape(sentence)}</p>"]
    if link is not None:
        text_lines += [link, ""]
        html_parts.append(
            f'<p><a href="{html.escape(link, quote=True)}">{html.escape(button)}</a></p>'
        )
        text_lines.append(f"Or enter this code: {otp}")
        html_parts.append(f"<p>Or enter this code: <strong>{html.escape(otp)}</strong></p>")
    else:
        text_lines.append(otp)
        html_parts.append(f"<p><strong>{html.escape(otp)}</strong></p>")
    return SendMail(
        to=to,
        subject=subject,
        html="\n".join(html_parts) + "\n",
        text="\n".join(text_lines) + "\n",
        kind=kind,
    )


# --- redirect URLs -----------------------------------------------------------------------------

_DECIMAL_HOST: Final = re.compile(r"[0-9]+")
_REGULAR_HOST: Final = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?")
_LOCALHOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"})  # noqa: S104


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A glob of the allow list as a regex (gobwas/glob with separators `.` and `/`).

    `*` matches within one part (no separator), `**` across parts, `?` one non-separator
    character, `[a-z]`/`[!a-z]` a class, `{a,b}` alternatives, `\\` escapes.

    >>> bool(compile_glob("http://*.example.com/**").fullmatch("http://app.example.com/a/b"))
    True
    >>> bool(compile_glob("http://*.example.com").fullmatch("http://a.b.example.com"))
    False
    """
    out: list[str] = []
    i, depth = 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append(r"[^./]*")
        elif c == "?":
            out.append(r"[^./]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                negate = body.startswith("!")
                body = body[1:] if negate else body
                chars = "".join("\\" + ch if ch in "\\^[]" else ch for ch in body)
                out.append(f"[{'^' if negate else ''}{chars}]")
                i = end + 1
                continue
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    out.extend(")" * depth)
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return re.compile(re.escape(pattern))


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    return parts


def _host(parts: SplitResult) -> str:
    return (parts.hostname or "").lower()


def redirect_allowed(url: str, site_url: str, allow_list: tuple[str, ...]) -> bool:
    """Whether GoTrue would redirect to `url` (utilities.IsRedirectURLValid).

    >>> redirect_allowed("http://localhost:5173/cb", "http://localhost:3000", ())
    True
    >>> redirect_allowed("https://evil.example", "http://localhost:3000", ())
    False
    >>> redirect_allowed("https://app.example/x#y", "http://site", ("https://app.example/**",))
    True
    """
    if not url:
        return False
    base, ref = _split(site_url), _split(url)
    if base is None or ref is None:
        return False
    host = _host(ref)
    if (
        _host(base) == host
        and base.scheme == ref.scheme
        and (base.port == ref.port or host in _LOCALHOSTS or host.endswith(".localhost"))
    ):
        return True
    scheme = ref.scheme.lower().rstrip(":")
    if _DECIMAL_HOST.fullmatch(host):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if scheme in ("http", "https") and not _REGULAR_HOST.fullmatch(host):
        return False
    without_fragment = url.split("#", 1)[0]
    return any(compile_glob(p).fullmatch(without_fragment) for p in allow_list)


def referrer(request: Request, site_url: str, allow_list: tuple[str, ...]) -> str:
    """Where to send the user afterwards (utilities.GetReferrer): the `redirect_to` header or
    query parameter, else the `Referer` header, when allowed; else the site URL."""
    asked = request.header("redirect_to") or request.query_param("redirect_to") or ""
    if redirect_allowed(asked, site_url, allow_list):
        return asked
    referer = request.header("referer") or ""
    if redirect_allowed(referer, site_url, allow_list):
        return referer
    return site_url
