"""Who is asking: API keys, bearer tokens, claims and the settings row-level security reads.

Pure and shared by every service: the gateway verifies a request's credentials once with the
project's `Verifier` and the admitted request carries the result; REST, Auth (and Storage and
Realtime to come) read it and build their transaction settings with `rls_settings`. Errors are
typed (`ApiKeyError`, `UnverifiableToken`, `InvalidClaims`); each service renders them in its
own error shape.
"""

from __future__ import annotations

from madbase.protocol.identity.bearer import (
    BearerError,
    BearerVerifier,
    InvalidClaims,
    Principal,
    UnverifiableToken,
    verify_bearer,
)
from madbase.protocol.identity.claims import (
    DEFAULT_TOKEN_ROLES,
    token_roles,
    token_roles_statement,
)
from madbase.protocol.identity.keys import (
    API_KEY_ROLES,
    ApiKeyClaims,
    ApiKeyError,
    ApiKeyVerifier,
    KeyKind,
    mint_api_key,
    verify_api_key,
)
from madbase.protocol.identity.settings import cookies_json, headers_json, rls_settings
from madbase.protocol.identity.signing import SigningKey, SigningKeys
from madbase.protocol.identity.verifier import Verifier

__all__ = [
    "API_KEY_ROLES",
    "DEFAULT_TOKEN_ROLES",
    "ApiKeyClaims",
    "ApiKeyError",
    "ApiKeyVerifier",
    "BearerError",
    "BearerVerifier",
    "InvalidClaims",
    "KeyKind",
    "Principal",
    "SigningKey",
    "SigningKeys",
    "UnverifiableToken",
    "Verifier",
    "cookies_json",
    "headers_json",
    "mint_api_key",
    "rls_settings",
    "token_roles",
    "token_roles_statement",
    "verify_api_key",
    "verify_bearer",
]
