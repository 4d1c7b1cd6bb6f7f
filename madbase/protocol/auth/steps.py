"""What every `/auth/v1` flow is made of: the commands, the settings, and shared steps.

A flow (see `flows`) is a generator that yields one command whenever it needs the outside world
and is sent the result. The commands and what the runtime sends back:

    RunTransaction(tx)     -> list[DbResult] | DbError   (one pipelined round trip)
    HashPassword(...)      -> str                        (argon2id, in a worker thread)
    CheckPassword(...)     -> bool                       (by the hash's scheme)
    DrawRandom(size)       -> bytes                      (from a CSPRNG)
    HttpRequest(...)       -> HttpResponse | HttpFailure (to an OAuth provider, see `outbound`)
    SendMail(...)          -> None | str                 (delivered, or why not; see `mail.messages`)
    SendSms(...)           -> str | SmsNotSent           (the message id, or why not)

The helpers here (`run`, `draw_random`, `authenticate`, `session_body`, ...) are the steps the
endpoint modules share: each endpoint module imports them, never another endpoint module.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Final, TypeAlias, TypeVar, final

import attrs

from madbase.protocol.auth import sql
from madbase.protocol.auth.errors import (
    BadJwt,
    NoAuthorization,
    NotAdmin,
    SessionNotFound,
    UnexpectedFailure,
    UserBanned,
    UserNotFound,
    WeakPassword,
)
from madbase.protocol.auth.external.providers import ExternalSettings
from madbase.protocol.auth.limits import AuthLimits
from madbase.protocol.auth.mail.messages import MailSettings, SendMail, SendSms
from madbase.protocol.auth.outbound import HttpRequest
from madbase.protocol.auth.passwords import (
    CheckPassword,
    HashPassword,
)
from madbase.protocol.auth.tokens import (
    AmrClaim,
    Session,
    User,
    issue_access_token,
    session_response,
)
from madbase.protocol.http.messages import JsonValue, Request, Response, json_response
from madbase.protocol.identity import BearerError, BearerVerifier, Principal
from madbase.protocol.sql import DbError, DbResult, Statement, Transaction, describe_error

__all__ = [
    "ADMIN_ROLES",
    "DUMMY_HASH",
    "UNIQUE_VIOLATION",
    "UUID_BYTES",
    "AuthCommand",
    "AuthSettings",
    "DrawRandom",
    "Flow",
    "JsonObject",
    "RunTransaction",
    "amr",
    "audit",
    "authenticate",
    "bearer_claims",
    "check_password",
    "client_ip",
    "database_failure",
    "draw_random",
    "first",
    "hash_password",
    "is_uuid",
    "merge_metadata",
    "require_admin",
    "run",
    "session_body",
    "session_statements",
    "start_session",
    "try_run",
    "uuids",
]

JsonObject = dict[str, JsonValue]
T = TypeVar("T")

# argon2id of a throw-away password with the runtime's parameters (m=19456, t=2, p=1): checked
# when the user does not exist, so that costs the same as a wrong password.
DUMMY_HASH: Final = "$argon2id$v=19$m=19456,t=2,p=1$1XdkXfTFN4Rwwy3d5zyFDQ$1fqOs1AiwkEvWwHy52zRCuD4AByeFNXA2BKbeI0dyYU"
UNIQUE_VIOLATION: Final = "23505"
UUID_BYTES: Final = 16


@final
@attrs.frozen(kw_only=True)
class RunTransaction:
    """Command: run `tx`; the runtime answers `list[DbResult] | DbError`."""

    tx: Transaction


@final
@attrs.frozen(kw_only=True)
class DrawRandom:
    """Command: draw `size` random bytes from a CSPRNG; the runtime answers `bytes`."""

    size: int


AuthCommand: TypeAlias = (
    RunTransaction | HashPassword | CheckPassword | DrawRandom | HttpRequest | SendMail | SendSms
)
Flow: TypeAlias = Generator[AuthCommand, object, T]


@final
@attrs.frozen(kw_only=True)
class AuthSettings:
    """What the flows of one project need besides the request: limits, signing secret, URLs."""

    limits: AuthLimits
    secret: str = attrs.field(repr=False)
    site_url: str
    # GoTrue's MAILER_AUTOCONFIRM; on for local development, so signup signs in.
    autoconfirm: bool = True
    # GoTrue's URI_ALLOW_LIST: where `redirect_to` may point besides the site URL (globs).
    uri_allow_list: tuple[str, ...] = ()
    # OAuth/OIDC providers and flow-state settings (see `external.providers`).
    external: ExternalSettings = attrs.field(factory=ExternalSettings)
    # Links, redirect allow list, OTP expiry and resend interval of the mailing flows.
    mail: MailSettings = attrs.field(factory=MailSettings)
    # Checks access tokens: signature, claim types, the roles a token may name (also the roles
    # the admin API may give users) and the audience. The runtime shares one with the other
    # services; by default one for `secret` with the default roles and no audience.
    bearer: BearerVerifier = attrs.field(
        default=attrs.Factory(lambda self: BearerVerifier(self.secret), takes_self=True),
        eq=False,
        repr=False,
    )
    # The request's identity as the gateway admitted it (checked by the project's verifier, of
    # which `bearer` is a part): set per request by `auth_answer`, so that the token is not
    # verified twice. None: flows driven without a gateway verify with `bearer`.
    admitted: Principal | BearerError | None = attrs.field(default=None, eq=False, repr=False)


# --- the commands, typed -----------------------------------------------------------------------


def run(*statements: Statement, read_only: bool = False) -> Flow[list[DbResult]]:
    result = yield from try_run(*statements, read_only=read_only)
    if isinstance(result, DbError):
        raise database_failure(result, statements)
    return result


def database_failure(error: DbError, statements: Sequence[Statement]) -> UnexpectedFailure:
    """The 500 for SQL of ours that failed on its own: a bug or a broken database, never the
    client's doing. The client gets GoTrue's generic message; the cause goes to the log only.
    """
    return UnexpectedFailure(cause=f"database error {describe_error(error, statements)}")


def try_run(*statements: Statement, read_only: bool = False) -> Flow[list[DbResult] | DbError]:
    result = yield RunTransaction(tx=Transaction(statements=statements, read_only=read_only))
    assert isinstance(result, list | DbError), result
    return result


def draw_random(size: int) -> Flow[bytes]:
    result = yield DrawRandom(size=size)
    assert isinstance(result, bytes), result
    assert len(result) >= size, result
    return result


def hash_password(password: str) -> Flow[str]:
    result = yield HashPassword(password=password)
    assert isinstance(result, str), result
    return result


def check_password(encrypted_password: str, password: str) -> Flow[bool]:
    result = yield CheckPassword(encrypted_password=encrypted_password, password=password)
    assert isinstance(result, bool), result
    return result


def uuids(random: bytes, count: int) -> list[str]:
    return [
        str(uuid.UUID(bytes=random[i * UUID_BYTES : (i + 1) * UUID_BYTES], version=4))
        for i in range(count)
    ]


def first(result: DbResult) -> bytes | None:
    return result.rows[0][0] if result.rows else None


def client_ip(request: Request) -> str | None:
    if request.client is None:
        return None
    try:
        return str(ipaddress.ip_address(request.client))
    except ValueError:
        return None


def session_statements(
    user: User, *, ids: list[str], token: str, method: str, request: Request, now: datetime
) -> tuple[Session, tuple[Statement, ...]]:
    """A new session for `user` authenticated by `method`: the value and its inserts.

    `ids` are the session id and the AMR claim id.
    """
    session_id, claim_id = ids
    session = Session(id=session_id, user_id=user.id, created_at=now, updated_at=now)
    statements = (
        sql.insert_session(
            session_id=session_id,
            user_id=user.id,
            user_agent=request.header("user-agent"),
            ip=client_ip(request),
            now=now,
        ),
        sql.insert_amr_claim(claim_id=claim_id, session_id=session_id, method=method, now=now),
        sql.insert_refresh_token(
            token=token, user_id=user.id, session_id=session_id, parent=None, now=now
        ),
    )
    return attrs.evolve(session, amr_claims=amr(method, now)), statements


def start_session(
    user: User,
    *,
    method: str,
    provider: str | None,
    ids: list[str],
    token: str,
    request: Request,
    now: datetime,
    before: tuple[Statement, ...] = (),
    after: tuple[Statement, ...] = (),
) -> Flow[tuple[User | None, Session]]:
    """Sign `user` in with a new session, in one transaction: `before`, the session's inserts
    (`session_statements`), the sign-in record, `after`; the user as stored afterwards (None if
    it vanished meanwhile) and the session."""
    session, inserts = session_statements(
        user, ids=ids, token=token, method=method, request=request, now=now
    )
    result = yield from run(
        *before,
        *inserts,
        sql.record_sign_in(user.id, provider=provider, now=now),
        *after,
        sql.select_user(user.id),
    )
    return sql.decode_user(first(result[-1])), session


def amr(method: str, now: datetime) -> tuple[AmrClaim, ...]:
    return (AmrClaim(method=method, updated_at=now),)


def session_body(
    user: User,
    session: Session,
    refresh_token: str,
    settings: AuthSettings,
    *,
    now: datetime,
    weak: WeakPassword | None = None,
    provider_token: str | None = None,
    provider_refresh_token: str | None = None,
) -> Response:
    access = issue_access_token(
        user, session, limits=settings.limits, secret=settings.secret, now=now
    )
    body = session_response(
        user,
        access,
        refresh_token,
        now=now,
        weak_password=weak,
        provider_token=provider_token,
        provider_refresh_token=provider_refresh_token,
    )
    return json_response(200, body)


def audit(
    user_id: str,
    action: str,
    log_type: str,
    *,
    entry_id: str,
    request: Request,
    now: datetime,
    traits: JsonObject | None = None,
) -> Statement:
    return sql.insert_audit_entry(
        entry_id=entry_id,
        user_id=user_id,
        action=action,
        log_type=log_type,
        traits=traits,
        ip=request.client,
        now=now,
    )


# --- the request's user


def bearer_claims(request: Request, settings: AuthSettings, *, now: datetime) -> JsonObject:
    authorization = request.header("authorization")
    if authorization is None or not authorization.strip():
        raise NoAuthorization
    auth = settings.admitted
    if auth is None:
        try:
            auth = settings.bearer.verify(authorization, now=now)
        except BearerError as err:
            auth = err
    if isinstance(auth, BearerError):
        raise BadJwt(f"invalid JWT: unable to parse or verify signature, {auth.message}")
    claims = sql.load_json(auth.claims_json.encode())
    assert claims is not None
    return claims


def authenticate(
    request: Request, settings: AuthSettings, *, now: datetime, refuse_banned: bool = True
) -> Flow[tuple[User, str | None]]:
    """The user of the request's access token and its session id (checked to exist).

    GoTrue's requireAuthentication: a token whose user or session is gone is refused with 403
    user_not_found / session_not_found; `refuse_banned` adds the ban check of the routes that
    make one (not logout).
    """
    claims = bearer_claims(request, settings, now=now)
    subject, session_id = claims.get("sub"), claims.get("session_id")
    if not isinstance(subject, str) or not is_uuid(subject):
        raise BadJwt("invalid claim: missing sub claim")
    session = session_id if isinstance(session_id, str) and is_uuid(session_id) else None
    (row,) = yield from run(sql.user_and_session(subject, session), read_only=True)
    if not row.rows:
        raise UserNotFound(status=403)
    raw_user, has_session = row.rows[0]
    user = sql.decode_user(raw_user)
    assert user is not None
    if session is not None and has_session != b"t":
        raise SessionNotFound
    if refuse_banned and user.is_banned(now=now):
        raise UserBanned(status=403)
    return user, session


def merge_metadata(base: JsonObject, updates: JsonObject | None) -> JsonObject:
    """models.User.Update*MetaData: set each given key, a null value removes it."""
    merged = dict(base)
    for key, value in (updates or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# JWT_ADMIN_ROLES default (conf/configuration.go).
ADMIN_ROLES: Final = frozenset({"service_role", "supabase_admin"})


def require_admin(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[str]:
    """The admin role of the request's token (GoTrue's requireAdminCredentials).

    Raises:
        AuthError: no_authorization (401), bad_jwt or not_admin (403); a token naming a session
            that no longer exists as `authenticate` does.
    """
    claims = bearer_claims(request, settings, now=now)
    session_id = claims.get("session_id")
    if isinstance(session_id, str) and session_id and session_id != sql.NIL_UUID:
        # A token of a real session counts only while that session lives.
        yield from authenticate(request, settings, now=now)
    role = claims.get("role")
    if not isinstance(role, str) or role not in ADMIN_ROLES:
        raise NotAdmin("User not allowed")
    return role
