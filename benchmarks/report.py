"""Turning one run's measurements into ``RESULTS.md``, a console table and a plot."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .inprocess import CallbackCost, Timing
from .server import SERVER_STACK, WrkResult

__all__ = ["FLAT_WITHIN", "TARGET_RATIO", "Results", "markdown", "plot", "targets"]

#: Throughput target: authenticated requests with RedisStore, against the bare app.
TARGET_RATIO = 0.9
#: "Flat": the slowest point at most this much above the fastest one.
FLAT_WITHIN = 1.10


@dataclass
class Results:
    """Everything one run measured."""

    machine: dict[str, str]
    versions: dict[str, str]
    labels: dict[str, str]
    inprocess: dict[str, Timing] = field(default_factory=dict)
    inprocess_rounds: int = 0
    server: dict[str, WrkResult] = field(default_factory=dict)
    server_rounds: dict[str, list[WrkResult]] = field(default_factory=dict)
    wrk_seconds: int = 0
    quiet_wait: str = ""
    callback: dict[str, CallbackCost] = field(default_factory=dict)
    id_token: dict[str, Timing] = field(default_factory=dict)
    rules_bare: Timing | None = None
    rules: dict[int, Timing] = field(default_factory=dict)
    sessions: dict[int, dict[str, Timing]] = field(default_factory=dict)
    session_fill_seconds: dict[int, float] = field(default_factory=dict)
    micro: list[tuple[str, Timing, str]] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base else "n/a"


def _us(value: float) -> str:
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def _spread(values: list[float]) -> float:
    return max(values) / min(values) if values and min(values) > 0 else float("inf")


@dataclass
class Target:
    """One target of issue 6, and whether this run met it."""

    name: str
    measured: str
    met: bool | None


def targets(results: Results) -> list[Target]:
    """The targets, judged on this run's figures."""
    found: list[Target] = []
    bare = results.server.get("bare")
    redis = results.server.get("oidc-redis")
    peer = results.server.get("peer")
    if bare and redis:
        ratio = redis.requests_per_s / bare.requests_per_s
        found.append(
            Target(
                f"uvicorn throughput with RedisStore >= {TARGET_RATIO} of the bare app (req/s)",
                f"{ratio:.2f} ({redis.requests_per_s:,.0f} vs {bare.requests_per_s:,.0f} req/s)",
                ratio >= TARGET_RATIO,
            )
        )
        bare_cpu = server_cpu(results, "bare")
        redis_cpu = server_cpu(results, "oidc-redis")
        if bare_cpu and redis_cpu:
            implied = bare_cpu / redis_cpu
            found.append(
                Target(
                    f"the same, from the server's CPU time per request (>= {TARGET_RATIO})",
                    f"{implied:.2f} ({redis_cpu:.1f} vs {bare_cpu:.1f} µs of CPU per request)",
                    implied >= TARGET_RATIO,
                )
            )
    else:
        found.append(Target("uvicorn throughput with RedisStore >= 0.9", "not measured", None))
    if peer and redis:
        found.append(
            Target(
                "at least as fast as the SessionMiddleware peer (uvicorn, RedisStore)",
                f"{redis.requests_per_s:,.0f} vs {peer.requests_per_s:,.0f} req/s "
                f"({redis.requests_per_s / peer.requests_per_s:.2f}x)",
                redis.requests_per_s >= peer.requests_per_s,
            )
        )
    a_redis = results.inprocess.get("oidc-redis") or results.inprocess.get("oidc-memory")
    a_peer = results.inprocess.get("peer")
    if a_redis and a_peer:
        found.append(
            Target(
                "at least as fast as the peer (in-process, CPU per request)",
                f"{a_redis.us:.2f} vs {a_peer.us:.2f} µs",
                a_redis.us <= a_peer.us,
            )
        )
    if results.rules:
        cpu = _spread([t.us for t in results.rules.values()])
        wall = _spread([t.wall_best_us for t in results.rules.values()])
        found.append(
            Target(
                f"(a) flat in the number of rules (1 to {max(results.rules):,}): "
                f"slowest <= {FLAT_WITHIN:.2f}x fastest",
                f"CPU {cpu:.2f}x, wall {wall:.2f}x",
                max(cpu, wall) <= FLAT_WITHIN,
            )
        )
    for key in ("oidc-redis", "oidc-redis-nocache"):
        points = [by_key[key] for by_key in results.sessions.values() if key in by_key]
        if len(points) > 1:
            cpu = _spread([t.us for t in points])
            wall = _spread([t.wall_best_us for t in points])
            found.append(
                Target(
                    f"(a) flat in sessions held in Redis ({results.labels.get(key, key)}, "
                    f"{min(results.sessions):,} to {max(results.sessions):,})",
                    f"CPU {cpu:.2f}x, wall {wall:.2f}x",
                    max(cpu, wall) <= FLAT_WITHIN,
                )
            )
    return found


def server_cpu(results: Results, key: str) -> float:
    """The median over the runs of the server's CPU µs per request."""
    runs = results.server_rounds.get(key, [])
    return statistics.median(r.server_cpu_us for r in runs) if runs else 0.0


def _met(value: bool | None) -> str:
    return "not measured" if value is None else ("**met**" if value else "**not met**")


def markdown(results: Results) -> str:
    """``RESULTS.md``."""
    lines: list[str] = []
    add = lines.append
    machine, versions = results.machine, results.versions
    add("# Benchmarks: the guard's per-request cost, side by side")
    add("")
    add(
        "Written by `scripts/bench` (`python -m benchmarks.run`) in one run on one machine; "
        "do not edit by hand. Every figure is also given as a ratio against the bare app "
        "measured in the same run."
    )
    add("")
    add("## Machine and versions")
    add("")
    for key, value in {**machine, **versions}.items():
        add(f"- {key}: {value}")
    add("")
    add("## Targets")
    add("")
    add("| target | measured | |")
    add("|---|---|---|")
    for target in targets(results):
        add(f"| {target.name} | {target.measured} | {_met(target.met)} |")
    add("")
    for note in results.notes:
        add(f"- {note}")
    if results.notes:
        add("")

    bare_a = results.inprocess.get("bare")
    if bare_a:
        add("## (a) One authenticated request to a guarded path, in-process")
        add("")
        add(
            "`GET /api/data` with a valid session cookie (and two other cookies), the app "
            "called directly as an ASGI callable (no server) on uvloop; a fresh scope each "
            f"call; {results.inprocess_rounds} batches per stack, interleaved. The path has a "
            "rule (`/api/*` requires the group `admins`). CPU: this process's CPU time per "
            "request, median batch (what a request costs the server; unaffected by other "
            "processes taking the core, but it leaves out waiting for Redis). Wall: elapsed "
            "time per request, median and fastest batch."
        )
        add("")
        add(
            "| stack | CPU µs/request | x bare | added (µs) | wall µs (median) "
            "| wall µs (best) | x bare (best) |"
        )
        add("|---|---:|---:|---:|---:|---:|---:|")
        for key, timing in results.inprocess.items():
            add(
                f"| {results.labels.get(key, key)} | {_us(timing.us)} "
                f"| {_ratio(timing.us, bare_a.us)} | {_us(timing.us - bare_a.us)} "
                f"| {_us(timing.wall_us)} | {_us(timing.wall_best_us)} "
                f"| {_ratio(timing.wall_best_us, bare_a.wall_best_us)} |"
            )
        add("")

    bare_b = results.server.get("bare")
    if bare_b:
        rounds = max(len(r) for r in results.server_rounds.values())
        bare_cpu = server_cpu(results, "bare")
        add(f"## (b) Under load: {SERVER_STACK}")
        add("")
        add(
            f"Each stack in its own `{SERVER_STACK}` process, pinned to core 0 with "
            f"`taskset -c 0`; `wrk -t1 -c32 -d{results.wrk_seconds}s --latency` pinned to "
            "core 1 (`taskset -c 1`), sending the same headers as (a); redis-server shares "
            f"core 1 with wrk. All servers were started (and logged in) first, warmed up "
            f"with 1 s of wrk, then measured in {rounds} interleaved rounds; the row shows "
            "the round with the most requests/s. Server CPU: the uvicorn process's CPU time "
            "(`/proc/<pid>/stat`) over the run divided by the requests served, median over "
            "the rounds. Others: CPU that other processes on the machine used during the "
            "run (busy time in `/proc/stat` minus uvicorn, wrk, redis-server and this "
            "process), in cores. Every answer was a 200. Before the rounds, waiting for the "
            f"machine to be quiet: {results.quiet_wait or 'not done'}."
        )
        add("")
        add(
            "| stack | req/s | x bare | p50 (ms) | x bare | p99 (ms) | x bare "
            "| server CPU µs/request | x bare | every round: req/s (others) |"
        )
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for key, result in results.server.items():
            runs = ", ".join(
                f"{r.requests_per_s:,.0f} ({r.other_cores:.2f})" for r in results.server_rounds[key]
            )
            cpu = server_cpu(results, key)
            add(
                f"| {results.labels.get(key, key)} | {result.requests_per_s:,.0f} "
                f"| {_ratio(result.requests_per_s, bare_b.requests_per_s)} "
                f"| {result.p50_ms:.3f} | {_ratio(result.p50_ms, bare_b.p50_ms)} "
                f"| {result.p99_ms:.3f} | {_ratio(result.p99_ms, bare_b.p99_ms)} "
                f"| {cpu:.1f} | {_ratio(cpu, bare_cpu)} | {runs} |"
            )
        add("")
        for key in ("oidc-memory", "oidc-redis"):
            in_process = results.inprocess.get(key)
            if in_process and bare_a and key in results.server_rounds:
                served_added = server_cpu(results, key) - bare_cpu
                add(
                    f"- {results.labels.get(key, key)}: the guard adds {served_added:.1f} µs of "
                    f"server CPU per request under uvicorn, against "
                    f"{in_process.us - bare_a.us:.1f} µs in-process (a): in a server, between "
                    "requests of its own, the guard's code runs with colder caches."
                )
        add("")

    base = bare_a.us if bare_a else 0.0
    if results.callback:
        add("## (c) A full login callback, without the provider's own time")
        add("")
        add(
            "The callback (`GET /oauth2/callback?code…&state…&iss…` with the state cookie) "
            "called in-process; the token endpoint is the development provider in-process "
            "behind `httpx.ASGITransport`, wrapped to add up the time spent inside it "
            "(signing the ID and access tokens, mostly), which is subtracted. Medians over "
            "the logins; the steps below were timed alone. x bare: in bare-app requests (a)."
        )
        add("")
        add("| | " + " | ".join(f"{k} (µs) | x bare" for k in results.callback) + " |")
        add("|---|" + "---:|---:|" * len(results.callback))
        rows: list[tuple[str, str]] = [
            ("whole callback, as timed", "total_us"),
            ("of which inside the provider", "provider_us"),
            ("**middleware side** (whole - provider)", "middleware_us"),
            ("step: state take (store GETDEL + JSON)", "state_take_us"),
            ("step: token request, client side (Authlib + httpx)", "token_client_us"),
            ("step: ID-token validation", "id_token_us"),
            ("step: session write (record + index set)", "session_write_us"),
        ]
        for title, attribute in rows:
            cells = []
            for cost in results.callback.values():
                amount = float(getattr(cost, attribute))
                cells.append(f"{_us(amount)} | {_ratio(amount, base)}")
            add(f"| {title} | " + " | ".join(cells) + " |")
        add("")

    if results.id_token:
        add("## (d) ID-token validation alone")
        add("")
        add(
            "RS256 (2048-bit) ID token from the development provider; keys already cached. "
            "x bare: in bare-app requests (a)."
        )
        add("")
        add("| | CPU µs | x bare request | wall µs (best) |")
        add("|---|---:|---:|---:|")
        for name, timing in results.id_token.items():
            add(
                f"| `{name}` | {_us(timing.us)} | {_ratio(timing.us, base)} "
                f"| {_us(timing.wall_best_us)} |"
            )
        add("")

    if results.rules and results.rules_bare:
        rb = results.rules_bare
        add("## (e) (a) against the number of path rules and of sessions")
        add("")
        add(
            "Rules: OIDCMiddleware with MemoryStore and N rules (exact and prefix patterns, "
            "every selector kind; the request hits `/api/*`), interleaved with the bare app."
        )
        add("")
        add("| rules | CPU µs/request | x bare | x 1 rule | wall µs (best) | x bare |")
        add("|---:|---:|---:|---:|---:|---:|")
        first = results.rules[min(results.rules)]
        for count, timing in results.rules.items():
            add(
                f"| {count:,} | {_us(timing.us)} | {_ratio(timing.us, rb.us)} "
                f"| {_ratio(timing.us, first.us)} | {_us(timing.wall_best_us)} "
                f"| {_ratio(timing.wall_best_us, rb.wall_best_us)} |"
            )
        add(f"| bare app | {_us(rb.us)} | 1.00 | | {_us(rb.wall_best_us)} | 1.00 |")
        add("")
    if results.sessions:
        add(
            "Sessions: the RedisStore stacks of (a) with the Redis holding N session keys "
            "(`asgi_oidc:session:<43-character sid>`, filled 10,000 per Lua call with a small "
            "placeholder value and a one-hour TTL; fill times: "
            + ", ".join(f"{n:,} in {s:.1f} s" for n, s in results.session_fill_seconds.items())
            + ")."
        )
        add("")
        keys = [k for k in ("oidc-redis", "oidc-redis-nocache") if k in results.labels]
        header = " | ".join(
            f"{results.labels[k]}: CPU µs | x bare | wall µs (best) | x bare" for k in keys
        )
        add(f"| keys in Redis | bare: CPU µs | wall µs (best) | {header} |")
        add("|---:|---:|---:|" + "---:|---:|---:|---:|" * len(keys))
        for count, by_key in results.sessions.items():
            bare_s = by_key["bare"]
            row = " | ".join(
                f"{_us(by_key[k].us)} | {_ratio(by_key[k].us, bare_s.us)} "
                f"| {_us(by_key[k].wall_best_us)} "
                f"| {_ratio(by_key[k].wall_best_us, bare_s.wall_best_us)}"
                for k in keys
                if k in by_key
            )
            add(f"| {count:,} | {_us(bare_s.us)} | {_us(bare_s.wall_best_us)} | {row} |")
        add("")

    if results.micro:
        add("## Where the time goes: each step of the per-request path, alone")
        add("")
        add(
            "OIDCMiddleware with MemoryStore, the request of (a); each step called alone in a "
            "loop (CPU time, median of 5 batches). `every` steps run on each authenticated "
            "request; `new path` and `new Cookie header` ones once per distinct path or "
            "header (the middleware memoises their results, bounded); `errors, redirects` "
            "only when the middleware answers itself; `cache miss` ones only when the "
            "in-process session cache has no entry (every request with "
            "`session_cache_ttl=0`)."
        )
        add("")
        add("| step | CPU ns | x bare request | wall ns (best) | runs |")
        add("|---|---:|---:|---:|---|")
        for name, timing, when in results.micro:
            add(
                f"| {name} | {timing.cpu_ns:,.0f} | {_ratio(timing.us, base)} "
                f"| {timing.wall_best_ns:,.0f} | {when} |"
            )
        every = sum(t.cpu_ns for _n, t, w in results.micro if w.startswith("every"))
        add("")
        add(
            f"Sum of the `every` steps: {every:,.0f} ns (the middleware's call chain and "
            "scope writes come on top)."
        )
        add("")

    add("## Method")
    add("")
    add(
        "- In-process figures: back-to-back awaited calls on one uvloop event loop in a "
        "process pinned to core 0; batches interleaved across the stacks, `gc.collect()` "
        "before each. The headline is CPU time (median batch): other processes on the "
        "machine take wall-clock time from a run, hardly CPU time; wall time is shown too."
    )
    add(
        "- The peer is Starlette's `SessionMiddleware` (itsdangerous `TimestampSigner`, "
        "base64 JSON) holding the ID token's claims under `user`, as Authlib's Starlette "
        "integration stores them, and a guard that answers 401 unless "
        "`scope['session']['user']` holds a `sub`: what a hand-glued app does per request."
    )
    add(
        "- The OIDC stacks log in once through the development provider (`/authorize` with a "
        "`login_hint`, then the callback) and reuse the cookie; under uvicorn the provider is "
        "served on loopback from the bench process while the app's process logs in against it."
    )
    add(
        "- The cache-off RedisStore stack (`session_cache_ttl=0`) makes one `GETEX` per "
        "request; the default (`session_cache_ttl=2`) makes one per session every 2 s."
    )
    if results.phases:
        add(
            "- Phase durations (s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in results.phases.items())
            + "."
        )
    add("")
    add("![(b) and (e)](results.png)")
    add("")
    return "\n".join(lines)


def plot(results: Results, path: Path) -> None:
    """The PNG: (b) throughput and p99 against the bare app, (e) rules and sessions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    ax_b, ax_rules, ax_sessions = axes

    if results.server:
        bare = results.server["bare"]
        keys = list(results.server)
        ratios = [results.server[k].requests_per_s / bare.requests_per_s for k in keys]
        bars = ax_b.bar(range(len(keys)), ratios, color="#4878a8")
        for bar, key in zip(bars, keys, strict=True):
            result = results.server[key]
            ax_b.annotate(
                f"{result.requests_per_s / 1000:.1f}k/s\np99 {result.p99_ms:.2f} ms",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax_b.axhline(TARGET_RATIO, color="#c44e52", linestyle="--", label=f"target {TARGET_RATIO}")
        ax_b.set_xticks(range(len(keys)))
        ax_b.set_xticklabels(keys, rotation=20, ha="right", fontsize=8)
        ax_b.set_ylabel("throughput / bare app")
        ax_b.set_ylim(0, 1.25)
        ax_b.set_title("(b) uvicorn uvloop+httptools, wrk -c32", fontsize=10)
        ax_b.legend(fontsize=8)
    else:
        ax_b.set_title("(b) not measured", fontsize=10)

    if results.rules and results.rules_bare:
        counts = list(results.rules)
        ax_rules.plot(
            counts, [results.rules[c].us for c in counts], "o-", label="OIDC, MemoryStore"
        )
        ax_rules.axhline(results.rules_bare.us, color="gray", linestyle=":", label="bare app")
        ax_rules.set_xscale("log")
        ax_rules.set_ylim(bottom=0)
        ax_rules.set_xlabel("path rules")
        ax_rules.set_ylabel("CPU µs per request (in-process)")
        ax_rules.set_title("(e) per-request cost vs rules", fontsize=10)
        ax_rules.legend(fontsize=8)

    if results.sessions:
        counts = list(results.sessions)
        for key in ("oidc-redis", "oidc-redis-nocache"):
            cpu = [results.sessions[c][key].us for c in counts if key in results.sessions[c]]
            wall = [
                results.sessions[c][key].wall_best_us for c in counts if key in results.sessions[c]
            ]
            if len(cpu) == len(counts):
                label = results.labels.get(key, key).replace("OIDCMiddleware, ", "")
                line = ax_sessions.plot(counts, cpu, "o-", label=f"{label}: CPU")[0]
                ax_sessions.plot(
                    counts, wall, "s--", color=line.get_color(), label=f"{label}: wall (best)"
                )
        ax_sessions.plot(
            counts, [results.sessions[c]["bare"].us for c in counts], ":", color="gray",
            label="bare app: CPU",
        )  # fmt: skip
        ax_sessions.set_xscale("log")
        ax_sessions.set_yscale("log")
        ax_sessions.set_xlabel("sessions held in Redis")
        ax_sessions.set_ylabel("µs per request (in-process)")
        ax_sessions.set_title("(e) per-request cost vs sessions in Redis", fontsize=10)
        ax_sessions.legend(fontsize=8)

    figure.suptitle(
        f"asgi_oidc {results.versions.get('asgi_oidc', '')}, "
        f"{results.machine.get('cores', '?')} cores",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
