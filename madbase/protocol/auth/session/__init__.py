"""Signing in with a grant: the bodies of `POST /token` (password, refresh_token, pkce, id_token),
logout and MFA factor requests, and PKCE flow state with the `pkce` grant.

Internal to `madbase.protocol.auth`: import the modules, not this package.
"""
