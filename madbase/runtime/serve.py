"""`madbase serve`: database (embedded or external), migrations, the project, the HTTP server.

Nursery layout: the root nursery runs the embedded Postgres (when used), the project's
background tasks (each service's, e.g. REST's schema watcher) and, inside, the HTTP server's
nursery. A stop request closes the listeners and idle connections, gives requests in
flight `shutdown_timeout` seconds, closes the pool, then stops Postgres with a fast shutdown.

With `workers` > 1 the main process also runs `supervisor.Workers` around its HTTP nursery: the
other processes serve on the same sockets against the same database, and a stop request reaches
them at the same moment; Postgres stops only once every one has exited.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from typing import final

import attrs
import trio
from psycopg.conninfo import make_conninfo

from madbase.config import Config, ConfigError
from madbase.protocol.identity import (
    DEFAULT_TOKEN_ROLES,
    Verifier,
    token_roles,
    token_roles_statement,
)
from madbase.protocol.sql import DbError, Transaction
from madbase.runtime.app import App
from madbase.runtime.db import DbUnavailable, Pool
from madbase.runtime.embedded import EmbeddedPostgres
from madbase.runtime.http import HttpServer
from madbase.runtime.logins import AUTH_LOGIN, DATA_LOGIN, login_conninfo, set_login_passwords
from madbase.runtime.migrate import migrate
from madbase.runtime.project import Project
from madbase.runtime.secrets import ProjectSecrets
from madbase.runtime.service import Service
from madbase.runtime.services import DEFAULT_SERVICES
from madbase.runtime.supervisor import Workers, application_name

__all__ = [
    "Ready",
    "apply_migrations",
    "check_data_dir",
    "database_url",
    "open_project",
    "run_server",
    "serve_project",
]

log = logging.getLogger(__name__)

# Seconds a worker process gets beyond the shutdown timeout (closing its pool) before it is killed.
_WORKER_STOP_GRACE = 5.0


@final
@attrs.frozen(kw_only=True)
class Ready:
    """What a started server tells its caller."""

    url: str
    anon_key: str = attrs.field(repr=False)
    service_role_key: str = attrs.field(repr=False)
    db_url: str = attrs.field(repr=False)
    app: App = attrs.field(repr=False, eq=False)


def database_url(config: Config) -> str:
    """The libpq URL of the project's database (embedded or configured)."""
    if config.database_url is not None:
        return config.database_url
    return EmbeddedPostgres(config.data_dir, fsync=config.pg_fsync).url


@contextlib.asynccontextmanager
async def open_project(
    config: Config,
    *,
    url: str | None = None,
    database: str | None = None,
    application_name: str = application_name(0),
    services: Sequence[Service] = DEFAULT_SERVICES,
) -> AsyncIterator[Project]:
    """Database (embedded or external), migrations and the `Project`; all stopped on exit.

    Used by `run_server`, by worker processes and by the ASGI entry point, so all serve the same
    application. `url` is the base URL clients use when it differs from `config.url` (a port
    picked at bind). `database`: the URL of a database another process runs and has migrated (a
    worker's case): no embedded server, no migrations. `application_name` is what the project's
    connections show in `pg_stat_activity` unless the database URL names one. `services`: the
    services the project mounts and builds, each one's background tasks run in the project's
    nursery.
    """
    check_data_dir(config)
    secrets_ = ProjectSecrets.load_or_create(config.data_dir, jwt_secret=config.jwt_secret)
    async with trio.open_nursery() as root:
        if database is not None:
            conninfo = db_url = database
        elif config.database_url is None:
            embedded = EmbeddedPostgres(config.data_dir, fsync=config.pg_fsync)
            await root.start(embedded.run)
            conninfo, db_url = embedded.conninfo, embedded.url
        else:
            conninfo = db_url = config.database_url
        conninfo = _named(conninfo, application_name)
        secret = secrets_.jwt_secret
        # The administrator's login migrates and watches the schema; the services have their own
        # (runtime/logins.py), so no request runs with the administrator's rights.
        data_pool = Pool(login_conninfo(conninfo, DATA_LOGIN, secret), config.db)
        auth_pool = Pool(login_conninfo(conninfo, AUTH_LOGIN, secret), config.db)
        project: Project | None = None
        try:
            if database is None:
                admin = Pool(conninfo, attrs.evolve(config.db, pool_size=1))
                try:
                    applied = await apply_migrations(admin, config)
                    if applied:
                        log.info("applied migrations: %s", ", ".join(applied))
                    await set_login_passwords(admin, secret)
                finally:
                    admin.close()
            roles = await load_token_roles(data_pool)
            project = Project(
                config=config,
                url=url or config.url,
                secrets=secrets_,
                # The project's one verifier: API keys and every service's bearer tokens.
                verifier=Verifier(secret, roles=roles, audience=config.jwt_aud),
                conninfo=conninfo,
                db_url=db_url,
                data_pool=data_pool,
                auth_pool=auth_pool,
                services=tuple(services),
            )
            project.build_services()
            for built in project.built.values():
                for task in built.tasks:
                    await root.start(task)
            yield project
        finally:
            if project is not None:
                with trio.CancelScope(shield=True):
                    for built in project.built.values():
                        await built.aclose()
            data_pool.close()
            auth_pool.close()
            root.cancel_scope.cancel()


async def load_token_roles(pool: Pool) -> frozenset[str]:
    """The roles a token may name: those `authenticator` may switch to, read once at start.

    Roles granted to `authenticator` later count after a restart. Without an answer the Supabase
    set (anon, authenticated, service_role) stands in.
    """
    result = await pool.run(Transaction(statements=(token_roles_statement(),), read_only=True))
    if isinstance(result, DbError):
        log.error(
            "could not read the roles authenticator may switch to (%s %s); tokens may name %s",
            result.sqlstate,
            result.message,
            ", ".join(sorted(DEFAULT_TOKEN_ROLES)),
        )
        return DEFAULT_TOKEN_ROLES
    roles = token_roles(result[0])
    log.info("tokens may name the roles %s", ", ".join(sorted(roles)) or "(none)")
    return roles


def check_data_dir(config: Config) -> None:
    """Create the data directory if need be and check that files can be written there.

    Raises:
        ConfigError: it cannot be created or written (the message names the setting).
    """
    path = config.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ConfigError(
            f"{config.origin('data_dir')}: cannot use {path.absolute()} as the data directory: "
            f"{err.strerror or err}"
        ) from None


async def apply_migrations(pool: Pool, config: Config) -> list[str]:
    """`migrate(pool)`; a configured database that cannot be reached is named as a setting.

    Raises:
        ConfigError: `database_url` is set and no connection to it could be made.
        MigrationError: a migration failed.
    """
    try:
        return await migrate(pool)
    except DbUnavailable as err:
        if config.database_url is None:
            raise
        reason = " ".join(str(err).split())  # libpq's messages run over several lines
        raise ConfigError(f"{config.origin('database_url')}: cannot connect: {reason}") from None


async def _listen(config: Config) -> list[trio.SocketListener]:
    """Bind `config.host`:`config.port`.

    Raises:
        ConfigError: the host cannot be resolved or bound, or the port is taken or not allowed.
    """
    host, port = config.host, config.port
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except socket.gaierror as err:
        raise ConfigError(
            f"{config.origin('host')}: cannot resolve {host!r}: {err.strerror}"
        ) from None
    except OSError as err:
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        setting = "port" if err.errno in (errno.EADDRINUSE, errno.EACCES) else "host"
        raise ConfigError(
            f"{config.origin(setting)}: cannot listen on {address}: {err.strerror or err}"
        ) from None


def _named(conninfo: str, name: str) -> str:
    """`conninfo` with `name` as its fallback application_name (its own, if any, wins).

    `conninfo` is valid: config checks `MADBASE_DATABASE_URL` when it is read.
    """
    return make_conninfo(conninfo, fallback_application_name=name)


async def run_server(
    config: Config,
    *,
    stop: trio.Event,
    configure: Callable[[App], None] | None = None,
    task_status: trio.TaskStatus[Ready] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run everything until `stop` is set, then shut down in order.

    `configure` adjusts the main process's `App` (tests); worker processes serve theirs as built.

    Raises:
        WorkersFailed: worker processes kept exiting (`config.workers` > 1).
    """
    # Bound first, so that with `--port 0` the project (token issuer, links in mail) knows the
    # port the OS picked; connections wait in the backlog until the server starts serving.
    listeners = await _listen(config)
    config = attrs.evolve(config, port=listeners[0].socket.getsockname()[1])
    try:
        async with open_project(config) as project:
            if configure is not None:
                configure(project.app)
            workers = None
            if config.workers > 1:
                fds = [listener.socket.fileno() for listener in listeners]
                workers = Workers(config, project.db_url, fds)
            await serve_project(
                config, project, listeners, stop, workers=workers, task_status=task_status
            )
    finally:
        with trio.CancelScope(shield=True):
            for listener in listeners:  # closed already unless the project failed to open
                await listener.aclose()


async def serve_project(
    config: Config,
    project: Project,
    listeners: list[trio.SocketListener],
    stop: trio.Event,
    *,
    workers: Workers | None = None,
    task_status: trio.TaskStatus[Ready] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `project` on `listeners` (and start `workers`) until `stop`, then wind down.

    Ready is reported once this process and every worker accept connections.
    """
    server = HttpServer(project.app, config.http)
    log.info("http parser: %s", server.parser)
    async with trio.open_nursery() as supervision:
        async with trio.open_nursery() as http:
            await http.start(server.serve, listeners)
            if workers is not None:
                await supervision.start(workers.run)
            task_status.started(
                Ready(
                    url=config.url,
                    anon_key=project.secrets.anon_key,
                    service_role_key=project.secrets.service_role_key,
                    db_url=project.db_url,
                    app=project.app,
                )
            )
            await stop.wait()
            log.info("shutting down")
            stopped = trio.current_time()
            server.begin_shutdown()
            if workers is not None:
                workers.begin_shutdown()
            http.cancel_scope.deadline = stopped + config.http.shutdown_timeout
        # The workers finish their requests meanwhile; past this deadline they are killed.
        supervision.cancel_scope.deadline = (
            stopped + config.http.shutdown_timeout + _WORKER_STOP_GRACE
        )
