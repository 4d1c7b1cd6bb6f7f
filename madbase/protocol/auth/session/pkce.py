"""PKCE flow state (`auth.flow_state`) and the `pkce` token grant.

GoTrue's models/flow_state.go, api/pkce.go and the PKCE half of api/token.go. A flow that may end
in `?code=<auth_code>` (OAuth with a `code_challenge`, and later magic links, sign-up confirmation
and recovery) stores a flow state: its id, the challenge and method, the provider and the
authentication method (the AMR the session will carry). Once the user is known the row gets its
`user_id` (and, for OAuth, the provider's tokens); `POST /token?grant_type=pkce` then trades
`{auth_code, code_verifier}` for a session, exactly once, within the expiry (300 s by default,
counted from creation; for magic links from the moment the code was issued).

OAuth also stores a flow state without a challenge (the implicit flow): its id is the `state`
parameter sent to the provider, so the callback finds what `/authorize` was asked.

Reusable parts: `FlowStateRow`, `new_flow_state`, `insert_flow_state`, `issue_auth_code`,
`flow_state_by_id`, `claim_flow_state`, `delete_flow_state`, `check_flow_state`,
`pkce_redirect_url` and the grant itself, `pkce_grant`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final, final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from madbase.protocol.auth import sql
from madbase.protocol.auth.errors import FlowStateExpired, FlowStateNotFound
from madbase.protocol.auth.refresh import new_refresh_token
from madbase.protocol.auth.session.grants import PkceGrant
from madbase.protocol.auth.steps import (
    UUID_BYTES,
    AuthSettings,
    Flow,
    audit,
    draw_random,
    run,
    session_body,
    start_session,
    uuids,
)
from madbase.protocol.auth.validate import CodeChallengeMethod, PkceChallenge, verify_pkce
from madbase.protocol.http.messages import Request, Response
from madbase.protocol.sql import Statement

__all__ = [
    "MAGIC_LINK",
    "FlowStateRow",
    "check_flow_state",
    "claim_flow_state",
    "decode_flow_state",
    "delete_flow_state",
    "flow_state_by_id",
    "insert_flow_state",
    "issue_auth_code",
    "new_flow_state",
    "pkce_grant",
    "pkce_redirect_url",
]

# The authentication method whose expiry counts from the issue of the code (flow_state.go).
MAGIC_LINK: Final = "magiclink"


@final
@attrs.frozen(kw_only=True)
class FlowStateRow:
    """A row of `auth.flow_state`."""

    id: str
    provider_type: str
    authentication_method: str
    created_at: datetime
    user_id: str | None = None
    auth_code: str | None = attrs.field(default=None, repr=False)
    pkce: PkceChallenge | None = None
    provider_access_token: str = attrs.field(default="", repr=False)
    provider_refresh_token: str = attrs.field(default="", repr=False)
    auth_code_issued_at: datetime | None = None
    referrer: str | None = None
    linking_target_id: str | None = None

    @property
    def is_pkce(self) -> bool:
        """True when the flow ends with an auth code (a challenge was sent)."""
        return self.pkce is not None

    def is_expired(self, *, now: datetime, expiry_seconds: int) -> bool:
        """GoTrue's `IsExpired`: from the code's issue for magic links, else from creation."""
        start = self.created_at
        if self.auth_code_issued_at is not None and self.authentication_method == MAGIC_LINK:
            start = self.auth_code_issued_at
        return now > start + timedelta(seconds=expiry_seconds)


def new_flow_state(
    random: bytes,
    *,
    provider_type: str,
    authentication_method: str,
    pkce: PkceChallenge | None,
    now: datetime,
    user_id: str | None = None,
    referrer: str | None = None,
    linking_target_id: str | None = None,
) -> FlowStateRow:
    """A new flow state from 32 random bytes (its id, then its auth code when `pkce` is set)."""
    flow_id, auth_code = uuids(random, 2)
    return FlowStateRow(
        id=flow_id,
        provider_type=provider_type,
        authentication_method=authentication_method,
        created_at=now,
        user_id=user_id,
        auth_code=auth_code if pkce is not None else None,
        pkce=pkce,
        referrer=referrer,
        linking_target_id=linking_target_id,
    )


def insert_flow_state(state: FlowStateRow) -> Statement:
    """Store `state` (a new row)."""
    pkce = state.pkce
    return Statement(
        "insert into auth.flow_state (id, user_id, auth_code, code_challenge_method,"
        " code_challenge, provider_type, provider_access_token, provider_refresh_token,"
        " created_at, updated_at, authentication_method, auth_code_issued_at, referrer,"
        " linking_target_id) values ($1::uuid, $2::uuid, $3,"
        " $4::auth.code_challenge_method, $5, $6, $7, $8, $9::timestamptz, $9::timestamptz,"
        " $10, $11::timestamptz, $12, $13::uuid)",
        (
            state.id,
            state.user_id,
            state.auth_code,
            None if pkce is None else pkce.method.value,
            None if pkce is None else pkce.challenge,
            state.provider_type,
            state.provider_access_token,
            state.provider_refresh_token,
            sql.stamp(state.created_at),
            state.authentication_method,
            None if state.auth_code_issued_at is None else sql.stamp(state.auth_code_issued_at),
            state.referrer,
            state.linking_target_id,
        ),
    )


_FLOW_STATE_JSON: Final = "to_jsonb(f)"


def flow_state_by_id(flow_id: str) -> Statement:
    """The flow state with this id (`jsonb`), or no row."""
    return Statement(
        f"select {_FLOW_STATE_JSON} from auth.flow_state f where f.id = $1::uuid",  # noqa: S608
        (flow_id,),
    )


def _flow_state_and_user(auth_code: str) -> Statement:
    return Statement(
        f"select {_FLOW_STATE_JSON}, (select {sql._USER_JSON} from auth.users u"  # noqa: S608
        " where u.id = f.user_id) from auth.flow_state f where f.auth_code = $1 limit 1",
        (auth_code,),
    )


def claim_flow_state(
    flow_id: str,
    *,
    user_id: str,
    provider_access_token: str,
    provider_refresh_token: str,
    now: datetime,
) -> Statement:
    """Bind the user (and the provider's tokens) to an unclaimed flow state; returns its auth code.

    No row: the flow state is gone or was already claimed (`flow_state_already_used`).
    """
    return Statement(
        "update auth.flow_state set user_id = $2::uuid, provider_access_token = $3,"
        " provider_refresh_token = $4, auth_code_issued_at = $5::timestamptz,"
        " updated_at = $5::timestamptz where id = $1::uuid and user_id is null returning auth_code",
        (flow_id, user_id, provider_access_token, provider_refresh_token, sql.stamp(now)),
    )


def issue_auth_code(user_id: str, authentication_method: str, *, now: datetime) -> Statement:
    """Mark the user's latest PKCE flow state of this method issued; returns its auth code.

    GoTrue's `issueAuthCode` (mail flows: the code goes into the verification redirect). No row:
    no such PKCE flow state (`flow_state_not_found`).
    """
    return Statement(
        "update auth.flow_state set auth_code_issued_at = $3::timestamptz,"
        " updated_at = $3::timestamptz where id = (select id from auth.flow_state"
        " where user_id = $1::uuid and authentication_method = $2"
        " order by created_at desc limit 1) and code_challenge is not null returning auth_code",
        (user_id, authentication_method, sql.stamp(now)),
    )


def delete_flow_state(flow_id: str) -> Statement:
    """Delete the flow state; returns its id (no row: someone else used it first)."""
    return Statement("delete from auth.flow_state where id = $1::uuid returning id", (flow_id,))


def decode_flow_state(raw: bytes | None) -> FlowStateRow | None:
    """The `FlowStateRow` of a `to_jsonb(flow_state)` column (None for NULL)."""
    row = sql.load_json(raw)
    if row is None:
        return None

    def text(key: str) -> str | None:
        value = row.get(key)
        return value if isinstance(value, str) else None

    def time(key: str) -> datetime | None:
        value = text(key)
        if value is None:
            return None
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)

    challenge, method = text("code_challenge"), text("code_challenge_method")
    pkce = None
    if challenge and method:
        pkce = PkceChallenge(challenge=challenge, method=CodeChallengeMethod(method))
    return FlowStateRow(
        id=text("id") or "",
        provider_type=text("provider_type") or "",
        authentication_method=text("authentication_method") or "",
        created_at=time("created_at") or datetime(1970, 1, 1, tzinfo=UTC),
        user_id=text("user_id"),
        auth_code=text("auth_code"),
        pkce=pkce,
        provider_access_token=text("provider_access_token") or "",
        provider_refresh_token=text("provider_refresh_token") or "",
        auth_code_issued_at=time("auth_code_issued_at"),
        referrer=text("referrer"),
        linking_target_id=text("linking_target_id"),
    )


def check_flow_state(
    state: FlowStateRow | None, verifier: str, *, now: datetime, expiry_seconds: int
) -> FlowStateRow:
    """The flow state a `pkce` grant may use, in GoTrue's order of checks.

    Raises:
        FlowStateNotFound: no such auth code, or no user bound to it yet.
        FlowStateExpired: older than `expiry_seconds`.
        BadCodeVerifier: the verifier does not match the challenge.
    """
    if state is None or state.user_id is None or state.pkce is None:
        raise FlowStateNotFound
    if state.is_expired(now=now, expiry_seconds=expiry_seconds):
        raise FlowStateExpired
    verify_pkce(state.pkce, verifier)
    return state


def pkce_redirect_url(url: str, auth_code: str) -> str:
    """`url` with `code=<auth_code>` in its query (GoTrue's `prepPKCERedirectURL`: the query is
    re-encoded with its keys sorted, as Go's `url.Values.Encode`).

    >>> pkce_redirect_url("http://app.test/cb?x=1&b=2#frag", "c0de")
    'http://app.test/cb?b=2&code=c0de&x=1#frag'
    """
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "code"]
    query.append(("code", auth_code))
    return urlunsplit(parts._replace(query=urlencode(sorted(query, key=lambda kv: kv[0]))))


def pkce_grant(
    grant: PkceGrant, request: Request, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    """POST /token?grant_type=pkce: one session per auth code, then the flow state is gone.

    Raises:
        AuthError: flow_state_not_found, flow_state_expired, bad_code_verifier, user_banned.
    """
    (row,) = yield from run(_flow_state_and_user(grant.auth_code), read_only=True)
    state = decode_flow_state(row.rows[0][0]) if row.rows else None
    state = check_flow_state(
        state,
        grant.code_verifier,
        now=now,
        expiry_seconds=settings.external.flow_state_expiry_seconds,
    )
    user = sql.decode_user(row.rows[0][1])
    if user is None:
        raise FlowStateNotFound
    # The delete decides who used the code first; the loser finds nothing.
    (deleted,) = yield from run(delete_flow_state(state.id))
    if not deleted.rows:
        raise FlowStateNotFound
    random = yield from draw_random(3 * UUID_BYTES + 8)
    session_id, claim_id, audit_id = uuids(random, 3)
    token = new_refresh_token(random[3 * UUID_BYTES :])
    login = audit(
        user.id,
        "login",
        "account",
        entry_id=audit_id,
        request=request,
        now=now,
        traits={"provider_type": state.provider_type},
    )
    stored, session = yield from start_session(
        user,
        method=state.authentication_method,
        provider=None,
        ids=[session_id, claim_id],
        token=token,
        request=request,
        now=now,
        after=(login,),
    )
    fresh = stored or user
    return session_body(
        fresh,
        session,
        token,
        settings,
        now=now,
        provider_token=state.provider_access_token or None,
        provider_refresh_token=state.provider_refresh_token or None,
    )
