"""Where `/auth/v1` may send a browser: `redirect_to` checked against the site URL and allow list.

GoTrue's utilities.GetReferrer and IsRedirectURLValid, implemented once in `mail.messages` (the mailed
flows use them for their links) and offered here with the names the OAuth flows use: a URL on the
site's scheme, host and port (any port on loopback) is allowed; so is one matching an allow-list
glob (matched without its fragment; `*` stops at `.` and `/`, `**` does not, `?` is one
character, `{a,b}` either); decimal IP hosts never, other IP addresses only on loopback. Anything
else falls back to the site URL.
"""

from __future__ import annotations

import re

from madbase.protocol.auth.mail import messages as mail
from madbase.protocol.auth.steps import AuthSettings
from madbase.protocol.http.messages import Request

__all__ = ["glob_pattern", "is_redirect_allowed", "referrer"]


def glob_pattern(glob: str) -> re.Pattern[str]:
    """The regular expression of an allow-list glob (gobwas/glob with `.` and `/` separators).

    >>> bool(glob_pattern("http://*.example.com/**").fullmatch("http://a.example.com/x/y"))
    True
    >>> bool(glob_pattern("http://*.example.com/*").fullmatch("http://a.b.example.com/x"))
    False
    """
    return mail.compile_glob(glob)


def is_redirect_allowed(url: str, *, site_url: str, allow_list: tuple[str, ...]) -> bool:
    """True when the browser may be sent to `url`.

    >>> is_redirect_allowed("http://localhost:3000/cb", site_url="http://localhost:8000",
    ...                     allow_list=())
    True
    >>> is_redirect_allowed("https://evil.test/", site_url="https://app.test", allow_list=())
    False
    """
    return mail.redirect_allowed(url, site_url, allow_list)


def referrer(request: Request, settings: AuthSettings) -> str:
    """Where the flow ends: `redirect_to` (header or query), else `Referer`, if allowed; else the
    site URL."""
    return mail.referrer(request, settings.site_url, settings.uri_allow_list)
