"""Where `/auth/v1` may send a browser: `redirect_to` checked against the site URL and allow list.

GoTrue's utilities.GetReferrer and IsRedirectURLValid: a URL on the site's scheme, host and port
(any port on loopback) is allowed; so is one matching a `URI_ALLOW_LIST` glob (matched without
its fragment; `*` stops at `.` and `/`, `**` does not, `?` is one character, `{a,b}` either);
decimal IP hosts never, other IP addresses only on loopback. Anything else falls back to the
site URL.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit

from madbase.protocol.auth.steps import AuthSettings
from madbase.protocol.http.messages import Request

__all__ = ["glob_pattern", "is_redirect_allowed", "referrer"]

_DECIMAL_HOST: Final = re.compile(r"[0-9]+")
_REGULAR_HOST: Final = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?")


@lru_cache(maxsize=256)
def glob_pattern(glob: str) -> re.Pattern[str]:
    """The regular expression of an allow-list glob (gobwas/glob with `.` and `/` separators).

    >>> bool(glob_pattern("http://*.example.com/**").fullmatch("http://a.example.com/x/y"))
    True
    >>> bool(glob_pattern("http://*.example.com/*").fullmatch("http://a.b.example.com/x"))
    False
    """
    out: list[str] = []
    i = 0
    depth = 0
    while i < len(glob):
        char = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append(r"[^./]*")
        elif char == "?":
            out.append(r"[^./]")
        elif char == "{":
            depth += 1
            out.append("(?:")
        elif char == "}" and depth:
            depth -= 1
            out.append(")")
        elif char == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(char))
        i += 1
    out.append(")" * depth)
    return re.compile("".join(out))


def _is_loopback_name(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_redirect_allowed(url: str, *, site_url: str, allow_list: tuple[str, ...]) -> bool:
    """True when the browser may be sent to `url`.

    >>> is_redirect_allowed("http://localhost:3000/cb", site_url="http://localhost:8000",
    ...                     allow_list=())
    True
    >>> is_redirect_allowed("https://evil.test/", site_url="https://app.test", allow_list=())
    False
    """
    if not url:
        return False
    try:
        base, target = urlsplit(site_url), urlsplit(url)
        base_port, target_port = base.port, target.port
    except ValueError:
        return False
    host = target.hostname or ""
    if (
        base.hostname == host
        and base.scheme == target.scheme
        and (base_port == target_port or _is_loopback_name(host))
    ):
        return True
    scheme = target.scheme.lower()
    if _DECIMAL_HOST.fullmatch(host):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if scheme in ("http", "https") and not _REGULAR_HOST.fullmatch(host):
        return False
    bare = url.split("#", 1)[0]
    return any(glob_pattern(glob).fullmatch(bare) for glob in allow_list)


def referrer(request: Request, settings: AuthSettings) -> str:
    """Where the flow ends: `redirect_to` (header or query), else `Referer`, if allowed; else the
    site URL."""
    for candidate in (
        request.header("redirect_to") or request.query_param("redirect_to"),
        request.header("referer"),
    ):
        if candidate and is_redirect_allowed(
            candidate, site_url=settings.site_url, allow_list=settings.uri_allow_list
        ):
            return candidate
    return settings.site_url
