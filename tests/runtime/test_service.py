"""Services and projects as registries: identity verified once at the gateway, each service's
error envelope, a service registered without touching `App` or the gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from madbase.config import Config, DbSettings
from madbase.protocol.auth import AuthLimits
from madbase.protocol.http import (
    Dispatch,
    GatewayError,
    Mount,
    Request,
    Response,
    json_response,
)
from madbase.protocol.identity import BearerError, Principal, mint_api_key
from madbase.protocol.identity import signing as signing_module
from madbase.protocol.rest import RestLimits
from madbase.runtime.app import App
from madbase.runtime.auth import AuthService
from madbase.runtime.db import Pool
from madbase.runtime.rest import RestService
from madbase.runtime.schema_cache import SchemaCache
from madbase.runtime.secrets import ProjectSecrets
from madbase.runtime.serve import open_project
from madbase.runtime.service import Built, Service
from madbase.runtime.services import DEFAULT_SERVICES
from tests.conftest import PgServer


def request(target: str, *headers: tuple[str, str], method: str = "GET") -> Request:
    return Request(method=method, target=target, headers=headers, client="127.0.0.1")


def unreachable_pool(tmp_path: Path) -> Pool:
    # No database is reachable here; nothing below gets that far.
    return Pool(
        f"host={tmp_path} port=5432 user=postgres dbname=x", DbSettings(connect_timeout=0.5)
    )


def render_echo_refusal(err: GatewayError, request: Request) -> Response:
    return json_response(err.status, {"echo_error": type(err).__name__, "said": str(err)})


ECHO_MOUNT = Mount("/echo/v1", "echo", open_paths=frozenset({"/open"}))


async def echo(request: Request, dispatch: Dispatch) -> Response:
    identity = dispatch.identity
    assert identity is not None
    who: dict[str, Any] = (
        {"refused": identity.message}
        if isinstance(identity, BearerError)
        else {"role": identity.role, "subject": identity.subject}
    )
    key = dispatch.key.kind if dispatch.key is not None else None
    return json_response(200, {"subpath": dispatch.subpath, "key": key, **who})


ECHO = Service(mount=ECHO_MOUNT, render_refusal=render_echo_refusal)


@pytest.fixture
def secrets_(tmp_path: Path) -> ProjectSecrets:
    return ProjectSecrets.load_or_create(tmp_path / "data")


# --- identity once ------------------------------------------------------------------------


class Counting:
    """Counts pyjwt's signature checks and the verifier's bearer checks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, app: App) -> None:
        self.signatures = 0
        self.identifications = 0
        real_jws = signing_module._JWS
        real_identify = app.verifier.identify

        outer = self

        class Jws:
            def decode(self, *args: Any, **kwargs: Any) -> Any:
                outer.signatures += 1
                return real_jws.decode(*args, **kwargs)

        def identify(authorization: str | None, *, now: Any) -> Principal | BearerError:
            outer.identifications += 1
            return real_identify(authorization, now=now)

        monkeypatch.setattr(signing_module, "_JWS", Jws())
        monkeypatch.setattr(app.verifier, "identify", identify)


@pytest.fixture
def rest_app(secrets_: ProjectSecrets, tmp_path: Path) -> App:
    pool = unreachable_pool(tmp_path)
    app = App(secrets_, pool)
    # The real REST service, its schema cache not loaded yet: it answers 503 PGRST002 once it
    # has the request's identity, without reaching the database.
    app.services["rest"] = RestService(
        pool=pool, cache=SchemaCache(), limits=RestLimits(), schemas=("public",)
    )
    return app


async def test_rest_request_verifies_its_token_once(
    rest_app: App, secrets_: ProjectSecrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = rest_app
    counting = Counting(monkeypatch, app)
    key = secrets_.anon_key
    for _ in range(3):  # supabase-js without a session: the anon key as both credentials
        response = await app.handle(
            request("/rest/v1/todos", ("apikey", key), ("authorization", f"Bearer {key}"))
        )
        assert json.loads(response.body)["code"] == "PGRST002"
    assert counting.identifications == 3  # once per request, by the gateway
    assert counting.signatures == 1  # once per token and project


FORGED = mint_api_key("another-secret-of-at-least-32-characters!", "anon", issued_at=0)


async def test_rest_renders_the_admitted_token_refusal_as_postgrest(
    rest_app: App, secrets_: ProjectSecrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = rest_app
    counting = Counting(monkeypatch, app)
    forged = FORGED
    response = await app.handle(
        request(
            "/rest/v1/todos",
            ("apikey", secrets_.anon_key),
            ("authorization", f"Bearer {forged}"),
        )
    )
    assert response.status == 401
    assert json.loads(response.body) == {
        "code": "PGRST301",
        "message": "JWSError JWSInvalidSignature",
        "details": None,
        "hint": None,
    }
    assert counting.identifications == 1


@pytest.fixture
def auth_app(secrets_: ProjectSecrets, tmp_path: Path) -> App:
    pool = unreachable_pool(tmp_path)
    app = App(secrets_, pool)
    app.services["auth"] = AuthService(
        pool=pool, secret=secrets_.jwt_secret, limits=AuthLimits(), site_url="http://x"
    )
    return app


async def test_auth_user_reads_the_admitted_identity(
    auth_app: App, secrets_: ProjectSecrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = auth_app
    counting = Counting(monkeypatch, app)
    forged = FORGED
    response = await app.handle(
        request(
            "/auth/v1/user",
            ("apikey", secrets_.anon_key),
            ("authorization", f"Bearer {forged}"),
            ("x-supabase-api-version", "2024-01-01"),
        )
    )
    # GoTrue's answer for the same refusal PostgREST answers with 401 PGRST301.
    assert response.status == 403
    assert json.loads(response.body) == {
        "code": "bad_jwt",
        "message": "invalid JWT: unable to parse or verify signature, JWSError JWSInvalidSignature",
    }
    assert counting.identifications == 1
    assert counting.signatures == 2  # the key and the forged token, each once


# --- one error envelope per service, the Api-Version fix -----------------------------------


@pytest.mark.parametrize("version", ["2024-02-30", "2024-00-10"])
async def test_auth_refusals_and_auth_answers_agree_on_the_api_version_shape(
    auth_app: App, secrets_: ProjectSecrets, version: str
) -> None:
    """`2024-02-30` is no date: GoTrue answers in the legacy shape, and so must the gateway's
    refusals under /auth/v1 (it used to answer those in the versioned shape)."""
    app = auth_app
    asked = ("x-supabase-api-version", version)
    refused = await app.handle(request("/auth/v1/user", asked))  # no key: the gateway
    answered = await app.handle(  # a key, no token: GoTrue's own 401
        request("/auth/v1/user", asked, ("apikey", secrets_.anon_key))
    )
    for response, code in ((refused, "no_authorization"), (answered, "no_authorization")):
        assert response.status == 401
        body = json.loads(response.body)
        assert set(body) == {"code", "error_code", "msg"}
        assert body["code"] == 401
        assert body["error_code"] == code
        assert response.header("x-supabase-api-version") is None


# --- a service registered without touching App or the gateway ------------------------------


async def test_a_new_service_answers_under_its_mount_with_its_envelope(
    secrets_: ProjectSecrets, tmp_path: Path
) -> None:
    app = App(secrets_, unreachable_pool(tmp_path), services=(*DEFAULT_SERVICES, ECHO))
    key = ("apikey", secrets_.service_role_key)
    not_built = await app.handle(request("/echo/v1/x", key))
    assert not_built.status == 404
    assert json.loads(not_built.body) == {
        "echo_error": "RouteNotFound",
        "said": "Route GET:/echo/v1/x not found",
    }
    app.register("echo", Built(handle=echo))
    answered = await app.handle(request("/echo/v1/x/y", key))
    assert answered.status == 200
    assert json.loads(answered.body) == {
        "subpath": "/x/y",
        "key": "legacy",
        "role": "anon",  # no bearer token: the anonymous role (the key's role is `Dispatch.role`)
        "subject": None,
    }
    missing = await app.handle(request("/echo/v1/x"))
    assert missing.status == 401
    assert json.loads(missing.body) == {
        "echo_error": "MissingApiKey",
        "said": "No API key found in request",
    }
    opened = await app.handle(request("/echo/v1/open", ("authorization", "Bearer a.b.c")))
    assert json.loads(opened.body) == {
        "subpath": "/open",
        "key": None,
        "refused": "JWSError (CompactDecodeError Invalid number of parts)",
    }
    # The other services keep their envelopes.
    rest = await app.handle(request("/rest/v1/t"))
    assert json.loads(rest.body)["code"] == "PGRST302"
    # And a path under no mount is the gateway's own.
    nowhere = await app.handle(request("/echo/v2/x", key))
    assert json.loads(nowhere.body) == {"message": "no Route matched with those values"}


async def test_project_builds_a_registered_service_and_runs_its_tasks(
    pg_server: PgServer, tmp_path: Path
) -> None:
    events: list[str] = []

    async def heartbeat(*, task_status: trio.TaskStatus[None]) -> None:
        events.append("started")
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            events.append("cancelled")

    async def closed() -> None:
        events.append("closed")

    def build(project: Any) -> Built:
        assert project.verifier is project.app.verifier
        return Built(
            handle=echo,
            websockets={"/socket": echo},  # type: ignore[dict-item]
            tasks=(heartbeat,),
            aclose=closed,
        )

    service = Service(mount=ECHO_MOUNT, render_refusal=render_echo_refusal, build=build)
    config = Config(data_dir=tmp_path, database_url=pg_server.url(pg_server.create_database()))
    async with open_project(config, services=(*DEFAULT_SERVICES, service)) as project:
        assert events == ["started"]
        assert set(project.built) == {"rest", "auth", "echo"}
        assert ("echo", "/socket") in project.app.websockets
        token = project.secrets.service_role_key
        response = await project.app.handle(
            request("/echo/v1/hi", ("apikey", token), ("authorization", f"Bearer {token}"))
        )
        assert json.loads(response.body) == {
            "subpath": "/hi",
            "key": "legacy",
            "role": "service_role",
            "subject": None,
        }
        rest = await project.app.handle(request("/rest/v1/", ("apikey", token)))
        assert rest.status == 200  # REST built from the same registry, its watcher running
    assert events == ["started", "closed", "cancelled"]
