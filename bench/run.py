"""Benchmark `madbase serve`: start it in a fresh data directory, load two workloads, report.

    .venv/bin/python bench/run.py [--duration 10] [--connections 32] [--tool auto|wrk|loadgen]

Workloads (see bench/README.md): `GET /health` (a `select 1` round trip through the pool) and
`GET /rest/v1/bench` with the anon key (gateway only: JWT check, routing, a 404 JSON body while the
REST service does not exist). The load comes from `wrk` when installed (or `--tool wrk`), else
from bench/loadgen.py. Prints a table and writes bench/results/<UTC timestamp>.json.

The server runs with `MADBASE_PG_FSYNC=false` (throwaway cluster) and `MADBASE_LOG_LEVEL=warning`
(no per-request access log line), and is stopped with SIGTERM however the run ends.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

BENCH_DIR: Final = Path(__file__).resolve().parent
RESULTS_DIR: Final = BENCH_DIR / "results"
SERVER_ENV: Final = {"MADBASE_PG_FSYNC": "false", "MADBASE_LOG_LEVEL": "warning"}
START_TIMEOUT: Final = 120.0
STOP_TIMEOUT: Final = 30.0
WARMUP_SECONDS: Final = 2.0
MADBASE: Final = (sys.executable, "-m", "madbase")
BENCH_SCHEMA: Final = """
create table public.items (
  id int primary key, name text not null, price numeric(10, 2) not null,
  tags text[] not null default '{}', created_at timestamptz not null default now()
);
insert into public.items (id, name, price, tags)
  select i, 'item ' || i, (i % 100) + 0.99, array['tag' || (i % 7)] from generate_series(1, 1000) i;
alter table public.items enable row level security;
create policy items_readable on public.items for select to anon, authenticated using (true);
"""
# No proxy for loopback, whatever http_proxy says.
_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Server:
    """`madbase serve` on a free port in a fresh temporary data directory."""

    def __init__(self) -> None:
        self.command = MADBASE
        self.tmp = Path(tempfile.mkdtemp(prefix="madbase-bench-"))
        self.data_dir = self.tmp / "data"
        self.log_path = self.tmp / "server.log"
        # Our settings only: no MADBASE_* from the caller's shell, no .env (cwd is the temp dir).
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MADBASE_")}
        self.env.update(SERVER_ENV)
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        stdout_path = self.tmp / "stdout.txt"
        with stdout_path.open("wb") as out, self.log_path.open("wb") as err:
            self.process = subprocess.Popen(
                [
                    *self.command,
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                ],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=self.tmp,
                env=self.env,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if match := re.search(r"MadBase is ready at (http://\S+)", stdout_path.read_text()):
                self.url = match.group(1)
                break
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"madbase serve exited with {self.process.returncode}: {self.log_tail()}"
                )
            time.sleep(0.1)
        else:
            raise RuntimeError(f"madbase serve did not print its banner: {self.log_tail()}")
        while http_status(self.url + "/health") != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"/health never answered 200: {self.log_tail()}")
            time.sleep(0.1)

    def keys(self) -> dict[str, str]:
        out = subprocess.run(
            [*MADBASE, "keys", "--json", "--data-dir", str(self.data_dir)],
            cwd=self.tmp,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        keys: dict[str, str] = json.loads(out.stdout)
        return keys

    def anon_key(self) -> str:
        return self.keys()["anon_key"]

    def create_bench_table(self, apikey: str) -> None:
        """A table of 1,000 rows readable by anon through an RLS policy, as the REST workloads use.

        The schema cache reloads after the DDL (event trigger); wait until /rest/v1 sees it.
        """
        import psycopg

        with psycopg.connect(self.keys()["db_url"], autocommit=True) as conn:
            conn.execute(BENCH_SCHEMA)
        deadline = time.monotonic() + 30
        while http_status(self.url + "/rest/v1/items?id=eq.1", {"apikey": apikey}) != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"/rest/v1/items never answered 200: {self.log_tail()}")
            time.sleep(0.1)

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"madbase serve exited during the run with status {self.process.returncode} "
                "(see its stderr below)"
            )

    def stop(self) -> int | None:
        """SIGTERM, wait, SIGKILL as a last resort; return the exit status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print("madbase serve ignored SIGTERM; killing it", file=sys.stderr)
                process.kill()
                process.wait()
        return process.returncode

    def postgres_left_running(self) -> bool:
        """Postgres removes postmaster.pid on a clean shutdown."""
        return (self.data_dir / "pg" / "postmaster.pid").exists()

    def log_tail(self, limit: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-limit:].strip()

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def http_status(url: str, headers: dict[str, str] | None = None) -> int | None:
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with _OPENER.open(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


def run_wrk(url: str, headers: list[str], connections: int, duration: float) -> dict[str, object]:
    """One wrk run (`-t2 -cN --latency`), its text report parsed."""
    args = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    for header in headers:
        args += ["-H", header]
    out = subprocess.run(
        [*args, url], capture_output=True, text=True, check=True, timeout=duration + 60
    ).stdout
    return parse_wrk(out)


_WRK_UNITS: Final = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return round(float(number) * _WRK_UNITS[unit], 3)


def parse_wrk(out: str) -> dict[str, object]:
    """The numbers we report out of wrk's `--latency` text output."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, out, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk output has no {pattern!r}:\n{out}")
        return match

    requests = int(find(r"^\s*(\d+) requests in")[1])
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": requests,
        "errors": sum(int(n) for n in socket.groups()) if socket else 0,
        "non_2xx_3xx": int(non_2xx[1]) if non_2xx else 0,
        "rps": float(find(r"^Requests/sec:\s+([\d.]+)")[1]),
        "p50_ms": _ms(find(r"^\s+50%\s+(\S+)")[1]),
        "p99_ms": _ms(find(r"^\s+99%\s+(\S+)")[1]),
        "max_ms": _ms(find(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)")[1]),
        "raw": out,
    }


def run_loadgen(
    url: str, headers: list[str], connections: int, duration: float
) -> dict[str, object]:
    args = [
        sys.executable,
        str(BENCH_DIR / "loadgen.py"),
        "--url",
        url,
        "--connections",
        str(connections),
        "--duration",
        f"{duration:g}",
        "--warmup",
        "0",
    ]
    for header in headers:
        args += ["--header", header]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=duration + 60)
    report: dict[str, object] = json.loads(out.stdout)
    return report


def cpu_sample(server_pid: int) -> tuple[float, int, int, int, int]:
    """(time, machine busy ticks, server ticks, postgres ticks, postgres processes) from /proc."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(f) for f in fields[:8]]
    busy = sum(ticks) - ticks[3] - ticks[4]  # minus idle and iowait
    parents: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            rest = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process exited meanwhile
        pid = int(stat.parent.name)
        parents[pid] = int(rest[1])
        cpu[pid] = int(rest[11]) + int(rest[12])  # utime + stime
    descendants: set[int] = set()
    frontier = {server_pid}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - descendants
        descendants |= frontier
    postgres = sum(cpu[pid] for pid in descendants)
    return time.monotonic(), busy, cpu.get(server_pid, 0), postgres, len(descendants)


def cpu_usage(
    before: tuple[float, int, int, int, int], after: tuple[float, int, int, int, int]
) -> dict[str, float]:
    """CPU use between two samples, in percent of one core (the machine has os.cpu_count())."""
    hz = os.sysconf("SC_CLK_TCK")
    seconds = after[0] - before[0]

    def pct(i: int) -> float:
        return round(100 * (after[i] - before[i]) / hz / seconds, 1)

    return {"machine": pct(1), "server": pct(2), "postgres": pct(3), "postgres_processes": after[4]}


def unexpected(report: dict[str, object], expected: int) -> int:
    """Responses without the expected status, plus transport errors."""
    errors = int(report["errors"])  # type: ignore[call-overload]
    requests = int(report["requests"])  # type: ignore[call-overload]
    if "status" in report:  # loadgen: exact counts per status
        statuses: dict[str, int] = report["status"]  # type: ignore[assignment]
        return requests - statuses.get(str(expected), 0) + errors
    # wrk only counts responses outside 2xx/3xx.
    non_ok = int(report["non_2xx_3xx"])  # type: ignore[call-overload]
    return (non_ok if expected < 400 else requests - non_ok) + errors


def machine() -> dict[str, object]:
    wrk = shutil.which("wrk")
    wrk_version = None
    if wrk:
        # `wrk -v` prints its version and exits with status 1.
        first = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False).stdout
        wrk_version = first.splitlines()[0] if first else None
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "wrk": wrk_version,
    }


class HelloServer:
    """`bench/hello.py`: our HTTP stack with a constant answer, the run's baseline."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "hello.py"), "--port", "0"],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not (match := re.search(r"hello ready at (http://\S+)", line)):
            raise RuntimeError(f"bench/hello.py did not start: {line!r}")
        self.url = match.group(1)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds per workload"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tool", choices=("auto", "wrk", "loadgen"), default="auto")
    args = parser.parse_args(argv)
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "loadgen"
    elif tool == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), use --tool loadgen")
    if not (0.1 <= args.duration <= 600 and 1 <= args.connections <= 1024):
        parser.error("--duration must be 0.1 to 600 seconds and --connections 1 to 1024")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    # Load generator, server and Postgres share the machine: anything else running skews it all.
    idle_before = cpu_sample(os.getpid())
    time.sleep(1)
    busy_before = cpu_usage(idle_before, cpu_sample(os.getpid()))["machine"]
    if busy_before > 10:
        print(f"warning: the machine is already {busy_before}% busy (of one core)", file=sys.stderr)
    server = Server()
    hello = HelloServer()
    results: list[dict[str, object]] = []
    try:
        hello.start()
        print(f"starting madbase serve in {server.data_dir} with {SERVER_ENV}", file=sys.stderr)
        server.start()
        anon = server.anon_key()
        apikey = f"apikey: {anon}"
        bearer = f"Authorization: Bearer {anon}"
        server.create_bench_table(anon)
        workloads = [
            ("hello", hello, "/", [], 200),
            ("health", server, "/health", [], 200),
            ("rest_404", server, "/rest/v1/bench", [apikey], 404),
            ("get_one", server, "/rest/v1/items?select=*&id=eq.42", [apikey, bearer], 200),
            ("list_20", server, "/rest/v1/items?select=*&order=id&limit=20", [apikey, bearer], 200),
        ]
        for name, target, path, headers, expected in workloads:
            print(f"{name}: {tool} -c{args.connections} {args.duration:g}s {path}", file=sys.stderr)
            url = target.url + path
            run = run_wrk if tool == "wrk" else run_loadgen
            run(url, headers, args.connections, WARMUP_SECONDS)  # discarded: warm caches and pool
            before = cpu_sample(target.pid)
            report = run(url, headers, args.connections, args.duration)
            report["cpu"] = cpu_usage(before, cpu_sample(target.pid))
            server.check_alive()
            report["unexpected"] = unexpected(report, expected)
            results.append(
                {
                    "workload": name,
                    "path": path,
                    "tool": tool,
                    "expected_status": expected,
                    **report,
                }
            )
    finally:
        hello.stop()
        status = server.stop()
        leftover = server.postgres_left_running()
        if log_tail := server.log_tail():
            print(f"server stderr (warning and above):\n{log_tail}", file=sys.stderr)
        if leftover:
            print("warning: postgres left its postmaster.pid behind", file=sys.stderr)
        server.cleanup()

    print(
        f"\n{'workload':<10} {'tool':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'requests':>9} {'unexpected':>10}  cpu% server/postgres/machine"
    )
    for r in results:
        cpu: dict[str, float] = r["cpu"]  # type: ignore[assignment]
        print(
            f"{r['workload']:<10} {r['tool']:<8} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} {r['requests']:>9} {r['unexpected']:>10}"
            f"  {cpu['server']:.0f}/{cpu['postgres']:.0f}/{cpu['machine']:.0f}"
        )
    print(
        f"server: MADBASE_PG_FSYNC=false MADBASE_LOG_LEVEL=warning; exit status {status}; "
        f"machine {busy_before}% busy before the run; cpu% is of one core, {os.cpu_count()} cores"
    )

    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{stamp}.json"
    document = {
        "started": stamp,
        "tool": tool,
        "connections": args.connections,
        "duration_s": args.duration,
        "warmup_s": WARMUP_SECONDS,
        "server_env": SERVER_ENV,
        "server_exit_status": status,
        "machine_busy_pct_before": busy_before,
        "machine": machine(),
        "results": results,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path.relative_to(BENCH_DIR.parent)}")
    bad = leftover or status != 0 or any(r["unexpected"] for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
