"""Supabase Auth (GoTrue) protocol: tokens, claims and flows, without I/O."""

from __future__ import annotations

from madbase.protocol.auth.bearer import BearerError, BearerVerifier, RequestAuth, verify_bearer
from madbase.protocol.auth.keys import (
    API_KEY_ROLES,
    ApiKeyClaims,
    ApiKeyError,
    ApiKeyVerifier,
    mint_api_key,
    verify_api_key,
)

__all__ = [
    "API_KEY_ROLES",
    "ApiKeyClaims",
    "ApiKeyError",
    "ApiKeyVerifier",
    "BearerError",
    "BearerVerifier",
    "RequestAuth",
    "mint_api_key",
    "verify_api_key",
    "verify_bearer",
]
