"""Sign-in through an OAuth provider: `GET /authorize`, `GET|POST /callback`, identity linking.

Theory of operation (GoTrue's api/external.go, external_oauth.go, identity.go):

1. `GET /authorize?provider=&redirect_to=&scopes=&code_challenge=&code_challenge_method=` stores
   a flow state (always: for PKCE it also holds the challenge and the future auth code) and
   answers 302 to the provider's authorize URL with `state=<flow state id>`. The flow state
   remembers the provider, where to send the browser at the end (`redirect_to` if allowed, else
   the site URL) and, for manual linking, the user to link to.
2. The provider sends the browser to `/callback?code=&state=` (Apple POSTs a form). A bad or
   stale state answers 303 to the site URL with `?error=...`. Otherwise the code is exchanged at
   the provider's token endpoint, the user is read (user-info endpoints, or the id_token for
   OIDC providers), and `linking.plan_account` decides which user signs in.
3. Implicit flow: a session is issued and the browser goes to
   `<redirect_to>#access_token=...&expires_at=...&expires_in=...&provider_token=...&refresh_token=
   ...&sb=&token_type=bearer`; the flow state is deleted. PKCE: the flow state gets the user and
   the provider's tokens, the browser goes to `<redirect_to>?code=<auth_code>`, and the client
   calls `POST /token?grant_type=pkce` (see `pkce`).
4. Errors after step 2 found the state go back to `redirect_to` as `?error=&error_code=&
   error_description=` and again in the fragment with `sb`; a provider's own
   `?error=access_denied` is passed on as is.

`GET /user/identities/authorize` starts step 1 for the signed-in user (manual linking, off by
default: 404 `manual_linking_disabled`, as is `DELETE /user/identities/{id}`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from madbase.protocol.auth import sql
from madbase.protocol.auth.errors import (
    AuthError,
    BadOAuthCallback,
    BadOAuthState,
    EmailConflictIdentityNotDeletable,
    FlowStateAlreadyUsed,
    IdentityNotFound,
    ManualLinkingDisabled,
    OAuthProviderNotSupported,
    OAuthRequestError,
    SingleIdentityNotDeletable,
    UnexpectedFailure,
    UserNotFound,
    ValidationFailed,
)
from madbase.protocol.auth.idtoken import (
    detected_issuer,
    oidc_keys,
    unverified_issuer,
    verify_id_token,
)
from madbase.protocol.auth.linking import plan_account, refresh_providers, sign_in_external
from madbase.protocol.auth.outbound import (
    HttpRequest,
    HttpResponse,
    decode_json,
    decode_token_response,
    fetch,
)
from madbase.protocol.auth.pkce import (
    FlowStateRow,
    claim_flow_state,
    decode_flow_state,
    delete_flow_state,
    flow_state_by_id,
    insert_flow_state,
    new_flow_state,
    pkce_redirect_url,
)
from madbase.protocol.auth.providers import (
    PROVIDERS,
    ExternalUser,
    ProviderConfig,
    ProviderSpec,
    endpoints,
    read_id_token_user,
)
from madbase.protocol.auth.redirects import referrer
from madbase.protocol.auth.steps import (
    UNIQUE_VIOLATION,
    UUID_BYTES,
    AuthSettings,
    Flow,
    JsonObject,
    audit,
    authenticate,
    database_failure,
    draw_random,
    first,
    run,
    try_run,
    uuids,
)
from madbase.protocol.auth.tokens import User, issue_access_token
from madbase.protocol.auth.validate import validate_pkce
from madbase.protocol.http.messages import JsonValue, Request, Response, json_response
from madbase.protocol.sql import DbError, Statement

__all__ = ["external_settings", "route"]

# Every provider GoTrue's /settings lists under `external` (settings.go); MadBase can enable
# those in `providers.PROVIDERS`.
_SETTINGS_PROVIDERS: Final = (
    "apple", "azure", "bitbucket", "discord", "facebook", "figma", "fly", "github", "gitlab",
    "google", "keycloak", "kakao", "linkedin", "linkedin_oidc", "notion", "spotify", "slack",
    "slack_oidc", "workos", "twitch", "twitter", "zoom", "snapchat",
)  # fmt: skip
# Parameters the client may not pass on to the provider (custom_oauth_admin.go), except nonce.
_RESERVED: Final = frozenset(
    {"client_id", "client_secret", "redirect_uri", "response_type", "state", "code_challenge",
     "code_challenge_method", "code_verifier"}
)  # fmt: skip
# GoTrue's oauthErrorMap, and the codes it reports as access_denied whatever their status.
_OAUTH_ERRORS: Final = {
    400: "invalid_request",
    401: "unauthorized_client",
    403: "access_denied",
    500: "server_error",
    503: "temporarily_unavailable",
}
_ACCESS_DENIED: Final = frozenset(
    {"signup_disabled", "user_banned", "provider_email_needs_verification"}
)
# Authorization headers of provider requests must never be logged; the runtime does not log them.
_FORM: Final = "application/x-www-form-urlencoded"


def external_settings(settings: AuthSettings) -> JsonObject:
    """The providers of GET /settings `external`: each known name, enabled or not."""
    return {name: settings.external.enabled(name) for name in sorted(_SETTINGS_PROVIDERS)}


def route(
    request: Request, path: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response] | None:
    """The flow for `path` if it is one of this module's endpoints, else None."""
    match (request.method, path):
        case ("GET", "/authorize"):
            return _authorize_redirect(request, settings, now=now)
        case ("GET" | "POST", "/callback"):
            return _callback(request, settings, now=now)
        case ("GET", "/user/identities/authorize"):
            return _link_identity(request, settings, now=now)
        case ("DELETE", _) if path.startswith("/user/identities/"):
            return _delete_identity(
                request, path.removeprefix("/user/identities/"), settings, now=now
            )
    return None


# --- GET /authorize --------------------------------------------------------------------------


def _provider(name: str, settings: AuthSettings) -> tuple[ProviderSpec, ProviderConfig]:
    """The spec and configuration of an OAuth provider.

    Raises:
        _NoProvider: with GoTrue's reason (api/external.go `Provider`, conf `ValidateOAuth`).
    """
    spec = PROVIDERS.get(name)
    if spec is None:
        raise _NoProvider(f"Provider {name} could not be found")
    config = settings.external.provider(name)
    if config is None or not config.enabled:
        raise _NoProvider("provider is not enabled")
    if not config.client_id:
        raise _NoProvider("missing OAuth client ID")
    if not config.secret:
        raise _NoProvider("missing OAuth secret")
    if not (config.redirect_uri or settings.external.redirect_uri):
        raise _NoProvider("missing redirect URI")
    if spec.requires_url and not config.url:
        raise _NoProvider(f"unable to find URL for the {name.capitalize()} provider")
    return spec, config


class _NoProvider(Exception):
    """GoTrue's `Provider()` error text; the caller picks the error class."""


def _authorize_url(
    request: Request, settings: AuthSettings, *, now: datetime, target: User | None
) -> Flow[str]:
    name = (request.query_param("provider") or "").lower()
    try:
        spec, config = _provider(name, settings)
    except _NoProvider as err:
        raise ValidationFailed(f"Unsupported provider: {err}") from None
    pkce = validate_pkce(
        request.query_param("code_challenge_method") or "",
        request.query_param("code_challenge") or "",
    )
    state = new_flow_state(
        (yield from draw_random(2 * UUID_BYTES)),
        provider_type=name,
        authentication_method="oauth",
        pkce=pkce,
        now=now,
        referrer=referrer(request, settings),
        linking_target_id=target.id if target is not None else None,
    )
    yield from run(insert_flow_state(state))
    scopes = list(spec.scopes)
    extra = request.query_param("scopes")
    if extra:
        scopes += extra.split(",")
    params: dict[str, str] = {
        "client_id": config.client_id,
        "redirect_uri": config.redirect_uri or settings.external.redirect_uri,
        "response_type": "code",
        "state": state.id,
        # Every provider has default scopes, so `scope` is never empty.
        "scope": " ".join(scopes),
    }
    params.update(spec.authorize_params)
    # Every other query parameter goes to the provider (access_type, prompt, login_hint, ...);
    # unlike GoTrue, none may replace one set above (`scope` included).
    for key, value in parse_qsl(request.query, keep_blank_values=True):
        if key in ("provider", "scopes") or key.lower() in _RESERVED or key in params:
            continue
        params[key] = value
    authorize = endpoints(spec, config).authorize
    joiner = "&" if "?" in authorize else "?"
    return authorize + joiner + urlencode(sorted(params.items()))


def _authorize_redirect(
    request: Request, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    url = yield from _authorize_url(request, settings, now=now, target=None)
    return _redirect(url, 302)


def _redirect(location: str, status: int, *, error_code: str | None = None) -> Response:
    return Response(status=status, headers=(("location", location),), error_code=error_code)


# --- GET/POST /callback ----------------------------------------------------------------------


def _callback_params(request: Request) -> dict[str, str]:
    params: dict[str, str] = {}
    pairs = parse_qsl(request.query, keep_blank_values=True)
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if request.method == "POST" and content_type == _FORM:
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            body = ""
        # Go's r.Form: body values come before the query's, and Get takes the first.
        pairs = parse_qsl(body, keep_blank_values=True) + pairs
    for key, value in pairs:
        params.setdefault(key, value)
    return params


def _error_params(err: AuthError) -> list[tuple[str, str]]:
    """GoTrue's getErrorQueryString."""
    if isinstance(err, OAuthRequestError):
        return [("error", err.error), ("error_description", err.description)]
    if err.error_code in _ACCESS_DENIED:
        kind = "access_denied"
    else:
        kind = _OAUTH_ERRORS.get(err.http_status, "server_error")
    code = err.error_code or ("unexpected_failure" if err.http_status >= 500 else "unknown")
    return [("error", kind), ("error_code", code), ("error_description", err.message)]


def _code(params: list[tuple[str, str]]) -> str:
    """The code an error redirect carries (for the access log): `error_code`, else `error`."""
    found = dict(params)
    return found.get("error_code") or found["error"]


def _with_query(url: str, extra: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    """`url`'s query merged with `extra` (re-encoded with sorted keys, as Go's url.Values)."""
    parts = urlsplit(url)
    merged = dict(parse_qsl(parts.query, keep_blank_values=True))
    merged.update(extra)
    query = urlencode(sorted(merged.items()))
    return urlunsplit(parts._replace(query=query, fragment="")), sorted(merged.items())


def _error_redirect(url: str, err: AuthError) -> Response:
    """GoTrue's redirectErrors: the error in the query and (with `sb`) in the fragment."""
    params = _error_params(err)
    location, _ = _with_query(url, params)
    fragment = [(k, v) for k, v in params if v] + [("sb", "")]
    return _redirect(location + "#" + urlencode(sorted(fragment)), 302, error_code=_code(params))


def _callback(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    params = _callback_params(request)
    try:
        state = yield from _load_state(params.get("state", ""), settings, now=now)
    except AuthError as err:
        refusal = _error_params(err)
        location, _ = _with_query(settings.site_url, refusal)
        return _redirect(location, 303, error_code=_code(refusal))
    target_url = state.referrer or settings.site_url
    try:
        location = yield from _complete(state, params, target_url, request, settings, now=now)
    except AuthError as err:
        return _error_redirect(target_url, err)
    return _redirect(location, 302)


def _load_state(raw: str, settings: AuthSettings, *, now: datetime) -> Flow[FlowStateRow]:
    if not raw:
        raise BadOAuthCallback("OAuth state parameter missing")
    try:
        flow_id = str(uuid.UUID(raw))
    except ValueError:
        raise BadOAuthState("OAuth state parameter is invalid") from None
    (row,) = yield from run(flow_state_by_id(flow_id), read_only=True)
    state = decode_flow_state(first(row))
    if state is None:
        raise BadOAuthState("OAuth state not found or expired")
    if state.is_expired(now=now, expiry_seconds=settings.external.flow_state_expiry_seconds):
        raise BadOAuthState("OAuth state has expired")
    if state.is_pkce and state.user_id is not None:
        raise FlowStateAlreadyUsed
    return state


def _complete(
    state: FlowStateRow,
    params: dict[str, str],
    target_url: str,
    request: Request,
    settings: AuthSettings,
    *,
    now: datetime,
) -> Flow[str]:
    if params.get("error"):
        raise OAuthRequestError(params["error"], params.get("error_description", ""))
    code = params.get("code", "")
    if not code:
        raise BadOAuthCallback("OAuth callback with missing authorization code missing")
    name = state.provider_type
    try:
        spec, config = _provider(name, settings)
    except _NoProvider as err:
        raise OAuthProviderNotSupported(f"Unsupported provider: {err}") from None
    tokens = yield from _exchange(spec, config, code, settings)
    access, refresh = _string(tokens, "access_token"), _string(tokens, "refresh_token")
    external = yield from _user_data(spec, config, tokens, settings, now=now)
    target: User | None = None
    if state.linking_target_id is not None:
        (found,) = yield from run(sql.select_user(state.linking_target_id), read_only=True)
        target = sql.decode_user(first(found))
        if target is None:
            raise UserNotFound("Linking target user not found", status=422)
    if state.is_pkce:
        plan = yield from plan_account(external, name, request, settings, now=now, target=target)
        (claimed,) = yield from run(
            claim_flow_state(
                state.id,
                user_id=plan.user_id,
                provider_access_token=access,
                provider_refresh_token=refresh,
                now=now,
            )
        )
        auth_code = first(claimed)
        if auth_code is None:
            raise FlowStateAlreadyUsed
        yield from run(*plan.statements, sql.record_sign_in(plan.user_id, provider=name, now=now))
        return pkce_redirect_url(target_url, auth_code.decode())
    user, session, token = yield from sign_in_external(
        external,
        name,
        request,
        settings,
        now=now,
        target=target,
        extra=(delete_flow_state(state.id),),
    )
    issued = issue_access_token(
        user, session, limits=settings.limits, secret=settings.secret, now=now
    )
    fragment = [
        ("access_token", issued.token),
        ("expires_at", str(issued.expires_at)),
        ("expires_in", str(issued.expires_at - int(now.timestamp()))),
        ("provider_token", access),
        ("refresh_token", token),
        ("sb", ""),
        ("token_type", "bearer"),
    ]
    if refresh:
        fragment.append(("provider_refresh_token", refresh))
    return target_url + "#" + urlencode(sorted(fragment))


def _string(obj: JsonObject, key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _exchange(
    spec: ProviderSpec, config: ProviderConfig, code: str, settings: AuthSettings
) -> Flow[JsonObject]:
    """Trade the code for the provider's tokens (RFC 6749 §4.1.3, client secret in the body)."""
    form = urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": config.redirect_uri or settings.external.redirect_uri,
            "client_id": config.client_id,
            "client_secret": config.secret,
        }
    )
    answer = yield from fetch(
        HttpRequest(
            method="POST",
            url=endpoints(spec, config).token,
            headers=(("content-type", _FORM), ("accept", "application/json")),
            body=form.encode(),
        )
    )
    tokens = decode_token_response(answer) if isinstance(answer, HttpResponse) else None
    if (
        not isinstance(answer, HttpResponse)
        or not 200 <= answer.status < 300
        or tokens is None
        or not _string(tokens, "access_token")
    ):
        raise UnexpectedFailure(f"Unable to exchange external code: {code[:4]}")
    return tokens


def _user_data(
    spec: ProviderSpec,
    config: ProviderConfig,
    tokens: JsonObject,
    settings: AuthSettings,
    *,
    now: datetime,
) -> Flow[ExternalUser]:
    """The user, from the id_token (OIDC providers that sent one) or the user-info endpoints."""
    id_token = _string(tokens, "id_token")
    places = endpoints(spec, config)
    try:
        if id_token and spec.issuer is not None:
            issuer = places.issuer
            if spec.name in ("apple", "azure"):
                # Azure's tenant is in the token; never fetch keys from an issuer not theirs.
                issuer = detected_issuer(
                    spec.name, unverified_issuer(id_token), places.issuer, config
                )
            keys, algorithms = yield from oidc_keys(issuer, settings)
            claims = verify_id_token(
                id_token,
                keys,
                algorithms=algorithms,
                issuer=issuer,
                now=now,
                access_token=_string(tokens, "access_token"),
            )
            audience = claims.get("aud")
            audiences = audience if isinstance(audience, list) else [audience]
            if config.client_id not in audiences:
                raise UnexpectedFailure("id_token audience mismatch")
            return read_id_token_user(spec.name, claims)
        if spec.read_user is None:
            raise UnexpectedFailure(f"{spec.name}: no OIDC ID token present in response")
        answers: list[JsonValue] = []
        for url in places.userinfo:
            answer = yield from fetch(
                HttpRequest(
                    method="GET",
                    url=url,
                    headers=(
                        ("authorization", f"Bearer {_string(tokens, 'access_token')}"),
                        ("accept", "application/json"),
                    ),
                )
            )
            if not isinstance(answer, HttpResponse) or not 200 <= answer.status < 300:
                raise UnexpectedFailure("user info request failed")
            answers.append(decode_json(answer.body))
        external = spec.read_user(answers, places.userinfo[0])
    except (AuthError, IndexError, ValueError) as err:
        raise UnexpectedFailure("Error getting user profile from external provider") from err
    if not external.subject:
        raise UnexpectedFailure("Error getting user profile from external provider")
    return external


# --- /user/identities ------------------------------------------------------------------------


def _link_identity(request: Request, settings: AuthSettings, *, now: datetime) -> Flow[Response]:
    user, _ = yield from authenticate(request, settings, now=now)
    if not settings.external.manual_linking_enabled:
        raise ManualLinkingDisabled
    url = yield from _authorize_url(request, settings, now=now, target=user)
    if request.query_param("skip_http_redirect") == "true":
        return json_response(200, {"url": url})
    return _redirect(url, 302)


def _delete_identity(
    request: Request, raw_id: str, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    user, _ = yield from authenticate(request, settings, now=now)
    if not settings.external.manual_linking_enabled:
        raise ManualLinkingDisabled
    try:
        identity_id = str(uuid.UUID(raw_id))
    except ValueError:
        raise ValidationFailed("identity_id must be an UUID", status=404) from None
    if len(user.identities) <= 1:
        raise SingleIdentityNotDeletable
    identity = next((i for i in user.identities if i.id == identity_id), None)
    if identity is None:
        raise IdentityNotFound
    (audit_id,) = uuids((yield from draw_random(UUID_BYTES)), 1)
    statements: list[Statement] = [
        audit(
            user.id,
            "identity_unlinked",
            "user",
            entry_id=audit_id,
            request=request,
            now=now,
            traits={
                "identity_id": identity.id,
                "provider": identity.provider,
                "provider_id": identity.provider_id,
            },
        ),
        Statement("delete from auth.identities where id = $1::uuid", (identity.id,)),
    ]
    if identity.provider == "phone":
        statements.append(
            Statement(
                "update auth.users set phone = null, phone_confirmed_at = null,"
                " updated_at = $2::timestamptz where id = $1::uuid",
                (user.id, sql.stamp(now)),
            )
        )
    else:
        statements.append(_email_from_identities(user.id, settings.autoconfirm, now=now))
    statements.append(refresh_providers(user.id))
    result = yield from try_run(*statements)
    if isinstance(result, DbError):
        if result.sqlstate == UNIQUE_VIOLATION:
            raise EmailConflictIdentityNotDeletable(
                "Unable to unlink identity due to email conflict"
            )
        raise database_failure(result, statements)
    return json_response(200, {})


def _email_from_identities(user_id: str, autoconfirm: bool, *, now: datetime) -> Statement:
    """Keep the user's email if an identity still has it; else take the best remaining one
    (verified first, then oldest), as GoTrue's UpdateUserEmailFromIdentities."""
    return Statement(
        "update auth.users u set email = nullif(b.email, ''), updated_at = $2::timestamptz,"
        " email_confirmed_at = case when b.verified or $3::boolean then u.email_confirmed_at"
        " else null end"
        " from (select coalesce(i.email, '') as email,"
        " coalesce((i.identity_data ->> 'email_verified')::boolean, false) as verified"
        " from auth.identities i where i.user_id = $1::uuid"
        " order by (i.email is null), not coalesce((i.identity_data ->> 'email_verified')::boolean,"
        " false), i.created_at, i.id limit 1) b"
        " where u.id = $1::uuid and not exists (select 1 from auth.identities i"
        " where i.user_id = $1::uuid and i.email = lower(coalesce(u.email, '')))",
        (user_id, sql.stamp(now), "true" if autoconfirm else "false"),
    )
