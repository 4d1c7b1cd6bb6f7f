"""Benchmark `/auth/v1` grants: password sign-ins and refresh-token rotations per second.

    .venv/bin/python bench/auth.py [--duration 10] [--connections 32]

Starts `madbase serve` as bench/run.py does (fresh data directory, fsync off, no access log) with
the auth rate limits switched off, signs up users, then drives two workloads with wrk and a Lua
script (wrk is required here: the requests are POSTs whose body changes):

- `signin`: `POST /token?grant_type=password` for one confirmed user, over and over. Each request
  checks an argon2id hash in a worker thread; the parameters in use are printed with the results.
- `refresh`: `POST /token?grant_type=refresh_token`, each connection carrying on its own chain:
  every response's new refresh token is the next request's (rotation on every use, as clients do).

Prints a table and writes bench/results/auth-<UTC timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Measure this checkout, not a copy `pip install .` put in site-packages earlier.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from run import (
    _OPENER,
    RESULTS_DIR,
    Server,
    cpu_sample,
    cpu_usage,
    machine,
    parse_wrk,
)

from madbase.config import rate_limits_off

NO_RATE_LIMITS: Final = rate_limits_off()
PASSWORD: Final = "bench-password-1"
WARMUP_SECONDS: Final = 2.0

# One static POST.
SIGNIN_LUA: Final = """
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["apikey"] = os.getenv("BENCH_APIKEY")
"""

# Each thread owns a slice of the seed tokens; a response's refresh token goes back on the
# thread's stack and the next request takes one, so every token is used once. wrk calls
# request() once more than it sends (the first thread, at start), hence one spare per thread.
REFRESH_LUA: Final = """
local threads = 0
function setup(thread)
  thread:set("slot", threads)
  threads = threads + 1
end

function init(args)
  stack = {}
  local count = tonumber(os.getenv("BENCH_THREADS"))
  local i = 0
  for token in string.gmatch(os.getenv("BENCH_TOKENS"), "[^,]+") do
    if i % count == slot then table.insert(stack, token) end
    i = i + 1
  end
  headers = {["Content-Type"] = "application/json", ["apikey"] = os.getenv("BENCH_APIKEY")}
end

function request()
  local token = table.remove(stack) or "exhausted"
  return wrk.format("POST", "/auth/v1/token?grant_type=refresh_token", headers,
                    '{"refresh_token":"' .. token .. '"}')
end

function response(status, hdrs, body)
  local token = string.match(body, '"refresh_token":"([^"]+)"')
  if token then table.insert(stack, token) end
end
"""


def post(url: str, body: dict[str, object], apikey: str) -> dict[str, object]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"apikey": apikey, "content-type": "application/json"},
        method="POST",
    )
    with _OPENER.open(request, timeout=30) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def wrk(
    url: str, script: Path, connections: int, duration: float, env: dict[str, str]
) -> dict[str, object]:
    threads = min(2, connections)
    # A sign-in waits for argon2 behind the others: allow for queueing beyond wrk's 2 s default.
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    args += ["--timeout", "30s"]
    out = subprocess.run(
        [*args, "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
        env={**os.environ, **env, "BENCH_THREADS": str(threads)},
    ).stdout
    return parse_wrk(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        parser.error("bench/auth.py needs wrk (apt-get install wrk)")
    if not (0.1 <= args.duration <= 600 and 1 <= args.connections <= 1024):
        parser.error("--duration must be 0.1 to 600 seconds and --connections 1 to 1024")
    from madbase.runtime import auth  # the parameters the server hashes with

    argon2_params = {
        "type": "argon2id",
        "memory_kib": auth.ARGON2_MEMORY_KIB,
        "time_cost": auth.ARGON2_TIME_COST,
        "parallelism": auth.ARGON2_PARALLELISM,
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    server = Server()
    server.env.update(NO_RATE_LIMITS)
    scripts = Path(tempfile.mkdtemp(prefix="madbase-bench-lua-"))
    results: list[dict[str, object]] = []
    try:
        server.start()
        anon = server.anon_key()
        token_url = server.url + "/auth/v1/token"
        post(
            server.url + "/auth/v1/signup",
            {"email": "bench@example.com", "password": PASSWORD},
            anon,
        )
        credentials = json.dumps({"email": "bench@example.com", "password": PASSWORD})
        (scripts / "signin.lua").write_text(SIGNIN_LUA)
        (scripts / "refresh.lua").write_text(REFRESH_LUA)
        env = {"BENCH_APIKEY": anon, "BENCH_BODY": credentials}

        def seed_tokens() -> str:
            # One chain per connection (+ a spare per thread), each from its own sign-in.
            return ",".join(
                str(
                    post(token_url + "?grant_type=password", json.loads(credentials), anon)[
                        "refresh_token"
                    ]
                )
                for _ in range(args.connections + 2)
            )

        workloads = [
            ("signin", token_url + "?grant_type=password", scripts / "signin.lua"),
            ("refresh", token_url + "?grant_type=refresh_token", scripts / "refresh.lua"),
        ]
        for name, url, script in workloads:
            print(f"{name}: wrk -c{args.connections} {args.duration:g}s", file=sys.stderr)
            if name == "refresh":
                env["BENCH_TOKENS"] = seed_tokens()
            wrk(url, script, args.connections, WARMUP_SECONDS, env)
            if name == "refresh":
                env["BENCH_TOKENS"] = seed_tokens()
            before = cpu_sample(server.pid)
            report = wrk(url, script, args.connections, args.duration, env)
            report["cpu"] = cpu_usage(before, cpu_sample(server.pid))
            server.check_alive()
            results.append({"workload": name, **report})
            time.sleep(0.5)
    finally:
        status = server.stop()
        if log_tail := server.log_tail():
            print(f"server stderr (warning and above):\n{log_tail}", file=sys.stderr)
        server.cleanup()
        shutil.rmtree(scripts, ignore_errors=True)

    print(
        f"\n{'workload':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'requests':>9} {'non-2xx':>8}  cpu% server/postgres/machine"
    )
    for r in results:
        cpu: dict[str, float] = r["cpu"]  # type: ignore[assignment]
        print(
            f"{r['workload']:<8} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['max_ms']:>8.2f} {r['requests']:>9} {r['non_2xx_3xx']:>8}"
            f"  {cpu['server']:.0f}/{cpu['postgres']:.0f}/{cpu['machine']:.0f}"
        )
    print(f"argon2: {argon2_params}; hashing threads: 2; server exit status {status}")
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"auth-{stamp}.json"
    document = {
        "started": stamp,
        "connections": args.connections,
        "duration_s": args.duration,
        "argon2": argon2_params,
        "machine": machine(),
        "results": results,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path.relative_to(RESULTS_DIR.parent.parent)}")
    bad = status != 0 or any(r["non_2xx_3xx"] or r["errors"] for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
