"""(b): each stack served by uvicorn (uvloop, httptools, one worker, pinned to
core 0) in its own process, loaded by wrk pinned to core 1.

The development provider keeps running in this process (a uvicorn thread on
loopback) while the app's process logs in against it once.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from asgi_oidc.testing import DevProvider, free_port

from .apps import BENCH_PATH, ENV_APP, ENV_PEER_SECRET
from .inprocess import request_headers
from .support import (
    CLIENT_ID,
    CLIENT_SECRET,
    COOKIE_SECRET,
    PEER_SECRET,
    login_over_http,
    rules_document,
    taskset,
)

__all__ = [
    "SERVER_STACK",
    "Served",
    "ServedStack",
    "WrkResult",
    "machine_busy_seconds",
    "other_load",
    "parse_wrk",
    "run_wrk",
    "served_stacks",
]

#: Where uvicorn runs, so that ``benchmarks`` (and the ``asgi_oidc`` next to it) import.
ROOT = Path(__file__).absolute().parent.parent

#: Said next to every figure measured this way.
SERVER_STACK = "uvicorn --loop uvloop --http httptools, 1 worker"


@dataclass
class WrkResult:
    """What wrk reported."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    raw: str
    #: The server process's CPU time per request during the run.
    server_cpu_us: float = 0.0
    #: The load average (1 and 5 minutes) just before the run.
    load: str = ""
    #: Cores' worth of CPU that other processes on the machine used during the run.
    other_cores: float = 0.0


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"unreadable wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Read ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and total):
        raise RuntimeError(f"unreadable wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=_duration_ms(p50.group(1)),
        p99_ms=_duration_ms(p99.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        raw=output,
    )


def run_wrk(
    url: str,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    seconds: int,
    connections: int = 32,
    core: int | None = 1,
) -> WrkResult:
    """``wrk -t1 -c32 -dNs --latency`` with the headers."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is missing: apt-get install -y wrk")
    command = [*taskset(core), wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers:
        command += ["-H", f"{name.decode('latin-1')}: {value.decode('latin-1')}"]
    command.append(url)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}")
    return parse_wrk(done.stdout)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"uvicorn did not start on {port}:\n{log.read_text(errors='replace')}")


@dataclass
class ServedStack:
    """A stack to serve: its key, label and environment."""

    key: str
    label: str
    env: dict[str, str]
    login: bool


def served_stacks(provider: DevProvider, redis_url: str | None) -> list[ServedStack]:
    """The stacks (b) compares, as environments for :func:`benchmarks.apps.create_app`."""
    oidc = {
        ENV_APP: "oidc",
        "OIDC_ISSUER": provider.issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_COOKIE_SECRET": COOKIE_SECRET,
        "OIDC_COOKIE_SECURE": "false",
        "OIDC_CLAIMS": "department roles",
        "OIDC_RULES": json.dumps(rules_document(1)),
    }
    stacks = [
        ServedStack("bare", "bare ASGI app", {ENV_APP: "bare"}, login=False),
        ServedStack(
            "peer",
            "peer: SessionMiddleware + session-user check",
            {ENV_APP: "peer", ENV_PEER_SECRET: PEER_SECRET},
            login=False,
        ),
        ServedStack("oidc-memory", "OIDCMiddleware, MemoryStore", dict(oidc), login=True),
    ]
    if redis_url is not None:
        stacks.append(
            ServedStack(
                "oidc-redis",
                "OIDCMiddleware, RedisStore, cache on",
                {**oidc, "OIDC_REDIS_URL": redis_url},
                login=True,
            )
        )
        stacks.append(
            ServedStack(
                "oidc-redis-nocache",
                "OIDCMiddleware, RedisStore, cache off",
                {**oidc, "OIDC_REDIS_URL": redis_url, "OIDC_SESSION_CACHE_TTL": "0"},
                login=True,
            )
        )
    return stacks


def machine_busy_seconds() -> float:
    """CPU seconds every core has spent busy since boot (``/proc/stat``)."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def other_load(seconds: float = 1.0, ours: Sequence[int] = ()) -> float:
    """Cores' worth of CPU that processes other than ``ours`` used over ``seconds``."""
    before = machine_busy_seconds() - sum(_cpu_seconds(pid) for pid in ours)
    time.sleep(seconds)
    after = machine_busy_seconds() - sum(_cpu_seconds(pid) for pid in ours)
    return (after - before) / seconds


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Served:
    """One stack served by its own uvicorn process (pinned to ``app_core``),
    logged in once when it is an OIDC stack, measured by wrk as often as asked."""

    def __init__(
        self,
        stack: ServedStack,
        provider: DevProvider,
        *,
        cookie: str | None,
        log_dir: Path,
        app_core: int | None = 0,
        load_core: int | None = 1,
    ) -> None:
        self.stack = stack
        self.load_core = load_core
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        env.update(stack.env)
        if stack.login:
            redirect_uri = f"{self.base}/oauth2/callback"
            provider.add_redirect_uri(CLIENT_ID, redirect_uri)
            env["OIDC_REDIRECT_URI"] = redirect_uri
        self.log = log_dir / f"uvicorn-{stack.key}.log"
        command = [
            *taskset(app_core),
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.apps:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        try:
            _wait_for_port(port, self.process, self.log)
            if stack.login:
                cookie = login_over_http(self.base)
            self.headers = request_headers(cookie)
            check = httpx.get(
                self.base + BENCH_PATH,
                headers={k.decode(): v.decode() for k, v in self.headers},
                trust_env=False,
            )
            if check.status_code != 200:
                raise RuntimeError(f"{stack.key}: {BENCH_PATH} answered {check.status_code}")
        except BaseException:
            self.stop()
            raise

    def measure(self, seconds: int, *, also_ours: Sequence[int] = ()) -> WrkResult:
        """One wrk run; also the server's CPU time per request over it, and how
        much CPU everything else on the machine took meanwhile (``also_ours``:
        pids to count as part of the benchmark, like redis-server)."""
        pids = (self.process.pid, *also_ours)
        before = _cpu_seconds(self.process.pid)
        ours_before = sum(_cpu_seconds(pid) for pid in pids)
        busy_before = machine_busy_seconds()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        result = run_wrk(self.base + BENCH_PATH, self.headers, seconds=seconds, core=self.load_core)
        elapsed = time.monotonic() - start
        used = _cpu_seconds(self.process.pid) - before
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        wrk_and_self = (
            children.ru_utime - children_before.ru_utime + children.ru_stime
            - children_before.ru_stime + own.ru_utime - self_before.ru_utime
            + own.ru_stime - self_before.ru_stime
        )  # fmt: skip
        ours = sum(_cpu_seconds(pid) for pid in pids) - ours_before + wrk_and_self
        result.other_cores = max(0.0, (machine_busy_seconds() - busy_before - ours) / elapsed)
        if result.non_2xx or result.socket_errors:
            raise RuntimeError(
                f"{self.stack.key}: {result.non_2xx} non-2xx answers, "
                f"{result.socket_errors} socket errors:\n{result.raw}"
            )
        result.server_cpu_us = used * 1e6 / result.requests if result.requests else 0.0
        return result

    def stop(self) -> None:
        """Stop uvicorn."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
