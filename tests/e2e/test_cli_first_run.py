"""The command line as a new user meets it: settings that cannot work stop it with one line.

Each case runs `madbase` as a subprocess and reads its stderr and exit status, as a user would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from madbase.runtime.secrets import ProjectSecrets

SECRET_PASSWORD = "hunter2-not-for-logs"


def madbase(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "madbase", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "MADBASE_PG_FSYNC": "false", **(env or {})},
        cwd=cwd,
        timeout=120,
        check=False,
    )


def one_line_exit_2(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a command that stopped with exit status 2."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("madbase: ")
    return lines[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# --- madbase serve: a setting that fails at start -------------------------------------------


def test_serve_unreachable_database_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    url = f"postgresql://app:{SECRET_PASSWORD}@127.0.0.1:{closed_port()}/app"
    done = madbase(
        "serve", "--data-dir", str(tmp_path / "d"), "--port", "0", env={"MADBASE_DATABASE_URL": url}
    )
    line = one_line_exit_2(done)
    assert line.startswith("madbase: MADBASE_DATABASE_URL: cannot connect: ")
    assert "Connection refused" in line
    assert SECRET_PASSWORD not in done.stderr


@pytest.mark.pg
def test_serve_wrong_database_url_is_one_line_and_exit_2(tmp_path: Path, pg_server: object) -> None:
    from tests.conftest import PgServer

    assert isinstance(pg_server, PgServer)
    done = madbase(
        "serve",
        "--data-dir",
        str(tmp_path / "d"),
        "--port",
        "0",
        "--database-url",
        pg_server.url("no_such_database"),
    )
    line = one_line_exit_2(done)
    assert line.startswith("madbase: --database-url: cannot connect: ")
    assert 'database "no_such_database" does not exist' in line


def test_serve_malformed_database_url_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://app:{SECRET_PASSWORD}@[::1/app"
    done = madbase("serve", "--data-dir", str(tmp_path), env={"MADBASE_DATABASE_URL": url})
    line = one_line_exit_2(done)
    assert line.startswith("madbase: MADBASE_DATABASE_URL: not a valid connection string: ")
    assert SECRET_PASSWORD not in done.stderr


def test_migrate_unreachable_database_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    url = f"postgresql://app@127.0.0.1:{closed_port()}/app"
    done = madbase("migrate", "--data-dir", str(tmp_path), env={"MADBASE_DATABASE_URL": url})
    assert one_line_exit_2(done).startswith("madbase: MADBASE_DATABASE_URL: cannot connect: ")


def test_serve_port_in_use_names_host_and_port(tmp_path: Path, taken_port: int) -> None:
    done = madbase("serve", "--data-dir", str(tmp_path), "--port", str(taken_port))
    line = one_line_exit_2(done)
    assert line.startswith(f"madbase: --port: cannot listen on 127.0.0.1:{taken_port}: ")
    assert "in use" in line
    env_done = madbase("serve", "--data-dir", str(tmp_path), env={"MADBASE_PORT": str(taken_port)})
    assert one_line_exit_2(env_done).startswith(
        f"madbase: MADBASE_PORT: cannot listen on 127.0.0.1:{taken_port}: "
    )


def test_serve_unknown_host_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = madbase("serve", "--data-dir", str(tmp_path), "--host", "no-such-host.invalid")
    assert one_line_exit_2(done).startswith(
        "madbase: --host: cannot resolve 'no-such-host.invalid': "
    )


def test_serve_unusable_data_dir_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # A regular file where a directory should be: unwritable for root too.
    blocker = tmp_path / "file"
    blocker.write_text("")
    data_dir = blocker / "data"
    done = madbase("serve", "--data-dir", str(data_dir), "--port", "0")
    line = one_line_exit_2(done)
    assert (
        line == f"madbase: --data-dir: cannot use {data_dir} as the data directory: Not a directory"
    )
    migrate_done = madbase("migrate", env={"MADBASE_DATA_DIR": str(data_dir)})
    assert one_line_exit_2(migrate_done).startswith(
        f"madbase: MADBASE_DATA_DIR: cannot use {data_dir}"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MADBASE_PUBLIC_URL": "foo"},
            "madbase: MADBASE_PUBLIC_URL: expected an http:// or https://",
        ),
        (
            {"MADBASE_SITE_URL": "localhost:3000"},
            "madbase: MADBASE_SITE_URL: expected an http:// or https://",
        ),
        (
            {"MADBASE_AUTH_GITHUB_CLIENT_ID": "id", "MADBASE_AUTH_GITHUB_URL": "github.example"},
            "madbase: MADBASE_AUTH_GITHUB_URL: expected an http:// or https://",
        ),
    ],
)
def test_serve_bad_url_setting_is_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    done = madbase("serve", "--data-dir", str(tmp_path), env=env)
    assert one_line_exit_2(done).startswith(message)


# --- madbase keys ---------------------------------------------------------------------------


def test_keys_outside_a_data_directory_refuses_and_creates_nothing(tmp_path: Path) -> None:
    done = madbase("keys", cwd=tmp_path)
    line = one_line_exit_2(done)
    looked_at = tmp_path / ".madbase" / "secrets.json"
    assert f"({looked_at} does not exist)" in line
    assert "madbase serve" in line
    assert done.stdout == ""
    assert not (tmp_path / ".madbase").exists()


def test_keys_in_a_data_directory_prints_its_keys(tmp_path: Path) -> None:
    stored = ProjectSecrets.load_or_create(tmp_path / ".madbase")
    done = madbase("keys", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"anon_key: {stored.anon_key}" in done.stdout.splitlines()


# --- unknown variables ----------------------------------------------------------------------


def test_unknown_variable_is_named_with_the_closest_setting(tmp_path: Path) -> None:
    ProjectSecrets.load_or_create(tmp_path)
    (tmp_path / ".env").write_text("MADBASE_LOG_LEVLE=debug\n")
    done = madbase(
        "keys",
        "--data-dir",
        str(tmp_path),
        env={"MADBASE_PROT": "9000", "MADBASE_AUTH_GITHUB_CLIENT_ID": "known"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    warnings = done.stderr.splitlines()
    assert (
        "madbase: warning: unknown setting MADBASE_PROT is ignored; did you mean MADBASE_PORT?"
        in warnings
    )
    assert (
        "madbase: warning: unknown setting MADBASE_LOG_LEVLE (in .env) is ignored; "
        "did you mean MADBASE_LOG_LEVEL?"
    ) in warnings
    assert "MADBASE_AUTH_GITHUB_CLIENT_ID" not in done.stderr  # a provider's: known


# --- --help ---------------------------------------------------------------------------------


def option_lines(help_text: str) -> dict[str, str]:
    """`--flag`: its help text (argparse wraps it over several lines)."""
    options: dict[str, str] = {}
    current = ""
    for line in help_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("--"):
            current = stripped.split()[0]
            options[current] = stripped
        elif current and line.startswith(" " * 10):
            options[current] += " " + stripped
        else:
            current = ""
    return options


def test_serve_help_gives_each_option_its_meaning_and_default() -> None:
    done = madbase("serve", "--help")
    assert done.returncode == 0
    options = option_lines(done.stdout)
    assert len(options) > 50
    for flag, text in options.items():
        assert "default" in text, f"{flag}: {text}"
    assert "(default: 8000; env MADBASE_PORT)" in options["--port"]
    assert "starttls|tls|off" in options["--smtp-tls"]


@pytest.mark.parametrize(
    ("command", "present", "absent"),
    [
        (
            "keys",
            {"--data-dir", "--jwt-secret", "--json", "--port"},
            {"--http-read-timeout", "--smtp-host", "--workers"},
        ),
        (
            "migrate",
            {"--data-dir", "--database-url", "--pg-fsync"},
            {"--port", "--smtp-host", "--workers"},
        ),
    ],
)
def test_keys_and_migrate_help_list_only_what_they_use(
    command: str, present: set[str], absent: set[str]
) -> None:
    done = madbase(command, "--help")
    assert done.returncode == 0
    options = set(option_lines(done.stdout))
    assert present <= options
    assert not absent & options
