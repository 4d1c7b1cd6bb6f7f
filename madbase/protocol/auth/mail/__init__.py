"""Tokens sent by mail or text: the `SendMail`/`SendSms` commands and templates (`messages`), the
endpoints that send them (`flows`: /otp, /magiclink, /recover, /resend, /reauthenticate; `admin`:
/invite, /admin/generate_link), `POST|GET /verify` (`verify`), their shared steps and SQL.

Internal to `madbase.protocol.auth`: import the modules, not this package.
"""
