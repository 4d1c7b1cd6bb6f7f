"""The project's secrets: the JWT secret and the API keys signed with it, kept in the data directory.

Generated on first start into `<data_dir>/secrets.json` (mode 0600) and reused afterwards, so the
keys a developer copied stay valid across restarts. `MADBASE_JWT_SECRET` overrides the stored
secret; the keys are then signed with it (same issue time, so they are stable too).
"""

from __future__ import annotations

import json
import os
import secrets as random_source
import time
from pathlib import Path
from typing import final

import attrs

from madbase.protocol.identity import mint_api_key

__all__ = ["ProjectSecrets", "SecretsError"]

_FILE = "secrets.json"


class SecretsError(RuntimeError):
    """The secrets file is unreadable or malformed."""


@final
@attrs.frozen(kw_only=True)
class ProjectSecrets:
    """The JWT secret and the two API keys."""

    jwt_secret: str = attrs.field(repr=False)
    issued_at: int
    anon_key: str = attrs.field(repr=False)
    service_role_key: str = attrs.field(repr=False)

    @classmethod
    def load_or_create(cls, data_dir: Path, *, jwt_secret: str | None = None) -> ProjectSecrets:
        """Read the stored secrets, creating them on first use."""
        path = data_dir / _FILE
        stored = cls._read(path)
        if stored is None:
            stored = {
                "jwt_secret": random_source.token_urlsafe(48),
                "issued_at": int(time.time()),
            }
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(stored, out)
            os.replace(path.with_suffix(".tmp"), path)
        return cls._from_stored(stored, jwt_secret)

    @classmethod
    def load(cls, data_dir: Path, *, jwt_secret: str | None = None) -> ProjectSecrets | None:
        """The stored secrets; None when `data_dir` has none (no server has started there)."""
        stored = cls._read(data_dir / _FILE)
        return None if stored is None else cls._from_stored(stored, jwt_secret)

    @staticmethod
    def file(data_dir: Path) -> Path:
        """Where the secrets of `data_dir` are kept."""
        return data_dir / _FILE

    @classmethod
    def _from_stored(cls, stored: dict[str, object], jwt_secret: str | None) -> ProjectSecrets:
        secret = jwt_secret or str(stored["jwt_secret"])
        issued_at = stored["issued_at"]
        assert isinstance(issued_at, int)
        return cls(
            jwt_secret=secret,
            issued_at=issued_at,
            anon_key=mint_api_key(secret, "anon", issued_at=issued_at),
            service_role_key=mint_api_key(secret, "service_role", issued_at=issued_at),
        )

    @staticmethod
    def _read(path: Path) -> dict[str, object] | None:
        try:
            raw = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise SecretsError(f"cannot read {path}: {err.strerror}") from None
        try:
            value = json.loads(raw)
        except ValueError:
            raise SecretsError(f"{path} is not valid JSON") from None
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("jwt_secret"), str)
            or not isinstance(value.get("issued_at"), int)
        ):
            raise SecretsError(f"{path} lacks jwt_secret or issued_at")
        return value
