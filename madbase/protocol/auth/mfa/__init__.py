"""Multi-factor authentication: the `/factors` endpoints (`flows`), steps on a user's factors shared
with the admin factor routes (`steps`), their SQL, TOTP codes and the enrolment's QR code.

Internal to `madbase.protocol.auth`: import the modules, not this package.
"""
