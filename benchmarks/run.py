"""Run every benchmark once and write ``benchmarks/RESULTS.md`` and
``benchmarks/results.png``: ``python -m benchmarks.run`` (``scripts/bench``).

Bounded: about two minutes on two cores (``scripts/bench`` stops it at 290 s);
``--quick`` is a shorter pass for trying things out.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvloop

from asgi_oidc.testing import DevClient, serve_dev_provider

from . import inprocess, report, server
from .inprocess import Stack
from .support import CLIENT_ID, CLIENT_SECRET, USER, RedisServer, peer_cookie

__all__ = ["main"]

HERE = Path(__file__).resolve().parent


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _wrk_version() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        return "missing"
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0].removeprefix("wrk ") if first else "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def versions() -> dict[str, str]:
    """The versions every figure depends on."""
    return {
        "python": platform.python_version(),
        "asgi_oidc": _version("asgi-oidc"),
        "uvicorn": _version("uvicorn"),
        "uvloop": _version("uvloop"),
        "httptools": _version("httptools"),
        "starlette": _version("starlette"),
        "itsdangerous": _version("itsdangerous"),
        "redis-server": RedisServer.version(),
        "redis (redis-py)": _version("redis"),
        "httpx": _version("httpx"),
        "PyJWT": _version("pyjwt"),
        "Authlib": _version("authlib"),
        "wrk": _wrk_version(),
    }


def _load() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


@contextmanager
def _phase(results: report.Results, name: str) -> Iterator[None]:
    start = time.monotonic()
    print(f"bench: {name} …", flush=True)
    try:
        yield
    finally:
        results.phases[name] = time.monotonic() - start


async def _inprocess(results: report.Results, redis_url: str | None, quick: bool) -> None:
    provider = inprocess.in_process_provider()
    seconds = 0.1 if quick else 0.3
    stacks: list[Stack] = []
    try:
        with _phase(results, "in-process (a)"):
            stacks = await inprocess.inprocess_stacks(provider, redis_url)
            for stack in stacks:
                results.labels[stack.key] = stack.label
            rounds = 5 if quick else 9
            results.inprocess_rounds = rounds
            results.inprocess = await inprocess.compare(
                {s.key: (s.app, s.headers) for s in stacks}, seconds=seconds * 2, rounds=rounds
            )
            for key, timing in results.inprocess.items():
                if timing.status != 200:
                    raise RuntimeError(f"{key} answered {timing.status}, not 200")
        by_key = {s.key: s for s in stacks}
        with _phase(results, "micro-benchmarks"):
            results.micro = await inprocess.micro_benchmarks(by_key["oidc-memory"])
        with _phase(results, "(c) callback, (d) ID token"):
            logins = 15 if quick else 30
            for key, name in (("oidc-memory", "MemoryStore"), ("oidc-redis", "RedisStore")):
                if key in by_key:
                    results.callback[name] = await inprocess.callback_cost(
                        by_key[key], provider, logins=logins
                    )
            results.id_token = await inprocess.id_token_validation(by_key["oidc-memory"], provider)
        with _phase(results, "(e) rules"):
            counts = (1, 100, 10_000)
            results.rules_bare, results.rules = await inprocess.rules_scaling(
                provider, counts, seconds=seconds
            )
        if redis_url is not None:
            with _phase(results, "(e) sessions"):
                held = inprocess.session_count(redis_url)
                for target in (1_000, 100_000 if quick else 1_000_000):
                    results.session_fill_seconds[target] = inprocess.fill_sessions(
                        redis_url, max(0, target - held)
                    )
                    held = inprocess.session_count(redis_url)
                    apps = {
                        key: (by_key[key].app, by_key[key].headers)
                        for key in ("bare", "oidc-redis", "oidc-redis-nocache")
                    }
                    results.sessions[held] = await inprocess.compare(
                        apps, seconds=seconds, rounds=5 if quick else 7
                    )
    finally:
        for stack in stacks:
            await stack.aclose()


def _wait_for_quiet(ours: tuple[int, ...], *, limit: float = 30.0) -> str:
    """Wait (at most ``limit`` seconds) until other processes use less than a
    fifth of a core over one second; say how it went."""
    start = time.monotonic()
    used = server.other_load(1.0, ours)
    while used > 0.2 and time.monotonic() - start < limit:
        used = server.other_load(1.0, ours)
    waited = time.monotonic() - start
    state = "quiet" if used <= 0.2 else "still busy"
    return f"{state} after {waited:.0f} s (other processes: {used:.2f} cores)"


def _served(
    results: report.Results,
    redis_url: str | None,
    redis_pid: tuple[int, ...],
    quick: bool,
    pin: bool,
) -> None:
    """(b): every stack on its own uvicorn process, all started first; then
    rounds of one wrk run per stack, interleaved."""
    seconds = 2 if quick else 5
    rounds = 1 if quick else 3
    results.wrk_seconds = seconds
    client = DevClient(CLIENT_ID, CLIENT_SECRET, redirect_uris=("http://127.0.0.1/unused",))
    with (
        _phase(results, "(b) uvicorn + wrk"),
        tempfile.TemporaryDirectory(prefix="asgi-oidc-bench-") as logs,
        serve_dev_provider(
            clients=[client], users=[USER], access_token_ttl=3600, id_token_ttl=3600
        ) as provider,
    ):
        cookie = asyncio.run(peer_cookie(provider))
        served: list[server.Served] = []
        try:
            for stack in server.served_stacks(provider, redis_url):
                results.labels.setdefault(stack.key, stack.label)
                results.server_rounds[stack.key] = []
                served.append(
                    server.Served(
                        stack,
                        provider,
                        cookie=cookie if stack.key == "peer" else None,
                        log_dir=Path(logs),
                        app_core=0 if pin else None,
                        load_core=1 if pin else None,
                    )
                )
            for app in served:
                app.measure(1)  # warm-up
            results.quiet_wait = _wait_for_quiet(redis_pid)
            for _round in range(rounds):
                for app in served:
                    load = _load()
                    result = app.measure(seconds, also_ours=redis_pid)
                    result.load = load
                    results.server_rounds[app.stack.key].append(result)
                    print(
                        f"bench:   {app.stack.key:20} {result.requests_per_s:10,.0f} req/s  "
                        f"p50 {result.p50_ms:.3f} ms  p99 {result.p99_ms:.3f} ms  "
                        f"server CPU {result.server_cpu_us:.1f} µs/request  "
                        f"others {result.other_cores:.2f} cores",
                        flush=True,
                    )
        finally:
            for app in served:
                app.stop()
        for key, runs in results.server_rounds.items():
            results.server[key] = max(runs, key=lambda r: r.requests_per_s)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the tables; write RESULTS.md and the plot."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a shorter pass, for trying out")
    parser.add_argument("--no-server", action="store_true", help="skip (b), uvicorn and wrk")
    parser.add_argument("--server-only", action="store_true", help="only (b), uvicorn and wrk")
    parser.add_argument("--no-redis", action="store_true", help="skip everything needing Redis")
    parser.add_argument(
        "--output", type=Path, default=HERE, help="where RESULTS.md and results.png go"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    # ``timeout`` (scripts/bench) sends SIGTERM: unwind, so that every server
    # this run started is stopped by the finally blocks on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("asgi_oidc").setLevel(logging.ERROR)
    started = time.monotonic()
    cores = os.cpu_count() or 1
    pin = cores >= 2 and shutil.which("taskset") is not None
    if pin:
        os.sched_setaffinity(0, {0})
    results = report.Results(
        machine={
            "cores": str(cores),
            "cpu": _cpu_model(),
            "platform": platform.platform(),
            "pinning": "app and in-process runs on core 0; wrk and redis-server on core 1"
            if pin
            else "none (fewer than 2 cores or no taskset)",
            "load average (1/5 min) at start": _load(),
        },
        versions=versions(),
        labels={},
    )
    redis_server: RedisServer | None = None
    if not args.no_redis and shutil.which("redis-server"):
        redis_server = RedisServer(core=1 if pin else None)
    elif not args.no_redis:
        results.notes.append("redis-server is missing: the RedisStore figures were not measured.")
    try:
        redis_url = redis_server.url if redis_server else None
        if not args.server_only:
            loop = uvloop.new_event_loop()
            try:
                loop.run_until_complete(_inprocess(results, redis_url, args.quick))
            finally:
                loop.close()
        if redis_server is not None and not args.server_only:
            # (b) starts from an empty Redis, not the million keys of (e).
            redis_server.close()
            redis_server = RedisServer(core=1 if pin else None)
            redis_url = redis_server.url
        if not args.no_server:
            if shutil.which("wrk") is None:
                results.notes.append("wrk is missing: (b) was not measured.")
            else:
                _served(
                    results,
                    redis_url,
                    (redis_server.pid,) if redis_server and redis_server.pid else (),
                    args.quick,
                    pin,
                )
    finally:
        if redis_server is not None:
            redis_server.close()
    results.machine["load average (1/5 min) at end"] = _load()
    results.phases["total"] = time.monotonic() - started
    if args.quick:
        results.notes.append("A --quick run: shorter measurements, fewer sessions.")

    text = report.markdown(results)
    print(text)
    if not args.no_write:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "RESULTS.md").write_text(text + "\n" if not text.endswith("\n") else text)
        report.plot(results, args.output / "results.png")
        print(f"bench: wrote {args.output / 'RESULTS.md'} and {args.output / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
