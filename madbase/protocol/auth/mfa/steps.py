"""Steps on a user's MFA factors shared by `/factors` (`mfa.flows`) and the admin factor routes."""

from __future__ import annotations

import uuid
from typing import Final

from madbase.protocol.auth.errors import MfaFactorNotFound, ValidationFailed
from madbase.protocol.auth.tokens import Factor, User

__all__ = ["amr_method", "find_factor"]

# The AMR method a verification of each factor type adds (models/factor.go).
_AMR_METHODS: Final = {"totp": "totp", "phone": "mfa/phone", "webauthn": "mfa/webauthn"}


def amr_method(factor_type: str) -> str:
    """The AMR method recorded when a factor of `factor_type` is verified.

    >>> amr_method("totp"), amr_method("phone")
    ('totp', 'mfa/phone')
    """
    return _AMR_METHODS.get(factor_type, factor_type)


def find_factor(user: User, factor_id: str) -> Factor:
    """The user's factor with this id (GoTrue's loadFactor).

    Raises:
        ValidationFailed: 404, the id is not a UUID.
        MfaFactorNotFound: the user has no such factor.
    """
    try:
        wanted = uuid.UUID(factor_id)
    except ValueError:
        raise ValidationFailed("factor_id must be an UUID", status=404) from None
    for factor in user.factors:
        try:
            if uuid.UUID(factor.id) == wanted:
                return factor
        except ValueError:
            continue
    raise MfaFactorNotFound
