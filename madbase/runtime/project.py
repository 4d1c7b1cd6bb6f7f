"""`Project`: one project's secrets, verifier, pools, schema cache, services and nursery.

`open_project` (in `serve`) builds one: it opens the database, migrates, reads the roles tokens
may name, makes the project's one `Verifier`, builds each service (`Service.build`) and starts
their background tasks in the project's nursery; closing the project cancels that nursery and
closes what the services and pools hold. `serve` opens the default project and routes every
request to it through `project.app`; resolving a project per request (`x-project-ref`, the
host) goes in front of `App` and needs nothing here to change.
"""

from __future__ import annotations

from typing import final

from madbase.config import Config
from madbase.protocol.identity import Verifier
from madbase.runtime.app import App
from madbase.runtime.db import Pool
from madbase.runtime.schema_cache import SchemaCache
from madbase.runtime.secrets import ProjectSecrets
from madbase.runtime.service import Built, Service

__all__ = ["Project"]


@final
class Project:
    """A running project.

    `url`: the base URL clients use. `conninfo`: the administrator's connection (migrations, the
    schema watcher); the services use their own logins (`data_pool`, `auth_pool`).
    """

    def __init__(
        self,
        *,
        config: Config,
        url: str,
        secrets: ProjectSecrets,
        verifier: Verifier,
        conninfo: str,
        db_url: str,
        data_pool: Pool,
        auth_pool: Pool,
        services: tuple[Service, ...],
    ) -> None:
        self.config = config
        self.url = url
        self.secrets = secrets
        self.verifier = verifier
        self.conninfo = conninfo
        self.db_url = db_url
        self.data_pool = data_pool
        self.auth_pool = auth_pool
        self.schema_cache = SchemaCache()
        self.services = services
        self.app = App(secrets, data_pool, verifier=verifier, services=services)
        self.built: dict[str, Built] = {}

    def build_services(self) -> None:
        """Build every service that can be, and register it on `app`."""
        for service in self.services:
            if service.build is not None:
                built = service.build(self)
                self.built[service.name] = built
                self.app.register(service.name, built)

    def __repr__(self) -> str:
        return f"Project(url={self.url!r}, services={[s.name for s in self.services]!r})"
