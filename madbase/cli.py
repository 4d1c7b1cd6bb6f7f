"""The `madbase` command: `serve`, `keys`, `migrate`.

The only module that reads the process environment; it turns flags, `MADBASE_*` variables and the
`.env` file into one `Config` and hands it on. A bad setting prints one line and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Final

import trio

from madbase import __version__
from madbase.config import Config, ConfigError, add_flags, parse_dotenv, unknown_settings
from madbase.runtime.db import DbUnavailable, Pool
from madbase.runtime.embedded import EmbeddedPostgres, EmbeddedPostgresError
from madbase.runtime.logs import setup_logging
from madbase.runtime.migrate import MigrationError
from madbase.runtime.secrets import ProjectSecrets, SecretsError
from madbase.runtime.serve import Ready, apply_migrations, check_data_dir, database_url, run_server
from madbase.runtime.supervisor import WorkersFailed

__all__ = ["main"]

log = logging.getLogger("madbase")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        config, warnings = _config(args)
    except ConfigError as err:
        print(f"madbase: {err}", file=sys.stderr)  # noqa: T201
        return 2
    for warning in warnings:
        print(f"madbase: warning: {warning}", file=sys.stderr)  # noqa: T201
    setup_logging(config.log_level)
    try:
        if args.command == "serve":
            trio.run(_serve, config)
        elif args.command == "keys":
            _keys(config, as_json=args.json)
        elif args.command == "migrate":
            trio.run(_migrate, config)
    except KeyboardInterrupt:
        return 130
    except BaseException as err:
        # Trio nurseries wrap what they raise; a failure we know gets its one line all the same.
        failures = _leaves(err)
        if not all(isinstance(failure, _FAILURES) for failure in failures):
            raise
        for failure in failures:
            print(f"madbase: {failure}", file=sys.stderr)  # noqa: T201
        # 2: a setting that does not work (as a bad value is), 1: anything else that failed.
        return 2 if any(isinstance(failure, ConfigError) for failure in failures) else 1
    return 0


# What stops a command with one line, rather than a traceback.
_FAILURES = (
    ConfigError,
    EmbeddedPostgresError,
    MigrationError,
    SecretsError,
    WorkersFailed,
    DbUnavailable,
    OSError,
)


def _leaves(err: BaseException) -> list[BaseException]:
    if not isinstance(err, BaseExceptionGroup):
        return [err]
    found: list[BaseException] = []
    for inner in err.exceptions:
        found.extend(_leaves(inner))
    return found


# The settings each command reads, so that its `--help` lists only those (`serve` reads all).
_KEYS_SETTINGS: Final = ("data_dir", "host", "port", "public_url", "database_url", "jwt_secret")
_MIGRATE_SETTINGS: Final = (
    "data_dir",
    "database_url",
    "pg_fsync",
    "db_connect_timeout",
    "log_level",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="madbase", description="A Supabase-compatible backend.")
    parser.add_argument("--version", action="version", version=f"madbase {__version__}")
    sub = parser.add_subparsers(dest="command")
    commands = (
        ("serve", "run the server (embedded Postgres unless a URL is set)", None),
        ("keys", "print the URL, API keys and database URL of a data directory", _KEYS_SETTINGS),
        ("migrate", "apply the bootstrap migrations and exit", _MIGRATE_SETTINGS),
    )
    for name, summary, settings in commands:
        command = sub.add_parser(
            name,
            help=summary,
            description=f"{summary}. Each option can also be set by its MADBASE_* variable "
            "or in the .env file; options win.",
            usage=f"madbase {name} [options]",
        )
        if name == "keys":
            command.add_argument("--json", action="store_true", help="print one JSON object")
        command.add_argument(
            "--env-file",
            default=".env",
            metavar="FILE",
            help="dotenv file to read (default: .env)",
        )
        add_flags(command, settings)
    return parser


def _config(args: argparse.Namespace) -> tuple[Config, tuple[str, ...]]:
    """The configuration, and a warning per `MADBASE_*` variable that no setting reads."""
    dotenv: dict[str, str] = {}
    env_file = Path(args.env_file)
    if env_file.is_file():
        try:
            dotenv = parse_dotenv(env_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"--env-file: cannot read {env_file}: {err}") from None
    flags = {key: value for key, value in vars(args).items() if isinstance(value, str)}
    flags.pop("command", None)
    flags.pop("env_file", None)
    config = Config.from_sources(os.environ, dotenv, flags)
    return config, unknown_settings(os.environ, dotenv)


async def _serve(config: Config) -> None:
    stop = trio.Event()
    # The receiver stays open until we are done, so a second signal cannot kill us half-way
    # through shutdown (the embedded Postgres must be stopped by us).
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signals() -> None:
                async for signum in signals:
                    if stop.is_set():
                        log.warning("already stopping (signal %s)", signum)
                    stop.set()

            nursery.start_soon(on_signals)
            async with trio.open_nursery() as server:
                ready: Ready = await server.start(partial(run_server, config, stop=stop))
                _print_banner(ready)
            # run_server has returned: everything is stopped.
            nursery.cancel_scope.cancel()


def _print_banner(ready: Ready) -> None:
    lines = [
        f"MadBase is ready at {ready.url}",
        f"  anon key:         {ready.anon_key}",
        f"  service_role key: {ready.service_role_key}",
        f"  database:         {ready.db_url}",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)  # noqa: T201


def _keys(config: Config, *, as_json: bool) -> None:
    # Only a server creates keys: new ones printed here would not be the running server's.
    project = ProjectSecrets.load(config.data_dir, jwt_secret=config.jwt_secret)
    if project is None:
        looked_at = ProjectSecrets.file(config.data_dir).absolute()
        raise ConfigError(
            f"{config.origin('data_dir')}: {config.data_dir.absolute()} is not a MadBase data "
            f"directory ({looked_at} does not exist): run `madbase serve` first, or name the "
            "server's data directory with --data-dir"
        )
    info = {
        "url": config.url,
        "anon_key": project.anon_key,
        "service_role_key": project.service_role_key,
        "db_url": database_url(config),
    }
    if as_json:
        print(json.dumps(info))  # noqa: T201
    else:
        for name, value in info.items():
            print(f"{name}: {value}")  # noqa: T201


async def _migrate(config: Config) -> None:
    async with trio.open_nursery() as nursery:
        conninfo = config.database_url
        if conninfo is None:
            check_data_dir(config)
            embedded = EmbeddedPostgres(config.data_dir, fsync=config.pg_fsync)
            await nursery.start(embedded.run)
            conninfo = embedded.conninfo
        pool = Pool(conninfo, config.db)
        try:
            applied = await apply_migrations(pool, config)
        finally:
            pool.close()
        print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")  # noqa: T201
        nursery.cancel_scope.cancel()
