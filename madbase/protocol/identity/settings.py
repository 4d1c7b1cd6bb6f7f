"""The transaction settings row-level security reads: who is asking and what they asked.

PostgREST sets these at the start of every request's transaction (`Query.hs`, `setPgLocals`) and
Supabase's Storage and Realtime set the same ones before they touch a table with RLS, so policies
written with `auth.uid()`, `auth.role()`, `auth.jwt()` or `current_setting('request.headers')`
behave alike under every service:

    role                 the identity's database role (`SET LOCAL ROLE`)
    request.jwt.claims   the token's claims as JSON text, `role` always set
    request.method       the HTTP method
    request.path         the path inside the service (`/todos`)
    request.headers      the request headers as a JSON object, names lower-case, last value wins
    request.cookies      the request cookies as a JSON object

Each service adds its own around these (REST: `search_path` before, `timezone` after).
"""

from __future__ import annotations

import json

from madbase.protocol.identity.bearer import Principal

__all__ = ["Setting", "cookies_json", "headers_json", "rls_settings"]

Setting = tuple[str, str]


def headers_json(headers: tuple[tuple[str, str], ...]) -> str:
    """`request.headers` as PostgREST sets it: a JSON object, names lower-case, last value wins.

    >>> headers_json((("accept", "*/*"), ("x-a", "1"), ("x-a", "2")))
    '{"accept":"*/*","x-a":"2"}'
    """
    return json.dumps(dict(headers), separators=(",", ":"), ensure_ascii=False)


def cookies_json(cookies: tuple[tuple[str, str], ...]) -> str:
    """`request.cookies`: the cookies as a JSON object (`{}` without any).

    >>> cookies_json(()), cookies_json((("a", "1"),))
    ('{}', '{"a":"1"}')
    """
    if not cookies:
        return "{}"
    return json.dumps(dict(cookies), separators=(",", ":"), ensure_ascii=False)


def rls_settings(
    identity: Principal, *, method: str, path: str, headers: str, cookies: str
) -> tuple[Setting, ...]:
    """The settings above, in PostgREST's order; `headers` and `cookies` are JSON object texts.

    >>> from madbase.protocol.identity.bearer import verify_bearer
    >>> from datetime import UTC, datetime
    >>> anon = verify_bearer(None, "s" * 32, now=datetime(2026, 1, 1, tzinfo=UTC))
    >>> rls_settings(anon, method="GET", path="/t", headers="{}", cookies="{}")[:3]
    (('role', 'anon'), ('request.jwt.claims', '{"role":"anon"}'), ('request.method', 'GET'))
    """
    return (
        ("role", identity.role),
        ("request.jwt.claims", identity.claims_json),
        ("request.method", method),
        ("request.path", path),
        ("request.headers", headers),
        ("request.cookies", cookies),
    )
