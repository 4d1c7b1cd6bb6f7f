"""compose.yaml: valid against the Compose Specification's schema, and wired as MadBase needs.

The schema is the one check-jsonschema ships (`vendor.compose-spec`, a test dependency), so
nothing is fetched at test time. No container runs here: the checks read the files.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict
from ruamel.yaml import YAML

from madbase.config import Config, unknown_settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
# What each service may use: keys that Podman (podman-compose and `podman compose`) and Docker
# both honour.
PORTABLE_KEYS = frozenset(
    {
        "image",
        "build",
        "command",
        "environment",
        "ports",
        "volumes",
        "depends_on",
        "healthcheck",
        "restart",
    }
)
# registry host (with a dot) / path : tag, as Podman needs without a search-registries list.
QUALIFIED_IMAGE = re.compile(r"[a-z0-9.-]+\.[a-z]+/[a-z0-9._/-]+:[A-Za-z0-9._-]+")


def load(path: Path = COMPOSE) -> dict[str, Any]:
    document = YAML(typ="safe").load(path.read_text())
    assert isinstance(document, dict)
    return document


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def interpolated(value: str) -> str:
    """`${VAR:-default}` as Compose fills it in when VAR is unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    done = schema_check(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_schema_check_catches_a_mistake(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("service_healthy", "healthy", 1))
    done = schema_check(broken)
    assert done.returncode == 1
    assert "depends_on" in done.stdout


def test_compose_runs_madbase_postgres_and_minio_with_portable_keys() -> None:
    services = load()["services"]
    assert set(services) == {"madbase", "postgres", "minio"}
    for name, service in services.items():
        assert set(service) <= PORTABLE_KEYS, name
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        if "image" in service:
            assert QUALIFIED_IMAGE.fullmatch(service["image"]), service["image"]
    assert services["postgres"]["image"] == "docker.io/library/postgres:17"


def test_compose_builds_madbase_from_the_containerfile() -> None:
    build = load()["services"]["madbase"]["build"]
    assert build["context"] == "."
    containerfile = (ROOT / build["dockerfile"]).read_text()
    base = re.search(r"^FROM (\S+)", containerfile, re.MULTILINE)
    assert base is not None
    assert QUALIFIED_IMAGE.fullmatch(base[1]), base[1]
    assert re.search(r"pip install [^\n]*\.\s", containerfile)
    assert 'CMD ["madbase", "serve", "--host", "0.0.0.0"' in containerfile


def test_compose_points_madbase_at_the_postgres_service() -> None:
    document = load()
    madbase = document["services"]["madbase"]
    command = madbase["command"]
    assert command[:4] == ["madbase", "serve", "--host", "0.0.0.0"]
    environment = {key: interpolated(str(value)) for key, value in madbase["environment"].items()}
    assert unknown_settings(environment, {}) == ()
    config = Config.from_sources(environment, {}, {})
    assert config.database_url is not None
    target = conninfo_to_dict(config.database_url)
    assert (target["host"], target["port"]) == ("postgres", "5432")
    assert madbase["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    port = command[command.index("--port") + 1]
    assert f"127.0.0.1:{port}:{port}" in madbase["ports"]
    assert config.url == f"http://127.0.0.1:{port}"


def test_compose_declares_every_named_volume() -> None:
    document = load()
    used = {
        mount.split(":", 1)[0]
        for service in document["services"].values()
        for mount in service.get("volumes", ())
    }
    assert used == set(document["volumes"])


@pytest.mark.parametrize(
    "variable", ["POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"]
)
def test_compose_secrets_can_be_set_from_outside(variable: str) -> None:
    assert f"${{{variable}:-" in COMPOSE.read_text()
