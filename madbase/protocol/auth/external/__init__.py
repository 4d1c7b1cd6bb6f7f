"""Signing in through another server: the OAuth/OIDC provider table (`providers`), `GET /authorize`
and `/callback` (`oauth`), the `id_token` grant (`idtoken`), which user an external identity signs
in (`linking`) and where a browser may be sent back to (`redirects`).

Internal to `madbase.protocol.auth`: import the modules, not this package.
"""
