"""In-process measurements: the apps called directly as ASGI callables, no server.

(a) the cost of one authenticated request to a guarded path, per stack;
(c) the middleware's share of a login callback;
(d) ID-token validation alone;
(e) how (a) changes with the number of path rules and of sessions in Redis;
and the micro-benchmarks of each step of the per-request path.

Every timing runs several batches of back-to-back calls on one event loop
(uvloop when the caller runs one), each batch after a ``gc.collect()``, and
keeps this process's CPU time per call (median batch) and the wall-clock time
per call (median and fastest batch): see :class:`Timing`.
"""

from __future__ import annotations

import base64
import gc
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import httpx
import redis
from asgiref.typing import HTTPScope

from asgi_oidc import MemoryStore, OIDCMiddleware
from asgi_oidc.cookies import CookieSigner, parse_cookies
from asgi_oidc.principal import principal_from_claims
from asgi_oidc.responses import wants_html
from asgi_oidc.rules import PathPatterns, load_rules, normalize_path
from asgi_oidc.sessions import SessionRecord
from asgi_oidc.testing import DevProvider

from .apps import BENCH_PATH, ASGIApp, Message, Receive, Scope, Send, echo_app, peer_app
from .support import (
    APP_ORIGIN,
    CLIENT_ID,
    COOKIE_SECRET,
    HTML,
    IN_PROCESS_ISSUER,
    PEER_SECRET,
    USER,
    authorize_in_process,
    begin_login_in_process,
    call,
    login_in_process,
    new_provider,
    oidc_settings,
    peer_cookie,
    request_scope,
)

__all__ = [
    "OTHER_COOKIES",
    "Stack",
    "Timing",
    "callback_cost",
    "compare",
    "fill_sessions",
    "id_token_validation",
    "inprocess_stacks",
    "micro_benchmarks",
    "oidc_stack",
    "per_request",
    "request_headers",
    "rules_scaling",
    "time_async",
    "time_sync",
]

#: Cookies another app on the same site set; every stack parses past them.
OTHER_COOKIES = "_ga=GA1.1.1234567890.1700000000; theme=dark"


def request_headers(cookie: str | None) -> list[tuple[bytes, bytes]]:
    """What an API client (fetch from the app's own page) sends, after ``host``.

    The same headers go to wrk in the server runs.
    """
    headers = [
        (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) bench/1.0"),
        (b"accept", b"application/json"),
        (b"accept-encoding", b"gzip, deflate"),
    ]
    if cookie is not None:
        headers.append((b"cookie", f"{OTHER_COOKIES}; {cookie}".encode()))
    return headers


@dataclass
class Timing:
    """Nanoseconds per call over several batches: this process's CPU time
    (the median batch; CPU time leaves out what other processes take from us)
    and wall-clock time (the median and the fastest batch)."""

    cpu_ns: float
    wall_ns: float
    wall_best_ns: float
    calls: int
    status: int = 200

    @property
    def us(self) -> float:
        """The headline cost: median CPU microseconds per call."""
        return self.cpu_ns / 1000

    @property
    def wall_us(self) -> float:
        """Median wall-clock microseconds per call."""
        return self.wall_ns / 1000

    @property
    def wall_best_us(self) -> float:
        """The fastest batch's wall-clock microseconds per call."""
        return self.wall_best_ns / 1000


def _summarize(batches: Sequence[tuple[float, float]], calls: int, status: int = 200) -> Timing:
    """``batches``: (wall, cpu) nanoseconds per call of each batch."""
    walls = [wall for wall, _cpu in batches]
    return Timing(
        cpu_ns=statistics.median(cpu for _wall, cpu in batches),
        wall_ns=statistics.median(walls),
        wall_best_ns=min(walls),
        calls=calls,
        status=status,
    )


def _size(n: int, spent: float, seconds: float) -> int:
    return max(1, int(n * seconds / max(spent, 1e-9)))


def time_sync(
    function: Callable[[], object],
    *,
    seconds: float = 0.1,
    batches: int = 5,
    iterations: int | None = None,
) -> Timing:
    """Time a synchronous call: ``batches`` batches, ``seconds`` in all."""

    def one_round(n: int) -> tuple[float, float]:
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        for _ in range(n):
            function()
        return (time.perf_counter_ns() - wall) / n, (time.process_time_ns() - cpu) / n

    n = iterations or 1
    if iterations is None:
        while (spent := one_round(n)[0] * n / 1e9) < 0.005 and n < 1 << 22:
            n *= 4
        n = _size(n, spent, seconds / batches)
    results = []
    for _ in range(batches):
        gc.collect()
        results.append(one_round(n))
    return _summarize(results, n * batches)


async def time_async(
    function: Callable[[], Awaitable[object]],
    *,
    seconds: float = 0.1,
    batches: int = 5,
    iterations: int | None = None,
) -> Timing:
    """Time an awaited call (the calibration runs it too, as warm-up)."""

    async def one_round(n: int) -> tuple[float, float]:
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        for _ in range(n):
            await function()
        return (time.perf_counter_ns() - wall) / n, (time.process_time_ns() - cpu) / n

    n = iterations or 1
    if iterations is None:
        while (spent := (await one_round(n))[0] * n / 1e9) < 0.005 and n < 1 << 22:
            n *= 4
        n = _size(n, spent, seconds / batches)
    results = []
    for _ in range(batches):
        gc.collect()
        results.append(await one_round(n))
    return _summarize(results, n * batches)


class _Collector:
    """An ASGI ``send`` that keeps the last status."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _fresh_scopes(template: Scope, n: int) -> list[Scope]:
    """``n`` scopes like ``template``, each with its own header list and its own
    header bytes, as a server builds them: nothing a request carries arrives
    with its hash already computed."""
    headers = template["headers"]
    scopes: list[Scope] = []
    for _ in range(n):
        scope = dict(template)
        scope["headers"] = [(name, bytes(memoryview(value))) for name, value in headers]
        scopes.append(scope)
    return scopes


def _batch(
    app: ASGIApp, headers: Sequence[tuple[bytes, bytes]]
) -> tuple[Callable[[int], Awaitable[tuple[float, float]]], _Collector]:
    """A coroutine function running ``n`` GETs of the guarded path, called as
    ASGI, each with a fresh scope built beforehand (:func:`_fresh_scopes`);
    it returns (wall, CPU) nanoseconds per call."""
    template = request_scope(BENCH_PATH, headers=headers)
    collector = _Collector()
    receive: Receive = _receive
    send: Send = collector

    async def run(n: int) -> tuple[float, float]:
        scopes = _fresh_scopes(template, n)
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        for scope in scopes:
            await app(scope, receive, send)
        return (time.perf_counter_ns() - wall) / n, (time.process_time_ns() - cpu) / n

    return run, collector


async def per_request(
    app: ASGIApp,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    seconds: float = 0.25,
    batches: int = 5,
    iterations: int | None = None,
) -> Timing:
    """(a) for one app: the cost of one authenticated GET of the guarded path."""
    timings = await compare(
        {"app": (app, headers)}, seconds=seconds, rounds=batches, iterations=iterations
    )
    return timings["app"]


async def compare(
    apps: Mapping[str, tuple[ASGIApp, Sequence[tuple[bytes, bytes]]]],
    *,
    seconds: float = 0.25,
    rounds: int = 7,
    iterations: int | None = None,
) -> dict[str, Timing]:
    """(a) for several apps, interleaved: each round runs one batch of every
    app in turn, so that a load elsewhere on the machine hits them alike.
    ``seconds`` is about the time spent on each app."""
    runs = {key: _batch(app, headers) for key, (app, headers) in apps.items()}
    sizes: dict[str, int] = {}
    for key, (run, _collector) in runs.items():
        if iterations is not None:
            sizes[key] = iterations
            await run(min(iterations, 10))
            continue
        n = 1
        while (spent := (await run(n))[0] * n / 1e9) < 0.005 and n < 1 << 22:
            n *= 4
        sizes[key] = _size(n, spent, seconds / rounds)
    batches: dict[str, list[tuple[float, float]]] = {key: [] for key in runs}
    for _ in range(rounds):
        for key, (run, _collector) in runs.items():
            gc.collect()
            batches[key].append(await run(sizes[key]))
    return {key: _summarize(batches[key], sizes[key] * rounds, runs[key][1].status) for key in runs}


# -- the stacks ------------------------------------------------------------------


class _TimedApp:
    """Wraps the provider to add up the time spent inside it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.ns = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter_ns()
        try:
            await self.app(scope, receive, send)
        finally:
            self.ns += time.perf_counter_ns() - start


@dataclass
class Stack:
    """One app as measured in-process, with the headers that authenticate it."""

    key: str
    label: str
    app: ASGIApp
    headers: list[tuple[bytes, bytes]]
    middleware: OIDCMiddleware | None = None
    cookie: str | None = None
    #: The provider as the middleware reaches it, adding up the time spent inside it.
    provider_timer: _TimedApp | None = None

    async def aclose(self) -> None:
        """Close the middleware's HTTP client and store."""
        if self.middleware is not None:
            await self.middleware.aclose()


def in_process_provider() -> DevProvider:
    """The provider at ``https://idp.test``, reached through ``httpx.ASGITransport``."""
    return new_provider(IN_PROCESS_ISSUER, [f"{APP_ORIGIN}/oauth2/callback"])


async def oidc_stack(
    key: str,
    label: str,
    provider: DevProvider,
    *,
    redis_url: str | None = None,
    rules: int = 1,
    **overrides: Any,
) -> Stack:
    """``echo_app`` behind ``OIDCMiddleware``, logged in once through ``provider``."""
    timed = _TimedApp(provider)
    settings = oidc_settings(
        IN_PROCESS_ISSUER, f"{APP_ORIGIN}/oauth2/callback", rules=rules, **overrides
    )
    if redis_url is not None:
        settings["redis_url"] = redis_url
    else:
        settings.setdefault("store", MemoryStore())
    middleware = OIDCMiddleware(echo_app, http_transport=httpx.ASGITransport(app=timed), **settings)
    cookie = await login_in_process(middleware, provider)
    return Stack(
        key,
        label,
        middleware,
        request_headers(cookie),
        middleware=middleware,
        cookie=cookie,
        provider_timer=timed,
    )


async def inprocess_stacks(provider: DevProvider, redis_url: str | None) -> list[Stack]:
    """bare, peer, OIDC with MemoryStore, and (with a Redis) OIDC with RedisStore
    with the in-process session cache on and off."""
    stacks = [
        Stack("bare", "bare ASGI app", echo_app, request_headers(None)),
        Stack(
            "peer",
            "peer: SessionMiddleware + session-user check",
            peer_app(echo_app, PEER_SECRET),
            request_headers(await peer_cookie(provider)),
        ),
        await oidc_stack("oidc-memory", "OIDCMiddleware, MemoryStore", provider),
    ]
    if redis_url is not None:
        stacks.append(
            await oidc_stack(
                "oidc-redis", "OIDCMiddleware, RedisStore, cache on", provider, redis_url=redis_url
            )
        )
        stacks.append(
            await oidc_stack(
                "oidc-redis-nocache",
                "OIDCMiddleware, RedisStore, cache off",
                provider,
                redis_url=redis_url,
                session_cache_ttl=0,
            )
        )
    return stacks


# -- (c) the login callback ------------------------------------------------------------


@dataclass
class CallbackCost:
    """(c): microseconds per login callback, median over the logins."""

    total_us: float
    provider_us: float
    middleware_us: float
    token_request_us: float
    token_request_provider_us: float
    state_take_us: float
    id_token_us: float
    session_write_us: float
    logins: int

    @property
    def token_client_us(self) -> float:
        """The token request minus the provider's own time in it."""
        return self.token_request_us - self.token_request_provider_us


async def callback_cost(stack: Stack, provider: DevProvider, *, logins: int = 60) -> CallbackCost:
    """Time whole callbacks and, separately, the steps the middleware takes in one.

    The token endpoint is the in-process provider behind ``httpx.ASGITransport``;
    the time spent inside it (signing the tokens, mostly) is measured by
    wrapping it and subtracted.
    """
    middleware = stack.middleware
    assert middleware is not None
    timer = stack.provider_timer
    assert timer is not None
    totals: list[float] = []
    inside: list[float] = []
    for index in range(logins + 3):
        location, state_cookie = await begin_login_in_process(middleware)
        callback = urlsplit(await authorize_in_process(provider, location))
        scope = request_scope(
            callback.path,
            query=callback.query.encode(),
            headers=[HTML, (b"cookie", state_cookie.encode())],
        )
        gc.collect()
        timer.ns = 0
        start = time.perf_counter_ns()
        response = await call(middleware, scope)
        elapsed = time.perf_counter_ns() - start
        if response.status != 302:
            raise RuntimeError(f"callback answered {response.status}")
        if index >= 3:  # the first ones fetch metadata and keys
            totals.append(elapsed / 1000)
            inside.append(timer.ns / 1000)
    total = statistics.median(totals)
    provider_share = statistics.median(inside)
    middleware_share = statistics.median(t - p for t, p in zip(totals, inside, strict=True))

    # The steps, one by one.
    store = middleware.store
    prefix = middleware.config.key_prefix
    counter = iter(range(1 << 30))

    async def take_state() -> None:
        key = f"{prefix}state:bench-{next(counter)}"
        await store.put(key, b'{"nonce":"n","verifier":"v","binding":"b"}', 600)
        json.loads(await store.take(key) or b"{}")

    put_only = await time_async(
        lambda: store.put(f"{prefix}state:bench-put-{next(counter)}", b"{}", 600),
        seconds=0.1,
    )
    take = await time_async(take_state, seconds=0.1)

    validator = middleware.provider.validator
    id_token = provider.id_token(USER.sub, audience=CLIENT_ID, nonce="bench-nonce")
    validation = await time_async(
        lambda: validator.validate_id_token(id_token, nonce="bench-nonce"), seconds=0.15
    )
    claims = await validator.validate_id_token(id_token, nonce="bench-nonce")

    async def write_session() -> None:
        await middleware.sessions.create(
            claims,
            id_token=id_token,
            access_token="a" * 40,
            refresh_token=None,
            expires_in=3600.0,
        )

    write = await time_async(write_session, seconds=0.1)

    token_times: list[float] = []
    token_inside: list[float] = []
    for _ in range(min(logins, 40)):
        location, _cookie = await begin_login_in_process(middleware)
        state = dict(parse_qsl(urlsplit(location).query))["state"]
        record = json.loads(await store.get(f"{prefix}state:{state}") or b"{}")
        callback = urlsplit(await authorize_in_process(provider, location))
        code = dict(parse_qsl(callback.query))["code"]
        timer.ns = 0
        start = time.perf_counter_ns()
        await middleware.provider.exchange_code(code, record["verifier"])
        token_times.append((time.perf_counter_ns() - start) / 1000)
        token_inside.append(timer.ns / 1000)
    return CallbackCost(
        total_us=total,
        provider_us=provider_share,
        middleware_us=middleware_share,
        token_request_us=statistics.median(token_times),
        token_request_provider_us=statistics.median(token_inside),
        state_take_us=take.wall_us - put_only.wall_us,
        id_token_us=validation.wall_us,
        session_write_us=write.wall_us,
        logins=logins,
    )


async def id_token_validation(stack: Stack, provider: DevProvider) -> dict[str, Timing]:
    """(d): ``TokenValidator.validate_id_token`` with the keys cached, and PyJWT's
    ``jwt.decode`` (signature and registered claims) alone."""
    import jwt

    middleware = stack.middleware
    assert middleware is not None
    validator = middleware.provider.validator
    token = provider.id_token(USER.sub, audience=CLIENT_ID, nonce="bench-nonce")
    full = await time_async(
        lambda: validator.validate_id_token(token, nonce="bench-nonce"), seconds=0.3
    )
    key = jwt.PyJWK(provider.jwks()["keys"][0])
    decode = time_sync(
        lambda: jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            issuer=provider.issuer,
            options={"verify_aud": False},
        ),
        seconds=0.3,
    )
    return {"validate_id_token": full, "jwt.decode": decode}


# -- (e) scaling -------------------------------------------------------------------------


async def rules_scaling(
    provider: DevProvider, counts: Iterable[int], *, seconds: float = 0.25
) -> tuple[Timing, dict[int, Timing]]:
    """(a) for the MemoryStore stack with ``count`` path rules each, interleaved
    with the bare app; returns the bare app's timing and each count's."""
    stacks = {
        count: await oidc_stack(f"rules-{count}", f"{count} rules", provider, rules=count)
        for count in counts
    }
    try:
        apps: dict[str, tuple[ASGIApp, Sequence[tuple[bytes, bytes]]]] = {
            "bare": (echo_app, request_headers(None))
        }
        apps.update({str(count): (stack.app, stack.headers) for count, stack in stacks.items()})
        timings = await compare(apps, seconds=seconds)
    finally:
        for stack in stacks.values():
            await stack.aclose()
    return timings["bare"], {count: timings[str(count)] for count in stacks}


_FILL = """
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
end
return #KEYS
"""


def fill_sessions(redis_url: str, count: int, *, prefix: str = "asgi_oidc:") -> float:
    """Add ``count`` session keys ``<prefix>session:<sid>``, each sid 43
    URL-safe base64 characters like a real one (``secrets.token_urlsafe(32)``),
    10,000 per Lua call; values are a small placeholder record, TTL one hour.
    Returns the seconds it took."""
    start = time.perf_counter()
    chunk = 10_000
    value = json.dumps({"v": 1, "placeholder": True}).encode()
    with redis.Redis.from_url(redis_url, socket_timeout=60) as client:
        script = client.register_script(_FILL)
        done = 0
        while done < count:
            n = min(chunk, count - done)
            blob = base64.urlsafe_b64encode(os.urandom(33 * n)).decode()
            keys = [f"{prefix}session:{blob[i * 44 : i * 44 + 43]}" for i in range(n)]
            script(keys=keys, args=[value, 3_600_000], client=client)
            done += n
    return time.perf_counter() - start


def session_count(redis_url: str, prefix: str = "asgi_oidc:") -> int:
    """How many keys the Redis holds (every one is a session here)."""
    with redis.Redis.from_url(redis_url, socket_timeout=10) as client:
        return int(client.dbsize())


# -- the micro-benchmarks of the per-request path ------------------------------------------


async def micro_benchmarks(stack: Stack, *, seconds: float = 0.15) -> list[tuple[str, Timing, str]]:
    """Each step the guard takes on an authenticated request, timed alone,
    with ``(name, timing, when it runs)``."""
    middleware = stack.middleware
    assert middleware is not None and stack.cookie is not None
    config = middleware.config
    scope = request_scope(BENCH_PATH, headers=stack.headers)
    header = dict(stack.headers)[b"cookie"]
    value = stack.cookie.split("=", 1)[1]
    parse_record = SessionRecord.from_bytes
    signer = CookieSigner(COOKIE_SECRET, "session")
    session = await middleware.sessions.load(value)
    assert session is not None
    record = session.record
    raw_record = record.to_bytes()
    rules = load_rules(oidc_settings(IN_PROCESS_ISSUER, APP_ORIGIN)["rules"])
    public = PathPatterns(config.public_paths)
    policy = rules.policy_for(BENCH_PATH)
    assert policy is not None
    principal = session.principal
    sessions = middleware.sessions
    refresher = middleware.refresher

    def scan_headers() -> None:
        for name, _value in scope["headers"]:
            if name == b"authorization":
                break

    def build_principal() -> None:
        principal_from_claims(
            record.claims,
            email_claim=config.email_claim,
            groups_claim=config.groups_claim,
            custom_claims=config.claims,
            session_id=record.sid,
        )

    http_scope = cast(HTTPScope, scope)
    steps: list[tuple[str, Callable[[], object], str]] = [
        (
            "scan headers for Accept (wants_html)",
            lambda: wants_html(http_scope),
            "errors, redirects",
        ),
        ("scan headers for Authorization (bearer)", scan_headers, "every"),
        (
            "parse the Cookie header (parse_cookies)",
            lambda: parse_cookies(header),
            "new Cookie header",
        ),
        ("normalize_path", lambda: normalize_path(BENCH_PATH), "new path"),
        ("refresh due? (Refresher.due)", lambda: refresher.due(record), "every"),
        ("rule lookup (RuleSet.policy_for)", lambda: rules.policy_for(BENCH_PATH), "new path"),
        (
            "public_paths check (PathPatterns.matches)",
            lambda: public.matches(BENCH_PATH),
            "new path",
        ),
        ("rule evaluation (Policy.allows)", lambda: policy.allows(principal), "every"),
        ("signature check (CookieSigner.unsign)", lambda: signer.unsign(value), "cache miss"),
        ("record parse (SessionRecord.from_bytes)", lambda: parse_record(raw_record), "cache miss"),
        ("principal building (principal_from_claims)", build_principal, "cache miss"),
        ("Session build (SessionManager.build)", lambda: sessions.build(record), "cache miss"),
    ]
    timed = [(name, time_sync(step, seconds=seconds), when) for name, step, when in steps]
    hit = await time_async(lambda: sessions.load(value), seconds=seconds)
    timed.insert(4, ("session cache hit (SessionManager.load)", hit, "every (hit)"))
    return timed
