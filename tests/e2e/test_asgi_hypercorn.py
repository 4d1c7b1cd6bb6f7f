"""`madbase.asgi:app` served by hypercorn's trio worker: lifespan start, gateway, clean stop."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

STARTUP_SECONDS = 60.0
STOP_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_healthy(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"hypercorn exited with {proc.returncode} before /health answered")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"/health did not answer 200 within {STARTUP_SECONDS} s")


def _postgres_processes(marker: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended while we looked
            continue
        if marker in text and "postgres" in text:
            found.append(f"{cmdline.parent.name}: {text}")
    return found


@pytest.mark.pg
def test_hypercorn_trio_serves_the_app(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MADBASE_DATA_DIR": str(tmp_path), "MADBASE_PG_FSYNC": "false"}
    command = [
        sys.executable,
        "-m",
        "hypercorn",
        "--worker-class",
        "trio",
        "--bind",
        f"127.0.0.1:{port}",
        "madbase.asgi:app",
    ]
    log_path = tmp_path / "hypercorn.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=log)
    try:
        try:
            _wait_healthy(proc, url)
        except BaseException:
            sys.stderr.write(log_path.read_text(errors="replace"))
            raise
        keys = subprocess.run(
            [sys.executable, "-m", "madbase", "keys", "--json", "--data-dir", str(tmp_path)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            check=True,
            timeout=30,
        )
        anon_key = json.loads(keys.stdout)["anon_key"]

        with httpx.Client(base_url=url, timeout=10.0) as client:
            health = client.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "ok"

            missing = client.get("/rest/v1/anything")
            assert missing.status_code == 401
            assert missing.json()["code"] == "PGRST302"

            unknown = client.get("/rest/v1/anything", headers={"apikey": anon_key})
            assert unknown.status_code == 404
            assert unknown.json()["code"] == "PGRST205"
            assert unknown.headers.get("x-request-id")

        proc.terminate()
        proc.wait(timeout=STOP_SECONDS)
        deadline = time.monotonic() + STOP_SECONDS
        while _postgres_processes(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _postgres_processes(str(tmp_path)) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
