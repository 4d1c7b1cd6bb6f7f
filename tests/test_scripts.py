"""scripts/test as a new user runs it on a machine without Node.js: Python tests run, JS ones fail.

The real scripts run against stand-ins: a `.venv` whose tools only record that they ran, and a
PATH that has no `node` (or an old one). Nothing is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_js_clients import _tool

ROOT = Path(__file__).resolve().parents[1]
HINT = "apt-get install nodejs npm"


def executable(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


def checkout(tmp_path: Path, *, pytest_status: int) -> Path:
    """A copy of scripts/ with a stand-in .venv whose tools log their names."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    (repo / "tests" / "js").mkdir(parents=True)
    (repo / "tests" / "js" / "package-lock.json").write_text("{}")
    venv = repo / ".venv" / "bin"
    venv.mkdir(parents=True)
    for tool in ("python", "ruff", "mypy", "lint-imports"):
        executable(venv / tool, f'echo "{tool} $*" >> "{repo}/ran"')
    executable(venv / "pytest", f'echo "pytest $*" >> "{repo}/ran"; exit {pytest_status}')
    return repo


def bare_path(tmp_path: Path, **tools: str) -> str:
    """A PATH with `bash`, `dirname` and the given stand-ins only (no node, unless given)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bash", "dirname"):
        found = shutil.which(name)
        assert found is not None
        (bin_dir / name).symlink_to(found)
    for name, body in tools.items():
        executable(bin_dir / name, body)
    return str(bin_dir)


def run_script(repo: Path, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(repo / "scripts" / "test"), *args],
        capture_output=True,
        text=True,
        env={"PATH": path},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("pytest_status", [0, 1])
def test_scripts_test_without_node_says_so_and_runs_the_python_tests(
    tmp_path: Path, pytest_status: int
) -> None:
    repo = checkout(tmp_path, pytest_status=pytest_status)
    done = run_script(repo, bare_path(tmp_path), "-k", "config")
    assert done.returncode == pytest_status, done.stderr
    ran = (repo / "ran").read_text().splitlines()
    assert ran[-1] == "pytest -k config"
    assert [line.split()[0] for line in ran[-4:]] == ["ruff", "mypy", "lint-imports", "pytest"]
    assert "command not found" not in done.stderr
    # Once before the long run, once after it, where the user is looking.
    assert done.stderr.count("scripts/test: missing node and npm") == 2
    assert HINT in done.stderr


def test_scripts_test_names_a_node_that_is_too_old(tmp_path: Path) -> None:
    repo = checkout(tmp_path, pytest_status=0)
    old_node = 'if [ "$1" = --version ]; then echo v18.19.0; exit 0; fi; exit 1'
    done = run_script(repo, bare_path(tmp_path, node=old_node, npm="exit 0"))
    assert done.returncode == 0, done.stderr
    assert "missing Node.js 20 or newer (found v18.19.0)" in done.stderr


def test_scripts_test_with_node_installs_the_js_client(tmp_path: Path) -> None:
    repo = checkout(tmp_path, pytest_status=0)
    path = bare_path(tmp_path, node="exit 0", npm=f'echo "npm $*" >> "{repo}/ran"')
    done = run_script(repo, path)
    assert done.returncode == 0, done.stderr
    assert "npm ci --silent --no-audit --no-fund" in (repo / "ran").read_text().splitlines()
    assert "missing" not in done.stderr


def test_js_tests_fail_with_the_same_hint_when_node_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception) as failed:
        _tool("node")
    assert "`node` is not on PATH" in str(failed.value)
    assert HINT in str(failed.value)
