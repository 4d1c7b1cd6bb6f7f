"""The project's verification set: the keys a token's signature may be checked with.

Today a project has one HS256 secret (the legacy JWT secret), so the set holds one `SigningKey`.
The set is a list with key ids so that what the control plane brings (spec/control-plane.md §6)
fits without changing its callers:

- several keys at once (rotation): a token naming a `kid` is checked with that key only; a token
  without one is checked with the HMAC keys in order (the legacy secret first), as GoTrue does.
- a grace window: a key being retired stays in the set (status `previously_used`) until the
  runtime rebuilds the set without it; a revoked key is simply not in the set.
- asymmetric keys (ES256, RS256, EdDSA) with a JWKS: a `SigningKey` would hold the public JWK
  and `verify` would hand pyjwt a `PyJWK`; `algorithms` lists what each key accepts. Not built:
  `SigningKey.algorithm` is HS256 only, and only HMAC algorithms are accepted.

Opaque API keys (`sb_publishable_…`, `sb_secret_…`) are not signed tokens; they are looked up by
hash (see `keys.KeyKind`), not checked here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, final

import attrs
import jwt

__all__ = ["HMAC_ALGORITHMS", "SignatureError", "SigningKey", "SigningKeys"]

# HMAC algorithms a shared secret can verify; "none" and asymmetric ones need keys we do not hold.
HMAC_ALGORITHMS: Final = ("HS256", "HS384", "HS512")
# Checks signatures only; it keeps no state between calls.
_JWS: Final = jwt.PyJWS()


class SignatureError(ValueError):
    """The token's signature cannot be checked or does not match.

    `malformed`: not a JWS at all (the other case is a signature that does not verify, or an
    algorithm no key of the set accepts, `unsupported`).
    """

    def __init__(self, message: str, *, malformed: bool = False, unsupported: bool = False) -> None:
        super().__init__(message)
        self.malformed = malformed
        self.unsupported = unsupported


@final
@attrs.frozen(kw_only=True)
class SigningKey:
    """One key of the verification set: its id (the JWT `kid`; None for the legacy secret)."""

    secret: str = attrs.field(repr=False)
    key_id: str | None = None
    # Only HS256 secrets exist today; the control plane adds ES256/RS256 with a public JWK.
    algorithm: str = "HS256"


@final
class SigningKeys:
    """The keys of one project's verification set, in the order tokens without `kid` try them.

    Remembers the tokens whose signature verified (at most `max_entries`), so that a token read
    by both the API-key check and the bearer check (supabase-js sends the anon key as both when
    no one is signed in) has its signature checked once per project, not once per check.
    """

    def __init__(self, keys: Iterable[SigningKey], *, max_entries: int = 4096) -> None:
        self.keys = tuple(keys)
        assert self.keys, "a verification set needs a key"
        self._by_id = {key.key_id: key for key in self.keys if key.key_id is not None}
        self._max_entries = max_entries
        # token -> (its algorithm, its payload), for tokens whose signature verified.
        self._verified: dict[str, tuple[str, bytes]] = {}

    @classmethod
    def hs256(cls, secret: str) -> SigningKeys:
        """The set of a project with one legacy HS256 secret."""
        return cls((SigningKey(secret=secret),))

    def verify(self, token: str, *, algorithms: tuple[str, ...] = HMAC_ALGORITHMS) -> bytes:
        """The payload of `token` once its signature verified with a key of the set.

        `algorithms`: those the caller accepts (API keys: HS256 only).

        Raises:
            SignatureError: not ASCII or not a JWS (`malformed`), an algorithm outside
                `algorithms` or a `kid` not in the set (`unsupported`), or no key verifies it.
        """
        known = self._verified.get(token)
        if known is not None:
            if known[0] not in algorithms:
                raise SignatureError("unsupported signing algorithm", unsupported=True)
            return known[1]
        if not token.isascii():  # a JWS is base64url and dots; pyjwt fails on lone surrogates
            raise SignatureError("malformed token", malformed=True)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as err:
            raise SignatureError("malformed token", malformed=True) from err
        algorithm = header.get("alg")
        if algorithm not in algorithms:
            raise SignatureError("unsupported signing algorithm", unsupported=True)
        kid = header.get("kid")
        if kid is not None and self._by_id:
            key = self._by_id.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise SignatureError("unknown key id", unsupported=True)
            candidates: tuple[SigningKey, ...] = (key,)
        else:
            candidates = self.keys
        failure: SignatureError | None = None
        for key in candidates:
            try:
                payload = _JWS.decode(token, key.secret, algorithms=list(algorithms))
            except jwt.InvalidSignatureError:
                failure = SignatureError("invalid signature")
                continue
            except jwt.PyJWTError as err:
                raise SignatureError("malformed token", malformed=True) from err
            assert isinstance(payload, bytes), type(payload)
            if len(self._verified) >= self._max_entries:
                self._verified.clear()
            self._verified[token] = (algorithm, payload)
            return payload
        assert failure is not None
        raise failure
