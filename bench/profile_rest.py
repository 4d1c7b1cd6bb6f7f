"""Where the CPU of one `/rest/v1` request goes, in-process (no HTTP, no load generator).

    .venv/bin/python bench/profile_rest.py [--requests 3000] [--workload get_one] [--profile]

Opens a project as `madbase serve` does (embedded Postgres in a temporary directory, fsync off),
creates bench/run.py's `items` table, then sends the workload's request to `App.handle` one at a
time and prints the Python CPU time and wall time per request (Postgres runs in its own
processes: its CPU is not in the first figure). `--profile` adds a cProfile listing of the
measured loop, sorted by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Measure this checkout, not a copy `pip install .` put in site-packages earlier.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from run import BENCH_SCHEMA

from madbase.config import Config
from madbase.protocol.http import Request
from madbase.runtime.serve import open_project

WORKLOADS = {
    "get_one": ("GET", "/rest/v1/items?select=*&id=eq.42", b""),
    "list_20": ("GET", "/rest/v1/items?select=*&order=id&limit=20", b""),
    "insert": ("POST", "/rest/v1/items", b'{"name":"x","price":1.5}'),
    "health": ("GET", "/health", b""),
    # The gateway and the REST service's parsing without a database round trip.
    "options": ("OPTIONS", "/rest/v1/items", b""),
}


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="madbase-profile-") as tmp:
        config = Config(data_dir=Path(tmp) / "data", pg_fsync=False)
        async with open_project(config) as project:
            with psycopg.connect(project.db_url, autocommit=True) as conn:
                conn.execute(BENCH_SCHEMA)
            app = project.app
            method, target, body = WORKLOADS[args.workload]
            anon = project.secrets.anon_key
            headers = (
                ("apikey", anon),
                ("authorization", f"Bearer {anon}"),
                ("content-type", "application/json"),
                ("prefer", "return=minimal"),
            )
            request = Request(
                method=method, target=target, headers=headers, body=body, client="127.0.0.1"
            )
            deadline = time.monotonic() + 30
            while (await app.handle(request)).status >= 300:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{target} never succeeded")
                await trio.sleep(0.1)
            for _ in range(200):  # warm up
                await app.handle(request)
            profiler = cProfile.Profile() if args.profile else None
            cpu0, wall0 = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            for _ in range(args.requests):
                response = await app.handle(request)
                assert response.status < 300, response.body
            if profiler:
                profiler.disable()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            n = args.requests
            print(
                f"{args.workload}: {n} requests, {cpu / n * 1e6:.0f} us CPU and "
                f"{wall / n * 1e6:.0f} us wall per request (sequential, in-process)"
            )
            if profiler:
                pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="get_one")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    trio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
