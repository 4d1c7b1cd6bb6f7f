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

import trio

from madbase import __version__
from madbase.config import Config, ConfigError, add_flags, parse_dotenv
from madbase.runtime.db import Pool
from madbase.runtime.embedded import EmbeddedPostgres, EmbeddedPostgresError
from madbase.runtime.logs import setup_logging
from madbase.runtime.migrate import MigrationError, migrate
from madbase.runtime.secrets import ProjectSecrets, SecretsError
from madbase.runtime.serve import Ready, database_url, run_server
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
        config = _config(args)
    except ConfigError as err:
        print(f"madbase: {err}", file=sys.stderr)  # noqa: T201
        return 2
    setup_logging(config.log_level)
    try:
        if args.command == "serve":
            trio.run(_serve, config)
        elif args.command == "keys":
            _keys(config, as_json=args.json)
        elif args.command == "migrate":
            trio.run(_migrate, config)
    except _FAILURES as err:
        print(f"madbase: {err}", file=sys.stderr)  # noqa: T201
        return 1
    except BaseExceptionGroup as group:
        # Trio nurseries wrap what they raise; a failure we know gets its one line all the same.
        known, rest = group.split(_FAILURES)
        if known is None or rest is not None:
            raise
        for failure in _leaves(known):
            print(f"madbase: {failure}", file=sys.stderr)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


# What stops a command with one line and exit status 1, rather than a traceback.
_FAILURES = (EmbeddedPostgresError, MigrationError, SecretsError, WorkersFailed, OSError)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for err in group.exceptions:
        found.extend(_leaves(err) if isinstance(err, BaseExceptionGroup) else [err])
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="madbase", description="A Supabase-compatible backend.")
    parser.add_argument("--version", action="version", version=f"madbase {__version__}")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the server (embedded Postgres unless a URL is set)")
    keys = sub.add_parser("keys", help="print the URL, API keys and database URL")
    keys.add_argument("--json", action="store_true", help="print one JSON object")
    migrate_ = sub.add_parser("migrate", help="apply the bootstrap migrations and exit")
    for command in (serve, keys, migrate_):
        command.add_argument(
            "--env-file", default=".env", help="dotenv file to read (default .env)"
        )
        add_flags(command)
    return parser


def _config(args: argparse.Namespace) -> Config:
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
    return Config.from_sources(os.environ, dotenv, flags)


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
    project = ProjectSecrets.load_or_create(config.data_dir, jwt_secret=config.jwt_secret)
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
            embedded = EmbeddedPostgres(config.data_dir, fsync=config.pg_fsync)
            await nursery.start(embedded.run)
            conninfo = embedded.conninfo
        pool = Pool(conninfo, config.db)
        try:
            applied = await migrate(pool)
        finally:
            pool.close()
        print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")  # noqa: T201
        nursery.cancel_scope.cancel()
