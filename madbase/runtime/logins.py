"""The database logins of the services: which role each pool connects as, and its password.

The configured database URL is the administrator's (migrations, the schema watcher, `psql`). The
services never use it: the data API connects as `authenticator` (a non-superuser member of the API
roles only, as PostgREST does) and /auth/v1 as `supabase_auth_admin` (owner of the auth tables), both
made by migration 0004. A function called through the data API can therefore switch at most to
another API role, and the pool resets that after every transaction.

Their passwords are derived from the project's JWT secret (HMAC-SHA-256, one per role), so several
MadBase processes or machines sharing that secret agree on them without another secret to keep; the
main process sets them at every start as SCRAM-SHA-256 verifiers, so the password itself never
reaches the server or its logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

from psycopg.conninfo import make_conninfo

from madbase.protocol.sql import quote_ident, quote_literal
from madbase.runtime.db import Pool

__all__ = [
    "AUTH_LOGIN",
    "DATA_LOGIN",
    "LoginError",
    "login_conninfo",
    "login_password",
    "scram_verifier",
    "set_login_passwords",
]

DATA_LOGIN: Final = "authenticator"
AUTH_LOGIN: Final = "supabase_auth_admin"
_LOGINS: Final = (DATA_LOGIN, AUTH_LOGIN)
# PostgreSQL's own default for SCRAM (scram_iterations, RFC 7677's minimum).
_SCRAM_ITERATIONS: Final = 4096


class LoginError(RuntimeError):
    """A service login could not be prepared; the message says which and why."""


def login_password(jwt_secret: str, role: str) -> str:
    """The password of `role`'s login, derived from the project's JWT secret."""
    digest = hmac.new(jwt_secret.encode(), f"madbase db login {role}".encode(), hashlib.sha256)
    return digest.hexdigest()


def scram_verifier(password: str, *, salt: bytes, iterations: int = _SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, RFC 7677).

    A verifier given to `ALTER ROLE ... PASSWORD` is stored as it is, so the server never sees the
    password.
    """
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def login_conninfo(admin_conninfo: str, role: str, jwt_secret: str) -> str:
    """`admin_conninfo` with `role` and its password as the login; everything else kept.

    `admin_conninfo` is valid (config checks `MADBASE_DATABASE_URL` when it is read; the embedded
    server's is ours): there is no fallback to the administrator's login.
    """
    return make_conninfo(admin_conninfo, user=role, password=login_password(jwt_secret, role))


async def set_login_passwords(pool: Pool, jwt_secret: str) -> None:
    """Give each service login its password (as a verifier), on the administrator's `pool`.

    Raises:
        LoginError: the administrator may not change them.
    """
    script = "".join(
        f"alter role {quote_ident(role)} with password "
        + quote_literal(
            scram_verifier(login_password(jwt_secret, role), salt=secrets.token_bytes(16))
        )
        + ";\n"
        for role in _LOGINS
    )
    # The simple query protocol: nothing is prepared, and the script is one transaction.
    async with pool.connection() as conn:
        result = await conn.execute_script(f"begin;\n{script}commit;")
        if result is not None:
            await conn.execute_script("rollback")
    if result is not None:
        raise LoginError(
            f"could not set the passwords of the database logins {', '.join(_LOGINS)}: "
            f"{result.message} (SQLSTATE {result.sqlstate})"
        )
