"""`madbase serve` and `madbase keys` as a user runs them: a subprocess, spoken to over HTTP."""

from __future__ import annotations

import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import postgrest
import psycopg
import pytest
import supabase

from madbase.runtime.embedded import binaries_dir
from madbase.runtime.secrets import ProjectSecrets

pytestmark = pytest.mark.pg


class Served:
    """A running `madbase serve`."""

    def __init__(self, proc: subprocess.Popen[str], banner: list[str], log_path: Path) -> None:
        self.proc = proc
        self.banner = banner
        self.log_path = log_path
        self.url = banner[0].rsplit(" ", 1)[1]
        self.anon_key = banner[1].split()[-1]
        self.service_role_key = banner[2].split()[-1]
        self.db_url = banner[3].split()[-1]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def start(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    log_path = data_dir.parent / f"{data_dir.name}-{time.monotonic_ns()}.log"
    with log_path.open("w") as log_file:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "madbase",
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                "0",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env={**os.environ, "MADBASE_PG_FSYNC": "false", **(env or {})},
            cwd=data_dir.parent,
        )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    raw = b""
    deadline = time.monotonic() + 60
    while raw.count(b"\n") < 5:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            if ready:
                code = proc.wait()
            else:
                proc.kill()
                code = proc.wait()
            proc.stdout.close()
            raise AssertionError(f"no banner (exit {code}); log:\n{log_path.read_text()}")
        raw += chunk
    banner = [line.strip() for line in raw.decode().splitlines()]
    return Served(proc, banner, log_path)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = start(tmp_path / "data")
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.stop()


def postgres_processes(data_dir: Path) -> list[int]:
    """PIDs of postgres processes serving `data_dir`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            cmdline
            and cmdline[0].endswith(b"/postgres")
            and str(data_dir).encode() in b" ".join(cmdline)
        ):
            pids.append(int(entry.name))
    return pids


def keys_json(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "madbase", "keys", "--json", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    value = json.loads(out.stdout)
    assert isinstance(value, dict)
    return value


def test_serve_prints_url_and_keys_and_is_healthy(served: Served, tmp_path: Path) -> None:
    assert served.banner[0].startswith("MadBase is ready at http://127.0.0.1:")
    health = httpx.get(f"{served.url}/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    anon = jwt.decode(served.anon_key, options={"verify_signature": False})
    service = jwt.decode(served.service_role_key, options={"verify_signature": False})
    assert anon["role"] == "anon"
    assert service["role"] == "service_role"
    assert anon["iss"] == "supabase"
    assert anon["exp"] > anon["iat"] + 365 * 24 * 3600
    keys = keys_json(tmp_path / "data")
    assert keys["anon_key"] == served.anon_key
    assert keys["service_role_key"] == served.service_role_key
    assert keys["db_url"] == served.db_url
    secrets_file = tmp_path / "data" / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600


def test_serve_port_0_issues_tokens_for_the_port_it_got(served: Served) -> None:
    signed_up = httpx.post(
        f"{served.url}/auth/v1/signup",
        headers={"apikey": served.anon_key},
        json={"email": "iss@example.com", "password": "s3cret-pass"},
    )
    assert signed_up.status_code == 200, signed_up.text
    claims = jwt.decode(signed_up.json()["access_token"], options={"verify_signature": False})
    assert claims["iss"] == f"{served.url}/auth/v1"
    assert not served.url.endswith(":0")


def test_serve_gateway_checks_api_key_on_every_service(served: Served) -> None:
    for path, field in (
        ("/rest/v1/todos", "code"),
        ("/auth/v1/no-such-endpoint", "error_code"),
        ("/storage/v1/bucket", "statusCode"),
        ("/realtime/v1/api/broadcast", "error"),
    ):
        missing = httpx.get(served.url + path)
        assert missing.status_code == 401, path
        assert field in missing.json(), path
        bad = httpx.get(served.url + path, headers={"apikey": served.anon_key + "x"})
        assert bad.status_code == 401, path
        forged = jwt.encode(
            {"role": "service_role", "exp": 4102444800}, "not-the-secret" * 3, algorithm="HS256"
        )
        assert httpx.get(served.url + path, headers={"apikey": forged}).status_code == 401
        ok = httpx.get(served.url + path, headers={"apikey": served.anon_key})
        # admitted: REST has no such table, auth no such endpoint, the others are not built yet
        assert ok.status_code == 404, path
        by_query = httpx.get(served.url + path, params={"apikey": served.anon_key})
        assert by_query.status_code == 404, path
    assert httpx.get(served.url + "/unknown").json() == {
        "message": "no Route matched with those values"
    }


def test_serve_answers_cors_preflight_and_request_ids(served: Served) -> None:
    preflight = httpx.options(
        served.url + "/rest/v1/todos",
        headers={
            "origin": "http://localhost:5173",
            "access-control-request-method": "PATCH",
            "access-control-request-headers": "apikey,authorization,x-client-info,content-profile,prefer",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    assert "content-profile" in preflight.headers["access-control-allow-headers"]
    response = httpx.get(
        served.url + "/health", headers={"x-request-id": "abc-123", "origin": "http://x"}
    )
    assert response.headers["x-request-id"] == "abc-123"
    assert response.headers["access-control-allow-origin"] == "*"


def test_serve_logs_one_json_line_per_request_without_keys(served: Served) -> None:
    httpx.get(served.url + "/rest/v1/t", params={"apikey": served.anon_key})
    served.stop()
    lines = [
        json.loads(line)
        for line in served.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    access = [line for line in lines if "request_id" in line and line.get("path") == "/rest/v1/t"]
    assert len(access) == 1
    assert access[0]["status"] == 404
    assert served.anon_key not in served.log_path.read_text()


def test_serve_db_url_lets_psql_create_tables_and_policies(served: Served) -> None:
    psql = binaries_dir() / "psql"
    script = (
        "create table public.todos (id serial primary key, task text);"
        "alter table public.todos enable row level security;"
        "create policy readable on public.todos for select using (true);"
        "insert into public.todos (task) values ('write tests');"
    )
    subprocess.run(
        [str(psql), served.db_url, "-v", "ON_ERROR_STOP=1", "-c", script],
        check=True,
        capture_output=True,
    )
    with psycopg.connect(served.db_url) as conn:
        assert conn.execute("select task from public.todos").fetchall() == [("write tests",)]


def test_serve_restart_keeps_data_and_keys_and_leaves_no_process(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = start(data_dir)
    with psycopg.connect(first.db_url, autocommit=True) as conn:
        conn.execute("create table kept (v text)")
        conn.execute("insert into kept values ('committed')")
    assert postgres_processes(data_dir)
    assert first.stop(signal.SIGTERM) == 0
    assert postgres_processes(data_dir) == []
    second = start(data_dir)
    try:
        assert (second.anon_key, second.service_role_key) == (
            first.anon_key,
            first.service_role_key,
        )
        with psycopg.connect(second.db_url) as conn:
            assert conn.execute("select v from kept").fetchall() == [("committed",)]
        assert httpx.get(second.url + "/health").status_code == 200
    finally:
        assert second.stop(signal.SIGINT) == 0
    assert postgres_processes(data_dir) == []


def test_serve_killed_hard_leaves_no_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start(data_dir)
    assert postgres_processes(data_dir)
    server.stop(signal.SIGKILL)
    deadline = time.monotonic() + 30
    while postgres_processes(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert postgres_processes(data_dir) == []


def test_serve_refuses_a_second_server_on_the_same_data(served: Served, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "madbase",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "another MadBase process is using the data directory" in proc.stderr
    assert httpx.get(served.url + "/health").status_code == 200


def test_serve_jwt_secret_override_signs_the_keys(tmp_path: Path) -> None:
    secret = "a-very-long-jwt-secret-for-testing-only-0123456789"
    server = start(tmp_path / "data", env={"MADBASE_JWT_SECRET": secret})
    try:
        claims = jwt.decode(server.anon_key, secret, algorithms=["HS256"])
        assert claims["role"] == "anon"
        assert (
            httpx.get(server.url + "/rest/v1/x", headers={"apikey": server.anon_key}).status_code
            == 404
        )
    finally:
        server.stop()
    keys = keys_json(tmp_path / "data", env={"MADBASE_JWT_SECRET": secret})
    assert keys["anon_key"] == server.anon_key


def test_serve_with_database_url_bootstraps_that_database(
    tmp_path: Path, pg_server: object
) -> None:
    from tests.conftest import PgServer

    assert isinstance(pg_server, PgServer)
    name = pg_server.create_database()
    url = pg_server.url(name)
    server = start(tmp_path / "data", env={"MADBASE_DATABASE_URL": url})
    try:
        assert server.db_url == url
        assert httpx.get(server.url + "/health").status_code == 200
        with psycopg.connect(url) as conn:
            roles = {r[0] for r in conn.execute("select rolname from pg_roles")}
            assert {"anon", "authenticated", "service_role", "authenticator"} <= roles
        assert not (tmp_path / "data" / "pg").exists()  # no embedded server was started
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "abc"], {}, "--port: expected a whole number"),
        ([], {"MADBASE_PORT": "70000"}, "MADBASE_PORT: expected a whole number"),
        ([], {"MADBASE_JWT_SECRET": "short"}, "MADBASE_JWT_SECRET: must be at least 32 characters"),
        (
            [],
            {"MADBASE_DATABASE_URL": "mysql://x"},
            "MADBASE_DATABASE_URL: expected a postgresql://",
        ),
        ([], {"MADBASE_HTTP_READ_TIMEOUT": "-1"}, "MADBASE_HTTP_READ_TIMEOUT"),
    ],
)
def test_serve_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "madbase", "serve", "--data-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]


def test_serve_reads_dotenv_file_under_environment(tmp_path: Path) -> None:
    ProjectSecrets.load_or_create(tmp_path / "d")  # `keys` reads a data directory a server made
    (tmp_path / ".env").write_text("MADBASE_PORT=not-a-port\n")
    proc = subprocess.run(
        [sys.executable, "-m", "madbase", "keys", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "MADBASE_PORT (in .env)" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "madbase", "keys", "--json", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MADBASE_PORT": "9123"},
        timeout=60,
    )
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["url"] == "http://127.0.0.1:9123"


@pytest.mark.clients
def test_supabase_py_client_reaches_the_gateway(served: Served) -> None:
    client = supabase.create_client(served.url, served.anon_key)
    bad = supabase.create_client(served.url, served.anon_key[:-8] + "AAAAAAAA")
    try:
        with pytest.raises(postgrest.APIError) as caught:
            client.table("todos").select("*").execute()
        assert caught.value.code == "PGRST205"
        with pytest.raises(postgrest.APIError) as caught_bad:
            bad.table("todos").select("*").execute()
        assert caught_bad.value.code == "PGRST301"
    finally:
        for opened in (client, bad):
            opened.postgrest.aclose()
            opened.auth._http_client.close()


def test_migrate_command_applies_once_and_stops_its_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "MADBASE_PG_FSYNC": "false"}
    command = [sys.executable, "-m", "madbase", "migrate", "--data-dir", str(data_dir)]
    first = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=True
    )
    assert first.stdout.startswith("applied: 0001_roles_and_schemas")
    second = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=True
    )
    assert second.stdout.strip() == "applied: nothing (up to date)"
    assert postgres_processes(data_dir) == []
