"""Sessions from grants: `POST /token` and `POST /logout` (`flows`), the bodies of the token
grants, logout and MFA factor requests (`grants`), and PKCE flow state with the `pkce` grant.

Internal to `madbase.protocol.auth`: import the modules, not this package.
"""
