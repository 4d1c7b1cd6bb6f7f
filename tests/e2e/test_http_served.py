"""Requests as a served project answers them over real sockets, through our server (both parsers)
and through hypercorn: methods no route takes, `Retry-After` on 503s, the error code in the access
log, and a client that goes away while its query runs."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import hypercorn.config
import hypercorn.trio
import psycopg
import pytest
import trio

from madbase.asgi import AsgiApp
from madbase.config import Config, DbSettings, HttpSettings
from madbase.runtime.http import HttpServer
from madbase.runtime.serve import Project, open_project
from tests.conftest import PgServer
from tests.runtime.test_http import Client, Reply, header

pytestmark = [pytest.mark.pg]

FRONTS = ["h11", "httptools", "hypercorn"]

NAP = """
create table public.ledger (id int primary key, amount int);
revoke all on public.ledger from anon;
grant select on public.ledger to anon;
-- No statement timeout of the login role's (8 s) ends the nap: only a cancel does.
create function public.nap(seconds float) returns void language sql
  set statement_timeout = 0 as $$ select pg_sleep(seconds) $$;
"""


@attrs.frozen
class Answer:
    status: int
    headers: Reply
    body: Any

    def header(self, name: str) -> str | None:
        value = header(self.headers, name.encode())
        return None if value is None else value.decode()


@attrs.define
class Served:
    url: str
    project: Project
    # Our server; None under hypercorn.
    server: HttpServer | None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def anon_key(self) -> str:
        return self.project.secrets.anon_key

    async def connect(self) -> Client:
        return Client(await trio.open_tcp_stream("127.0.0.1", self.port))

    async def ask(self, method: str, path: str, body: object = None, **headers: str) -> Answer:
        """One request on a new connection (`Connection: close`); the reply, its body parsed."""
        client = await self.connect()
        try:
            raw = b"" if body is None else json.dumps(body).encode()
            lines = [
                f"{method} {path} HTTP/1.1",
                "Host: test",
                "Connection: close",
                f"Apikey: {self.anon_key}",
                f"Content-Length: {len(raw)}",
                *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items()),
            ]
            await client.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode() + raw)
            reply, data = await client.response(head=method == "HEAD")
            return Answer(reply.status_code, reply, json.loads(data) if data else None)
        finally:
            await client.stream.aclose()


def config_for(pg_server: PgServer, tmp_path: Path, front: str, **db: float) -> Config:
    return Config(
        data_dir=tmp_path,
        database_url=pg_server.url(pg_server.create_database()),
        http=HttpSettings(parser=front if front != "hypercorn" else "auto"),
        db=DbSettings(**db),  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def serving(config: Config, front: str) -> AsyncIterator[Served]:
    """The project served by `front` on a free port, stopped on exit."""
    if front == "hypercorn":
        asgi = AsgiApp(lambda: config)
        settings = hypercorn.config.Config()
        settings.bind = ["127.0.0.1:0"]
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                partial(
                    hypercorn.trio.serve,
                    asgi,  # type: ignore[arg-type] # hypercorn types ASGI messages as TypedDicts
                    settings,
                    shutdown_trigger=stop.wait,
                )
            )
            project = asgi._project
            assert project is not None
            try:
                yield Served(binds[0], project, None)
            finally:
                stop.set()
        return
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
    async with open_project(config, url=url) as project:
        server = HttpServer(project.app, config.http)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listeners)
            try:
                yield Served(url, project, server)
            finally:
                server.begin_shutdown()


def sql(db_url: str, statement: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        cursor = conn.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else []


async def run_sql(db_url: str, statement: str, *params: object) -> list[tuple[object, ...]]:
    return await trio.to_thread.run_sync(partial(sql, db_url, statement, *params))


async def create_nap(served: Served) -> None:
    """The fixture tables and `nap(seconds)`, once the schema cache has them."""
    await run_sql(served.project.db_url, NAP)
    with trio.fail_after(30):
        while (await served.ask("POST", "/rest/v1/rpc/nap", {"seconds": 0})).status != 204:
            await trio.sleep(0.05)


async def sign_in(served: Served) -> Answer:
    """A password sign-in: an `/auth/v1` request that needs the database."""
    body = {"email": "a@example.com", "password": "whatever-it-is"}
    return await served.ask("POST", "/auth/v1/token?grant_type=password", body)


async def sleeping(db_url: str) -> int:
    """Backends of this database sleeping in pg_sleep now."""
    rows = await run_sql(
        db_url,
        "select count(*) from pg_stat_activity"
        " where datname = current_database() and wait_event = 'PgSleep'",
    )
    count = rows[0][0]
    assert isinstance(count, int)
    return count


# --- 8: methods no route takes ------------------------------------------------------------------


@pytest.mark.parametrize("front", FRONTS)
async def test_methods_no_route_takes_are_refused_in_the_service_shape(
    pg_server: PgServer, tmp_path: Path, front: str
) -> None:
    async with serving(config_for(pg_server, tmp_path, front), front) as served:
        tunnel = await served.ask("CONNECT", "example.com:443")
        assert tunnel.status == 400
        assert tunnel.body == {"message": "CONNECT is not supported: this server is not a proxy"}
        for path in ("/", "/health", "/nowhere"):
            trace = await served.ask("TRACE", path)
            assert trace.status == 405
            assert trace.header("allow") == "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
            assert trace.body == {"message": "Unsupported HTTP method: TRACE"}
        auth = await served.ask("TRACE", "/auth/v1/user", x_supabase_api_version="2024-01-01")
        assert auth.status == 405
        assert auth.header("allow") is not None
        assert auth.body == {
            "code": "method_not_allowed",
            "message": "Unsupported HTTP method: TRACE",
        }
        # PostgREST's own answers under /rest/v1.
        rest = await served.ask("TRACE", "/rest/v1/ledger")
        assert (rest.status, rest.body["code"]) == (405, "PGRST117")
        rpc = await served.ask("TRACE", "/rest/v1/rpc/nap")
        assert (rpc.status, rpc.body["code"]) == (405, "PGRST101")


# --- 9: Retry-After on every 503 ----------------------------------------------------------------


@pytest.mark.parametrize("front", ["httptools", "hypercorn"])
async def test_every_503_says_when_to_retry(
    pg_server: PgServer, tmp_path: Path, front: str
) -> None:
    async with serving(config_for(pg_server, tmp_path, front), front) as served:
        await create_nap(served)
        db_url = served.project.db_url
        name = (await run_sql(db_url, "select current_database()"))[0][0]
        admin = pg_server.url("postgres")
        await run_sql(admin, f"alter database {name} with allow_connections false")
        try:
            await run_sql(
                admin,
                "select pg_terminate_backend(pid) from pg_stat_activity"
                " where datname = %s and pid <> pg_backend_pid()",
                name,
            )
            rest = await served.ask("GET", "/rest/v1/ledger")
            assert (rest.status, rest.body["code"]) == (503, "PGRST000")
            assert rest.header("retry-after") == "0"
            auth = await sign_in(served)
            assert auth.status == 503
            assert auth.header("retry-after") == "0"
            health = await served.ask("GET", "/health")
            assert health.status == 503
            assert health.header("retry-after") == "0"
        finally:
            await run_sql(admin, f"alter database {name} with allow_connections true")
        ok = await served.ask("GET", "/health")
        assert ok.status == 200
        assert ok.header("retry-after") is None


async def test_pool_timeout_503_of_auth_says_when_to_retry(
    pg_server: PgServer, tmp_path: Path
) -> None:
    config = config_for(pg_server, tmp_path, "httptools", pool_size=1, acquire_timeout=0.2)
    async with serving(config, "httptools") as served:
        await create_nap(served)
        async with trio.open_nursery() as nursery:
            # Both pools busy: REST's with a nap, auth's held here.
            nursery.start_soon(served.ask, "POST", "/rest/v1/rpc/nap", {"seconds": 30})
            with trio.fail_after(15):
                while not await sleeping(served.project.db_url):
                    await trio.sleep(0.05)
            async with served.project.auth_pool.connection():
                auth = await sign_in(served)
            assert auth.status == 503
            assert auth.header("retry-after") == "0"
            # PostgREST answers its pool timeout 504 PGRST003, without Retry-After.
            rest = await served.ask("GET", "/rest/v1/ledger")
            assert (rest.status, rest.body["code"]) == (504, "PGRST003")
            assert rest.header("retry-after") is None
            nursery.cancel_scope.cancel()


# --- the access log names the error code ------------------------------------------------------


async def test_access_log_names_the_error_code_of_each_answer(
    pg_server: PgServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(config_for(pg_server, tmp_path, "httptools"), "httptools") as served:
        await create_nap(served)
        with caplog.at_level(logging.INFO, logger="madbase.access"):
            await served.ask("GET", "/rest/v1/rpc/nope")
            await served.ask("POST", "/rest/v1/ledger", {"id": 1, "amount": 2})
            await served.ask("POST", "/auth/v1/signup", {"email": "w@example.com", "password": "a"})
            await served.ask("GET", "/rest/v1/ledger")
            await served.ask("TRACE", "/auth/v1/user")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "madbase.access"]
    assert [(line["status"], line["error_code"]) for line in lines] == [
        (404, "PGRST202"),
        (401, "42501"),
        (422, "weak_password"),
        (200, None),
        (405, "method_not_allowed"),
    ]
    assert served.anon_key not in caplog.text


# --- 11: a client that goes away cancels its query ----------------------------------------------


@pytest.mark.parametrize("front", FRONTS)
async def test_client_gone_cancels_its_running_statement(
    pg_server: PgServer, tmp_path: Path, front: str, caplog: pytest.LogCaptureFixture
) -> None:
    # One pooled connection: the next request can only be served once the sleeper's is free.
    config = config_for(pg_server, tmp_path, front, pool_size=1)
    async with serving(config, front) as served:
        db_url = served.project.db_url
        await create_nap(served)
        client = await served.connect()
        raw = b'{"seconds": 60}'
        await client.send_raw(
            b"POST /rest/v1/rpc/nap HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            + f"Apikey: {served.anon_key}\r\nContent-Length: {len(raw)}\r\n\r\n".encode()
            + raw
        )
        with trio.fail_after(15):
            while not await sleeping(db_url):
                await trio.sleep(0.05)
        with caplog.at_level(logging.INFO, logger="madbase.access"):
            await client.stream.aclose()
            with trio.fail_after(15):  # far below the 60 s the statement would run
                while await sleeping(db_url):
                    await trio.sleep(0.05)
        after = await served.ask("POST", "/rest/v1/rpc/nap", {"seconds": 0})
        assert after.status == 204
        statuses = [
            json.loads(r.getMessage())["status"]
            for r in caplog.records
            if r.name == "madbase.access"
        ]
        assert 499 in statuses
        if served.server is not None:
            assert served.server.statistics().abandoned == 1
