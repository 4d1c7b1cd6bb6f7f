"""The official JS client, supabase-js, against a running `madbase serve`.

The JS tests live in tests/js (node:test); this module installs their pinned dependencies with
`npm ci` when needed, starts a server, and runs them with its URL and keys in the environment.
Node and npm are required: a missing toolchain fails the test, it does not skip it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_rest_clients import ANN, create_rest_schema, user_token
from tests.e2e.test_serve import Served, start

pytestmark = [pytest.mark.clients, pytest.mark.pg]

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_DIR = REPO_ROOT / "tests" / "js"
NODE_TIMEOUT = 120


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH: the supabase-js tests need Node.js 20+ and npm "
            f"(install Node.js, then `npm ci` in {JS_DIR})",
            pytrace=False,
        )
    return path


def _installed(package: str) -> str | None:
    """The version of `package` in tests/js/node_modules, or None when absent."""
    manifest = JS_DIR / "node_modules" / package / "package.json"
    try:
        version = json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return str(version)


def ensure_node_modules() -> None:
    """Install tests/js's locked dependencies with `npm ci` unless the pinned ones are there."""
    wanted = json.loads((JS_DIR / "package.json").read_text())["dependencies"]
    if all(_installed(name) == version for name, version in wanted.items()):
        return
    npm = _tool("npm")
    try:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`npm ci` in {JS_DIR} took more than 300 s", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"`npm ci` in {JS_DIR} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}",
            pytrace=False,
        )
    missing = {name: version for name, version in wanted.items() if _installed(name) != version}
    assert not missing, f"`npm ci` did not install {missing}"


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def run_node_tests(
    served: Served, *paths: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`node --test` against `served`, in tests/js; asserts that all passed.

    `paths` are test files relative to tests/js; none means node's default discovery there
    (`**/*.test.{js,mjs,cjs}` and the like, node_modules excluded).
    """
    node = _tool("node")
    # supabase-js needs a global WebSocket, which Node 20 only has behind this flag.
    command = [node, "--experimental-websocket", "--test", *paths]
    env = {
        **os.environ,
        "MADBASE_URL": served.url,
        "MADBASE_ANON_KEY": served.anon_key,
        "MADBASE_SERVICE_ROLE_KEY": served.service_role_key,
        "NO_COLOR": "1",
        **(extra_env or {}),
    }
    try:
        done = subprocess.run(
            command,
            cwd=JS_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"node did not finish within {NODE_TIMEOUT} s (a dangling handle?)\n"
            f"--- stdout ---\n{_text(exc.stdout)}\n--- stderr ---\n{_text(exc.stderr)}\n"
            f"--- server log ---\n{served.log_path.read_text()}",
            pytrace=False,
        )
    report = (
        f"$ {' '.join(command)}  (exit {done.returncode})\n"
        f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}\n"
        f"--- server log ---\n{served.log_path.read_text()}"
    )
    assert done.returncode == 0, report
    assert re.search(r"^# fail 0$", done.stdout, re.MULTILINE), report
    return done


def test_supabase_js_against_gateway_and_rest(tmp_path: Path) -> None:
    ensure_node_modules()
    data_dir = tmp_path / "data"
    served = start(data_dir)
    try:
        create_rest_schema(served)
        done = run_node_tests(
            served,
            extra_env={
                "MADBASE_USER_TOKEN": user_token(data_dir, ANN),
                # The default mailer of `madbase serve` writes auth mail here (auth.test.mjs).
                "MADBASE_OUTBOX": str(data_dir / "outbox"),
            },
        )
    finally:
        served.stop()
    passed = re.search(r"^# pass (\d+)$", done.stdout, re.MULTILINE)
    assert passed is not None, done.stdout
    assert int(passed.group(1)) >= 11, done.stdout


def test_supabase_js_signup_without_autoconfirm(tmp_path: Path) -> None:
    ensure_node_modules()
    data_dir = tmp_path / "data"
    served = start(data_dir, env={"MADBASE_AUTH_AUTOCONFIRM": "false"})
    try:
        done = run_node_tests(
            served,
            "confirm/signup.mjs",
            extra_env={"MADBASE_OUTBOX": str(data_dir / "outbox")},
        )
    finally:
        served.stop()
    passed = re.search(r"^# pass (\d+)$", done.stdout, re.MULTILINE)
    assert passed is not None, done.stdout
    assert int(passed.group(1)) == 2, done.stdout
