"""OIDC id_tokens: keys from the provider, verification, and `POST /token?grant_type=id_token`.

GoTrue's api/token_oidc.go with go-oidc's verifier. The provider's keys come from its discovery
document (`<issuer>/.well-known/openid-configuration` -> `jwks_uri`), both fetched through
`HttpRequest` with `cache_seconds` so the runtime reuses them. A token is accepted when its
signature verifies with the key of its `kid` (RS256, or what the discovery document lists among
RS/ES/PS algorithms), its `iss` is the provider's issuer, it has not expired (`exp` against the
flow's `now`), and, when an `access_token` is given, its `at_hash` matches. The grant then checks
the subject, that `aud` holds one of the configured client ids, and the nonce: the token carries
the hex SHA-256 of the raw nonce the client sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import Final

import jwt

from madbase.protocol.auth.errors import (
    OAuthRequestError,
    ProviderDisabled,
    UnexpectedFailure,
    ValidationFailed,
)
from madbase.protocol.auth.external.linking import sign_in_external
from madbase.protocol.auth.external.providers import (
    PROVIDERS,
    ProviderConfig,
    endpoints,
    read_id_token_user,
)
from madbase.protocol.auth.outbound import HttpRequest, HttpResponse, decode_json, fetch
from madbase.protocol.auth.session.grants import IdTokenGrant
from madbase.protocol.auth.steps import AuthSettings, Flow, JsonObject, authenticate, session_body
from madbase.protocol.auth.tokens import User
from madbase.protocol.http.messages import JsonValue, Request, Response

__all__ = [
    "detected_issuer",
    "id_token_grant",
    "oidc_keys",
    "unverified_issuer",
    "verify_id_token",
]

_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}
)
_HASHES: Final = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
_BAD_ID_TOKEN: Final = "Bad ID token"  # noqa: S105 - a message, not a secret
_APPLE_ISSUER: Final = "https://appleid.apple.com"
_AZURE_ISSUERS: Final = ("https://login.microsoftonline.com/", "https://sts.windows.net/")


class _Invalid(ValueError):
    """The token is refused (the reason stays internal; clients see "Bad ID token")."""


def oidc_keys(issuer: str, settings: AuthSettings) -> Flow[tuple[list[JsonObject], list[str]]]:
    """The issuer's JWKS keys and its id_token algorithms, through its discovery document.

    Raises:
        UnexpectedFailure: the issuer could not be reached or answered nonsense.
    """
    cache = settings.external.keys_cache_seconds
    discovery = yield from _get_json(
        issuer.rstrip("/") + "/.well-known/openid-configuration", cache
    )
    jwks_uri = discovery.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise UnexpectedFailure("OIDC discovery document without jwks_uri")
    algorithms = discovery.get("id_token_signing_alg_values_supported")
    algs = [a for a in algorithms if isinstance(a, str)] if isinstance(algorithms, list) else []
    document = yield from _get_json(jwks_uri, cache)
    keys = document.get("keys")
    found = [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []
    return found, algs or ["RS256"]


def _get_json(url: str, cache_seconds: int) -> Flow[JsonObject]:
    answer = yield from fetch(
        HttpRequest(
            method="GET",
            url=url,
            headers=(("accept", "application/json"),),
            cache_seconds=cache_seconds,
        )
    )
    if not isinstance(answer, HttpResponse) or not 200 <= answer.status < 300:
        raise UnexpectedFailure(f"fetching {url} failed")
    value = decode_json(answer.body)
    if not isinstance(value, dict):
        raise UnexpectedFailure(f"{url} did not answer a JSON object")
    return value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def verify_id_token(
    token: str,
    keys: list[JsonObject],
    *,
    algorithms: list[str],
    issuer: str | None,
    now: datetime,
    access_token: str = "",
) -> JsonObject:
    """The claims of `token` once its signature, issuer, expiry and `at_hash` check out.

    `issuer` None skips the issuer check (the caller checked it). Only asymmetric algorithms are
    accepted, whatever the token's header says.

    Raises:
        OAuthRequestError: `invalid request` / `Bad ID token` for any failure.
    """
    try:
        claims = _verify(token, keys, algorithms, issuer, now, access_token)
    except (_Invalid, jwt.PyJWTError, ValueError, TypeError, KeyError) as err:
        raise OAuthRequestError("invalid request", _BAD_ID_TOKEN) from err
    return claims


def _verify(
    token: str,
    keys: list[JsonObject],
    algorithms: list[str],
    issuer: str | None,
    now: datetime,
    access_token: str,
) -> JsonObject:
    header = jwt.get_unverified_header(token)
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in _ALGORITHMS or alg not in algorithms:
        raise _Invalid(f"algorithm {alg!r} not accepted")
    candidates = [k for k in keys if kid is None or k.get("kid") == kid]
    if not candidates:
        raise _Invalid("no key for kid")
    last: Exception = _Invalid("no key verified")
    for candidate in candidates:
        try:
            key = jwt.PyJWK(candidate, algorithm=alg)
            claims: JsonObject = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
            break
        except jwt.PyJWTError as err:
            last = err
    else:
        raise last
    if issuer is not None and claims.get("iss") != issuer:
        raise _Invalid("issuer mismatch")
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise _Invalid("no exp")
    if now.timestamp() > expires:
        raise _Invalid("expired")
    at_hash = claims.get("at_hash")
    if access_token and isinstance(at_hash, str) and at_hash:
        digest = _HASHES[alg[-3:]](access_token.encode()).digest()
        if not hmac.compare_digest(_b64(digest[: len(digest) // 2]), at_hash):
            raise _Invalid("at_hash mismatch")
    return claims


def unverified_issuer(token: str) -> str:
    """The `iss` of a token before verification ("" if unreadable): picks the Azure tenant."""
    try:
        payload = token.split(".")[1]
        value: JsonValue = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return ""
    if isinstance(value, dict) and isinstance(value.get("iss"), str):
        issuer = value["iss"]
        assert isinstance(issuer, str)
        return issuer
    return ""


def _provider_for(grant: IdTokenGrant, settings: AuthSettings) -> tuple[str, str, ProviderConfig]:
    """The provider name, its issuer and its configuration (token_oidc.go getProvider)."""
    name = grant.provider
    external = settings.external
    if name in PROVIDERS and PROVIDERS[name].id_token_grant:
        config = external.provider(name)
        spec = PROVIDERS[name]
        issuer = endpoints(spec, config).issuer if config is not None else ""
        if name == "google" and not issuer:
            issuer = "https://accounts.google.com"
        if name in ("apple", "azure"):
            detected = unverified_issuer(grant.id_token)
            issuer = detected_issuer(name, detected, issuer, config)
        if grant.issuer and name in ("apple", "azure") and grant.issuer != issuer:
            raise ValidationFailed("Provided issuer does not match ID token issuer")
        if config is None or not config.enabled or not issuer:
            raise ProviderDisabled(f"Provider (issuer {json.dumps(issuer)}) is not enabled")
        return name, issuer, config
    raise ValidationFailed(f"Custom OIDC provider {json.dumps(name)} not allowed")


def detected_issuer(
    name: str, detected: str, configured: str, config: ProviderConfig | None
) -> str:
    if not detected:
        raise ValidationFailed(
            f"Unable to detect issuer in ID token for {name.capitalize()} provider"
        )
    if config is not None and config.url:
        # A configured base URL fixes the issuer (tests, sovereign clouds, single tenants).
        if detected != configured:
            raise ValidationFailed(
                f"Detected ID token issuer is not an {name.capitalize()} ID token issuer"
            )
        return detected
    if name == "apple" and detected != _APPLE_ISSUER:
        raise ValidationFailed("Detected ID token issuer is not an Apple ID token issuer")
    if name == "azure" and not detected.startswith(_AZURE_ISSUERS):
        raise ValidationFailed("Detected ID token issuer is not an Azure ID token issuer")
    return detected


def id_token_grant(
    grant: IdTokenGrant, request: Request, settings: AuthSettings, *, now: datetime
) -> Flow[Response]:
    """POST /token?grant_type=id_token: sign in (or link) with a provider's OIDC id_token.

    Raises:
        AuthError: OAuth-style `invalid request` errors, validation_failed, provider_disabled,
            and the account errors of `linking.plan_account`.
    """
    target: User | None = None
    if grant.link_identity:
        if not request.header("authorization"):
            raise OAuthRequestError(
                "invalid request", "Linking requires a valid user access token in Authorization"
            )
        target, _ = yield from authenticate(request, settings, now=now)
    name, issuer, config = _provider_for(grant, settings)
    keys, algorithms = yield from oidc_keys(issuer, settings)
    claims = verify_id_token(
        grant.id_token,
        keys,
        algorithms=algorithms,
        issuer=issuer,
        now=now,
        access_token=grant.access_token,
    )
    user = read_id_token_user(name, claims)
    if not user.subject:
        raise OAuthRequestError("invalid request", "Missing sub claim in id_token")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    audiences = [a for a in audiences if isinstance(a, str)] if isinstance(audiences, list) else []
    if not any(c and c in audiences for c in config.client_ids):
        raise OAuthRequestError(
            "invalid request", f"Unacceptable audience in id_token: [{' '.join(audiences)}]"
        )
    nonce = claims.get("nonce")
    token_nonce = nonce if isinstance(nonce, str) else ""
    if bool(token_nonce) != bool(grant.nonce):
        raise OAuthRequestError(
            "invalid request", "Passed nonce and nonce in id_token should either both exist or not."
        )
    if token_nonce and not hmac.compare_digest(
        hashlib.sha256(grant.nonce.encode("utf-8", "surrogatepass")).hexdigest(), token_nonce
    ):
        raise OAuthRequestError("invalid nonce", "Nonces mismatch")
    fresh, session, token = yield from sign_in_external(
        user, name, request, settings, now=now, target=target
    )
    return session_body(fresh, session, token, settings, now=now)
