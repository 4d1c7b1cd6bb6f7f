"""The application: gateway decisions, request ids, access log, and our own failures kept inside."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from madbase.config import DbSettings
from madbase.protocol.http import Dispatch, Request, Response, Service, json_response
from madbase.runtime.app import App
from madbase.runtime.db import DbUnavailable, Pool
from madbase.runtime.secrets import ProjectSecrets


@pytest.fixture
def app(tmp_path: Path) -> App:
    # No database is reachable here: only /health touches it.
    pool = Pool(
        f"host={tmp_path} port=5432 user=postgres dbname=x", DbSettings(connect_timeout=0.5)
    )
    return App(ProjectSecrets.load_or_create(tmp_path / "data"), pool)


def request(target: str, *headers: tuple[str, str], method: str = "GET") -> Request:
    return Request(method=method, target=target, headers=headers, client="127.0.0.1")


async def test_app_routes_admitted_requests_to_the_service(app: App) -> None:
    seen: list[Dispatch] = []

    async def rest(req: Request, dispatch: Dispatch) -> Response:
        seen.append(dispatch)
        return json_response(200, [])

    app.services[Service.REST] = rest
    response = await app.handle(
        request("/rest/v1/todos?select=*", ("apikey", app.secrets.service_role_key))
    )
    assert response.status == 200
    assert seen == [Dispatch(service=Service.REST, subpath="/todos", role="service_role")]


async def test_app_unbuilt_service_paths_answer_404_in_their_format(app: App) -> None:
    key = ("apikey", app.secrets.anon_key)
    rest = await app.handle(request("/rest/v1/todos", key))
    assert rest.status == 404
    assert json.loads(rest.body)["code"] == "PGRST125"
    storage = await app.handle(request("/storage/v1/bucket", key))
    assert storage.status == 404
    assert json.loads(storage.body)["statusCode"] == "404"
    auth = await app.handle(request("/auth/v1/user", key))
    assert json.loads(auth.body)["error_code"] == "not_found"


async def test_app_sets_request_id_from_client_or_generates_one(app: App) -> None:
    given = await app.handle(request("/nowhere", ("x-request-id", "req-123")))
    assert given.header("x-request-id") == "req-123"
    first = await app.handle(request("/nowhere"))
    second = await app.handle(request("/nowhere"))
    assert first.header("x-request-id") != second.header("x-request-id")
    assert len(first.header("x-request-id") or "") == 32


async def test_app_hides_our_failures_behind_a_500_with_request_id(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(req: Request, dispatch: Dispatch) -> Response:
        raise KeyError("secret internals")

    app.services[Service.REST] = broken
    with caplog.at_level(logging.ERROR):
        response = await app.handle(request("/rest/v1/x", ("apikey", app.secrets.anon_key)))
    assert response.status == 500
    body = json.loads(response.body)
    assert body == {
        "message": "Internal server error",
        "request_id": response.header("x-request-id"),
    }
    assert b"secret internals" not in response.body
    assert "KeyError" in caplog.text  # the traceback is logged, not sent


async def test_app_database_outage_in_a_service_is_503(app: App) -> None:
    async def needs_db(req: Request, dispatch: Dispatch) -> Response:
        raise DbUnavailable("down")

    app.services[Service.REST] = needs_db
    response = await app.handle(request("/rest/v1/x", ("apikey", app.secrets.anon_key)))
    assert response.status == 503


async def test_app_health_is_503_without_database(app: App) -> None:
    response = await app.handle(request("/health"))
    assert response.status == 503


async def test_app_logs_one_json_line_per_request_without_secrets(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    key = app.secrets.anon_key
    with caplog.at_level(logging.INFO, logger="madbase.access"):
        await app.handle(request(f"/rest/v1/t?apikey={key}", ("authorization", f"Bearer {key}")))
    lines = [r.getMessage() for r in caplog.records if r.name == "madbase.access"]
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["method"] == "GET"
    assert entry["path"] == "/rest/v1/t"
    assert entry["status"] == 404
    assert entry["client"] == "127.0.0.1"
    assert isinstance(entry["duration_ms"], float)
    assert key not in caplog.text


async def test_app_cors_on_errors_and_preflight_without_key(app: App) -> None:
    origin = ("origin", "http://localhost:3000")
    refused = await app.handle(request("/rest/v1/t", origin))
    assert refused.status == 401
    assert refused.header("access-control-allow-origin") == "*"
    preflight = await app.handle(
        request(
            "/rest/v1/t",
            origin,
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "apikey, authorization, x-client-info, content-type, prefer",
            ),
            method="OPTIONS",
        )
    )
    assert preflight.status == 200
    allowed = preflight.header("access-control-allow-headers") or ""
    for name in ("apikey", "authorization", "x-client-info", "content-type", "prefer"):
        assert name in allowed


async def test_app_websocket_check_needs_key_and_endpoint(app: App) -> None:
    upgrade = ("upgrade", "websocket")
    missing = await app.websocket_check(request("/realtime/v1/websocket?vsn=1.0.0", upgrade))
    assert missing is not None
    assert missing.status == 401
    assert json.loads(missing.body) == {"error": "No API key found in request"}
    unknown = await app.websocket_check(
        request(f"/realtime/v1/websocket?apikey={app.secrets.anon_key}", upgrade)
    )
    assert unknown is not None
    assert unknown.status == 404

    async def endpoint(req: Request, dispatch: Dispatch, ws: object) -> None:
        return None

    app.websockets[(Service.REALTIME, "/websocket")] = endpoint  # type: ignore[assignment]
    accepted = await app.websocket_check(
        request(f"/realtime/v1/websocket?apikey={app.secrets.anon_key}&vsn=2.0.0", upgrade)
    )
    assert accepted is None
