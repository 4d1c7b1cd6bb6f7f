"""How an `AuthError` goes on the wire: GoTrue's two error shapes, by API version, and the class
of each GoTrue error code (for clients of this package that read GoTrue's answers).

The gateway's refusals under `/auth/v1` (no or a bad API key, two credentials, an unknown path)
are rendered here too (`render_auth_refusal`), so they follow the same API-version rule as
every other GoTrue error.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

from madbase.protocol.auth.errors import (
    AuthError,
    BadJwt,
    NoAuthorization,
    OAuthRequestError,
    ValidationFailed,
    WeakPassword,
)
from madbase.protocol.http.errors import (
    AmbiguousCredentials,
    GatewayError,
    InvalidApiKey,
    MethodNotAllowed,
    MissingApiKey,
    NotAProxy,
    RouteNotFound,
)
from madbase.protocol.http.messages import Headers, JsonValue, Request, Response, json_response

__all__ = [
    "AUTH_API_VERSION",
    "auth_api_version",
    "auth_error_class",
    "render_auth_error",
    "render_auth_refusal",
]

# The only API version GoTrue knows besides the initial one (apiversions.go).
AUTH_API_VERSION: Final = "2024-01-01"
_API_DATE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


def _subclasses(cls: type[AuthError]) -> list[type[AuthError]]:
    found: list[type[AuthError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


_BY_CODE: Final = {cls.error_code: cls for cls in _subclasses(AuthError) if cls.error_code}


def auth_error_class(error_code: str) -> type[AuthError]:
    """The class for a GoTrue `error_code`; the base `AuthError` for a code we do not know.

    >>> auth_error_class("session_not_found").status
    403
    >>> auth_error_class("no_such_code") is AuthError
    True
    """
    return _BY_CODE.get(error_code, AuthError)


def auth_api_version(header: str | None) -> str | None:
    """The API version GoTrue answers with for an `X-Supabase-Api-Version` value, or None.

    Only a real calendar date `YYYY-MM-DD` on or after 2024-01-01 selects the versioned shape;
    anything else (absent, malformed, older) selects the initial one.

    >>> auth_api_version("2024-01-01"), auth_api_version("2030-12-31")
    ('2024-01-01', '2024-01-01')
    >>> auth_api_version("2023-12-31"), auth_api_version("2024-02-30"), auth_api_version(None)
    (None, None, None)
    """
    if header is None:
        return None
    match = _API_DATE.fullmatch(header)
    if match is None:
        return None
    try:
        parsed = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
    return AUTH_API_VERSION if parsed >= date(2024, 1, 1) else None


def render_auth_error(
    err: AuthError, *, api_version: str | None, request_id: str | None = None
) -> Response:
    """The response GoTrue sends for `err`.

    `api_version` is the request's `X-Supabase-Api-Version` header, raw. `request_id` becomes
    `error_id` on 5xx errors in the legacy shape, as GoTrue does.

    >>> from madbase.protocol.auth.errors import SessionExpired
    >>> render_auth_error(SessionExpired(), api_version="2024-01-01").body
    b'{"code":"session_expired","message":"Invalid Refresh Token: Session Expired"}'
    >>> render_auth_error(SessionExpired(), api_version=None).body
    b'{"code":400,"error_code":"session_expired","msg":"Invalid Refresh Token: Session Expired"}'
    """
    version = auth_api_version(api_version)
    headers: Headers = (("x-supabase-api-version", version),) if version is not None else ()
    status = err.http_status
    body: dict[str, JsonValue]
    if isinstance(err, OAuthRequestError):
        # GoTrue answers every OAuth error with 400, whatever the instance says.
        body = {"error": err.error}
        if err.description:
            body["error_description"] = err.description
        return json_response(400, body, headers, error_code=err.error)
    code = err.error_code or ("unexpected_failure" if status == 500 else "unknown")
    if err.error_code:
        headers += (("x-sb-error-code", err.error_code),)
    if version is not None:
        body = {"code": code, "message": err.message}
    else:
        body = {"code": status, "error_code": code, "msg": err.message}
        if status >= 500 and request_id is not None:
            body["error_id"] = request_id
    if isinstance(err, WeakPassword):
        reasons: list[JsonValue] = list(err.reasons)
        body["weak_password"] = {"reasons": reasons} if reasons else {}
    return json_response(status, body, headers, error_code=code)


class _RouteNotFound(AuthError):
    """A path under `/auth/v1` no endpoint serves, refused before the flows (see the gateway)."""

    error_code = "not_found"
    status = 404


class _MethodNotAllowed(AuthError):
    """A method no route of GoTrue's takes (its router answers 405 without a code of its own)."""

    error_code = "method_not_allowed"
    status = 405


class _BadRequest(AuthError):
    error_code = "bad_request"
    status = 400


def _refusal(err: GatewayError) -> AuthError:
    message = str(err)
    match err:
        case MissingApiKey():
            return NoAuthorization(message, status=err.status)
        case InvalidApiKey():
            return BadJwt(message, status=err.status)
        case AmbiguousCredentials():
            return ValidationFailed(message, status=err.status)
        case RouteNotFound():
            return _RouteNotFound(message)
        case MethodNotAllowed():
            return _MethodNotAllowed(message)
        case NotAProxy():
            return _BadRequest(message)
    return AuthError(message, status=err.status)


def render_auth_refusal(err: GatewayError, request: Request) -> Response:
    """A gateway refusal under `/auth/v1`, in GoTrue's shape for the request's API version.

    >>> from madbase.protocol.http.messages import Request
    >>> asked = Request(method="GET", target="/auth/v1/user",
    ...                 headers=(("x-supabase-api-version", "2024-02-30"),))
    >>> render_auth_refusal(MissingApiKey(), asked).body  # not a date: the legacy shape
    b'{"code":401,"error_code":"no_authorization","msg":"No API key found in request"}'
    """
    response = render_auth_error(
        _refusal(err), api_version=request.header("x-supabase-api-version")
    )
    return response.with_headers(err.extra_headers())
