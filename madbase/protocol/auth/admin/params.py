"""Inputs of the admin users API: the user body, Go duration strings, pagination and its headers.

GoTrue reads `AdminUserParams` (admin.go), `ban_duration` with Go's `time.ParseDuration`, and pages
with `page`/`per_page` (pagination.go); the `Link` header is the request URI with `page` replaced,
its query re-encoded by Go's `url.Values.Encode` (keys sorted). auth-js reads the page number from
the character after the first `=` of each link, which is why the order matters.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final, final
from urllib.parse import parse_qsl, quote_plus

import attrs

from madbase.protocol.auth.body import FieldKind, decode_fields
from madbase.protocol.auth.errors import ValidationFailed
from madbase.protocol.auth.limits import AuthLimits
from madbase.protocol.http.messages import JsonValue

__all__ = [
    "AdminUserParams",
    "Page",
    "go_quote",
    "link_header",
    "parse_admin_user",
    "parse_ban_duration",
    "parse_go_duration",
    "parse_page",
]

JsonObject = dict[str, JsonValue]

_S: Final = FieldKind.STRING
_ADMIN_USER_FIELDS: Final = {
    "id": _S,
    "aud": _S,
    "role": _S,
    "email": _S,
    "phone": _S,
    "password": FieldKind.OPTIONAL_STRING,
    "password_hash": _S,
    "email_confirm": FieldKind.BOOL,
    "phone_confirm": FieldKind.BOOL,
    "user_metadata": FieldKind.MAP,
    "app_metadata": FieldKind.MAP,
    "ban_duration": _S,
}
# Go's time.Duration units, in nanoseconds (time/format.go unitMap).
_UNITS: Final = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_DURATION: Final = (1 << 63) - 1
_UINT: Final = re.compile(r"[0-9]+")
_MAX_UINT64: Final = (1 << 64) - 1
DEFAULT_PER_PAGE: Final = 50  # pagination.go defaultPerPage
_POP_DEFAULT_PER_PAGE: Final = 20  # pop's Paginate turns a per_page below 1 into 20
# Postgres' OFFSET/LIMIT are bigint: keep huge pages inside it (they select nothing anyway).
_MAX_SQL_INT: Final = 1 << 62


@final
@attrs.frozen(kw_only=True)
class AdminUserParams:
    """The body of POST/PUT `/admin/users[/{id}]`; `present` names the keys the body set."""

    id: str = ""
    aud: str = ""
    role: str = ""
    email: str = ""
    phone: str = ""
    password: str | None = attrs.field(default=None, repr=False)
    password_hash: str = attrs.field(default="", repr=False)
    email_confirm: bool = False
    phone_confirm: bool = False
    user_metadata: JsonObject | None = None
    app_metadata: JsonObject | None = None
    ban_duration: str = ""


def parse_admin_user(body: bytes, limits: AuthLimits) -> AdminUserParams:
    """Decode an admin user body as Go decodes `AdminUserParams`.

    Raises:
        AuthError: bad_json (not an object, a field of the wrong type) or request too large.
    """
    f = decode_fields(body, limits, "AdminUserParams", _ADMIN_USER_FIELDS)
    return AdminUserParams(
        id=f.text("id"),
        aud=f.text("aud"),
        role=f.text("role"),
        email=f.text("email"),
        phone=f.text("phone"),
        password=f.optional_text("password"),
        password_hash=f.text("password_hash"),
        email_confirm=f.flag("email_confirm"),
        phone_confirm=f.flag("phone_confirm"),
        user_metadata=f.mapping("user_metadata"),
        app_metadata=f.mapping("app_metadata"),
        ban_duration=f.text("ban_duration"),
    )


def go_quote(text: str) -> str:
    r"""`text` quoted as Go's time package quotes it in errors (non-ASCII as `\x` bytes).

    >>> go_quote('1d"µ')
    '"1d\\"\\xc2\\xb5"'
    """
    out = ['"']
    for char in text:
        if char < " " or ord(char) >= 0x80:
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
        else:
            out.append("\\" + char if char in '"\\' else char)
    out.append('"')
    return "".join(out)


def _leading_int(s: str) -> tuple[int, str] | None:
    i, value = 0, 0
    while i < len(s) and "0" <= s[i] <= "9":
        value = value * 10 + ord(s[i]) - 48
        if value > 1 << 63:
            return None
        i += 1
    return value, s[i:]


def _leading_fraction(s: str) -> tuple[int, float, str]:
    i, value, scale, overflow = 0, 0, 1.0, False
    while i < len(s) and "0" <= s[i] <= "9":
        if not overflow:
            if value > _MAX_DURATION // 10:
                overflow = True
            else:
                value = value * 10 + ord(s[i]) - 48
                scale *= 10
        i += 1
    return value, scale, s[i:]


def parse_go_duration(text: str) -> int:
    """Nanoseconds of a Go duration string (`time.ParseDuration`), e.g. `"1h30m"`, `"-1.5s"`.

    >>> parse_go_duration("1h30m"), parse_go_duration("-1.5us"), parse_go_duration("0")
    (5400000000000, -1500, 0)

    Raises:
        ValueError: with Go's message (`time: invalid duration "x"`, `missing unit`, ...).
    """
    invalid = ValueError(f"time: invalid duration {go_quote(text)}")
    s, neg, total = text, False, 0
    if s and s[0] in "+-":
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid
        before = len(s)
        leading = _leading_int(s)
        if leading is None:
            raise invalid
        value, s = leading
        pre = before != len(s)
        fraction, scale, post = 0, 1.0, False
        if s and s[0] == ".":
            s = s[1:]
            before = len(s)
            fraction, scale, s = _leading_fraction(s)
            post = before != len(s)
        if not pre and not post:
            raise invalid
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {go_quote(text)}")
        unit_name, s = s[:i], s[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(
                f"time: unknown unit {go_quote(unit_name)} in duration {go_quote(text)}"
            )
        if value > (1 << 63) // unit:
            raise invalid
        value *= unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))
            if value > 1 << 63:
                raise invalid
        total += value
        if total > 1 << 63:
            raise invalid
    if neg:
        return -total
    if total > _MAX_DURATION:
        raise invalid
    return total


def parse_ban_duration(text: str) -> timedelta | None:
    """The ban to apply: None to leave the ban alone, a zero delta to lift it (`"none"`).

    Raises:
        ValidationFailed: not a Go duration (GoTrue's message).
    """
    if text == "":
        return None
    if text == "none":
        return timedelta(0)
    try:
        nanoseconds = parse_go_duration(text)
    except ValueError as err:
        raise ValidationFailed(f"invalid format for ban duration: {err}") from None
    return timedelta(microseconds=nanoseconds / 1000)


@final
@attrs.frozen(kw_only=True)
class Page:
    """A requested page: the numbers as given (for the headers) and the rows to select."""

    page: int
    per_page: int
    limit: int
    offset: int


def _parse_uint(text: str) -> int:
    if not _UINT.fullmatch(text):
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value > _MAX_UINT64:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def parse_page(page: str | None, per_page: str | None) -> Page:
    """`page` (default 1) and `per_page` (default 50) as GoTrue's `paginate` reads them.

    Raises:
        ValidationFailed: not an unsigned integer ("Bad Pagination Parameters: ...").
    """
    try:
        number = _parse_uint(page) if page else 1
        size = _parse_uint(per_page) if per_page else DEFAULT_PER_PAGE
    except ValueError as err:
        raise ValidationFailed(f"Bad Pagination Parameters: {err}") from None
    limit = size if size >= 1 else _POP_DEFAULT_PER_PAGE
    offset = (max(number, 1) - 1) * limit
    return Page(
        page=number,
        per_page=size,
        limit=min(limit, _MAX_SQL_INT),
        offset=min(offset, _MAX_SQL_INT),
    )


def _encode_query(pairs: list[tuple[str, str]]) -> str:
    """Go's `url.Values.Encode`: keys sorted, values in their order, query-escaped."""
    order = sorted({key for key, _ in pairs})
    return "&".join(
        f"{quote_plus(key, safe='-_.~')}={quote_plus(value, safe='-_.~')}"
        for key in order
        for k, value in pairs
        if k == key
    )


def link_header(path: str, query: str, page: Page, total: int) -> str:
    """The `Link` header GoTrue sends with a page of users (`rel="next"` while one follows).

    >>> link_header("/admin/users", "page=1&per_page=2", Page(page=1, per_page=2, limit=2,
    ...     offset=0), 5)
    '</admin/users?page=2&per_page=2>; rel="next", </admin/users?page=3&per_page=2>; rel="last"'
    """
    # GoTrue divides by per_page as given and fails on 0; pop pages by 20 then, so count by it.
    per_page = page.per_page or _POP_DEFAULT_PER_PAGE
    pages = -(-total // per_page)
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "page"]

    def url(number: int) -> str:
        return f"{path}?{_encode_query([('page', str(number)), *pairs])}"

    links = []
    if pages > page.page:
        links.append(f'<{url(page.page + 1)}>; rel="next"')
    links.append(f'<{url(pages)}>; rel="last"')
    return ", ".join(links)
