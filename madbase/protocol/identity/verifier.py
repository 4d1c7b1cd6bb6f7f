"""`Verifier`: the one verifier of a project, for its API keys and its bearer tokens.

The gateway calls it once per request (`madbase.protocol.http.admit`) and the admitted request
carries what it found (`Dispatch.key`, `Dispatch.identity`); services read that and never verify
again. Both checks share one verification set (`signing.SigningKeys`, which checks each token's
signature once) and one token-role set, and each remembers the claims of the tokens it accepted
(clients send the same key and token on every request), so a request with known credentials
costs two dictionary look-ups and date checks.

Extension points for the control plane (spec/control-plane.md §3, §6, §7), none built yet:

- keys: `SigningKeys` takes several keys with ids; a new set (rotation, a grace window ending,
  a revocation) means a new `Verifier`, which the project swaps in (its caches go with it).
- opaque `sb_publishable_` / `sb_secret_` API keys: a key table the runtime looks up by hash
  would hand `api_key` a `KeyKind` and role instead of a signature check; `Dispatch.key.kind`
  already says which kind admitted the request.
- asymmetric session tokens: `SigningKey` with a public JWK, and `BearerVerifier` accepting the
  algorithm; the JWKS is then the set's public half.
"""

from __future__ import annotations

from datetime import datetime
from typing import final

from madbase.protocol.identity.bearer import BearerError, BearerVerifier, Principal
from madbase.protocol.identity.claims import DEFAULT_TOKEN_ROLES
from madbase.protocol.identity.keys import ApiKeyClaims, ApiKeyVerifier
from madbase.protocol.identity.signing import SigningKeys

__all__ = ["Verifier"]


@final
class Verifier:
    """The API-key and bearer-token checks of one project, over one verification set."""

    def __init__(
        self,
        keys: SigningKeys | str,
        *,
        anon_role: str = "anon",
        roles: frozenset[str] = DEFAULT_TOKEN_ROLES,
        audience: str | None = None,
    ) -> None:
        signing = SigningKeys.hs256(keys) if isinstance(keys, str) else keys
        self.signing = signing
        self.roles = roles
        self.audience = audience
        self.keys = ApiKeyVerifier(signing, roles=roles, audience=audience)
        self.bearer = BearerVerifier(signing, anon_role=anon_role, roles=roles, audience=audience)

    def api_key(self, key: str, *, now: datetime) -> ApiKeyClaims:
        """The claims of a valid API key.

        Raises:
            ApiKeyError: as `keys.verify_api_key`.
        """
        return self.keys.verify(key, now=now)

    def identify(self, authorization: str | None, *, now: datetime) -> Principal | BearerError:
        """The identity an `Authorization` header value gives, or why it is refused."""
        try:
            return self.bearer.verify(authorization, now=now)
        except BearerError as err:
            return err
