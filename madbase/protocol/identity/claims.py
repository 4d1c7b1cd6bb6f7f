"""The claims of a project-signed JWT: parsed strictly, typed, and the role and audience checked.

Shared by the gateway's API-key check (`keys`) and the request's bearer check (`bearer`), so that
the anon key, a user's access token and a hand-made service token meet the same rules, which are
PostgREST's (`Auth/Jwt.hs`, `checkForErrors`) where it has one:

- the payload is JSON: `NaN`/`Infinity` (which Python's parser would take) and numbers too large
  for a double (`1e309`, which Python reads as infinity) fail as "Parsing claims failed". Such a
  value could not be handed to Postgres as JSON either (it answered 22P02 to the client).
- `exp`, `nbf` and `iat` are numbers; `aud` is a string or an array of strings; `role` and `sub`
  are strings. Anything else is refused with PostgREST's message for that claim.
- `exp` after 9999-12-31 is refused as expired: PostgREST reads an `exp` beyond its integer range
  as 0 (so expired), no clock or Postgres `timestamptz` arithmetic of an RLS policy can handle it,
  and refusing rather than capping keeps a token from meaning "forever" by accident.
- the role must be one the login role `authenticator` may switch to (`roles`, loaded from the
  database by the runtime). PostgREST leaves that to `SET ROLE`, which fails inside the request;
  here it is decided before any SQL runs, with one answer for roles that do not exist and roles
  that are not granted (a token cannot probe which roles exist).
- with an audience configured (PostgREST's `jwt-aud`), a token with an `aud` must list it; a token
  without one (the project's API keys) passes, as in PostgREST.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Final, final

import attrs

from madbase.protocol.sql import DbResult, Statement

__all__ = [
    "DEFAULT_TOKEN_ROLES",
    "LATEST_EXP",
    "CheckedClaims",
    "ClaimsError",
    "check_claims",
    "parse_claims",
    "token_roles",
    "token_roles_statement",
]

# The roles a Supabase project grants `authenticator`; used until the database says otherwise.
DEFAULT_TOKEN_ROLES: Final = frozenset({"anon", "authenticated", "service_role"})
# 9999-12-31T23:59:59Z: the last second Python's datetime (and most JWT libraries) can represent.
LATEST_EXP: Final = 253_402_300_799

_DATE_CLAIMS: Final = ("exp", "nbf", "iat")


class ClaimsError(ValueError):
    """The claims are refused; `message` is PostgREST's wording (PGRST303)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@final
@attrs.frozen(kw_only=True)
class CheckedClaims:
    """What the checks found: the role the token runs as, its subject and its dates."""

    role: str
    subject: str | None
    expires_at: int | float | None
    not_before: int | float | None
    issued_at: int | float | None


def _refuse_constant(name: str) -> float:
    raise ValueError(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(text)
    return value


def parse_claims(payload: bytes) -> dict[str, object]:
    """Parse a JWT payload as strict JSON into its claims object.

    >>> parse_claims(b'{"role":"anon","exp":1.5}')
    {'role': 'anon', 'exp': 1.5}

    Raises:
        ClaimsError: not UTF-8 JSON, not an object, `NaN`/`Infinity`, or a number beyond a double.
    """
    try:
        claims = json.loads(payload, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        raise ClaimsError("Parsing claims failed") from None
    if not isinstance(claims, dict):
        raise ClaimsError("Parsing claims failed")
    return claims


def check_claims(
    claims: Mapping[str, object],
    *,
    default_role: str,
    roles: frozenset[str],
    audience: str | None,
) -> CheckedClaims:
    """Check the claims' types, the role and the audience; the dates are the caller's to compare.

    `default_role` is the role of a token without a `role` claim.

    >>> check_claims({"role": "postgres"}, default_role="anon", roles=DEFAULT_TOKEN_ROLES,
    ...              audience=None)
    Traceback (most recent call last):
    ...
    madbase.protocol.identity.claims.ClaimsError: permission denied to set role "postgres"

    Raises:
        ClaimsError: a claim of the wrong type, `exp` after 9999, a role outside `roles`, or
            an `aud` without `audience`.
    """
    dates: list[int | float | None] = []
    for name in _DATE_CLAIMS:
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ClaimsError(f"The JWT '{name}' claim must be a number")
        dates.append(value)
    expires_at, not_before, issued_at = dates
    if expires_at is not None and expires_at > LATEST_EXP:
        raise ClaimsError("JWT expired")
    aud = claims.get("aud")
    if aud is not None and not _is_audience(aud):
        raise ClaimsError("The JWT 'aud' claim must be a string or an array of strings")
    role = claims.get("role", default_role)
    if not isinstance(role, str):
        raise ClaimsError("The JWT 'role' claim must be a string")
    subject = claims.get("sub")
    if subject is not None and not isinstance(subject, str):
        raise ClaimsError("The JWT 'sub' claim must be a string")
    if audience is not None and aud is not None and not _lists(aud, audience):
        raise ClaimsError("JWT not in audience")
    if role not in roles:
        raise ClaimsError(f'permission denied to set role "{role}"')
    return CheckedClaims(
        role=role,
        subject=subject,
        expires_at=expires_at,
        not_before=not_before,
        issued_at=issued_at,
    )


def _is_audience(aud: object) -> bool:
    return isinstance(aud, str) or (isinstance(aud, list) and all(isinstance(a, str) for a in aud))


def _lists(aud: object, audience: str) -> bool:
    return aud == audience or (isinstance(aud, list) and audience in aud)


# A role `authenticator` may `SET ROLE` to: it is a member (directly or through other roles).
# Superusers are left out even if granted: a token must never become one.
_TOKEN_ROLES_SQL: Final = re.sub(
    r"\s+",
    " ",
    """
    select coalesce(json_agg(r.rolname order by r.rolname), '[]')::text from pg_roles r
     where pg_has_role('authenticator', r.oid, 'MEMBER')
       and r.rolname <> 'authenticator' and not r.rolsuper
    """,
).strip()


def token_roles_statement() -> Statement:
    """The roles a token may name: those the login role `authenticator` may switch to.

    The role is named, not `current_user`: the pool may log in as another role.
    """
    return Statement(_TOKEN_ROLES_SQL)


def token_roles(result: DbResult) -> frozenset[str]:
    """The roles in the answer to `token_roles_statement()`.

    >>> sorted(token_roles(DbResult(rows=((b'["anon","web"]',),), command="SELECT 1")))
    ['anon', 'web']
    """
    raw = result.rows[0][0] if result.rows else None
    names = json.loads(raw) if raw is not None else []
    assert isinstance(names, list), names
    return frozenset(name for name in names if isinstance(name, str))
