"""Fixtures for the interop tests: oidc-provider in the modes they need, the
relying party's origins, our middleware built against it, and helpers that act
as the user agent.

One provider per mode for the whole session (each start costs about 0.35 s).
Every client the tests use is registered with every provider, with every
callback the tests may use, because oidc-provider takes its clients at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
import redis.asyncio

from asgi_oidc import OIDCMiddleware
from tests.support.apps import echo_app
from tests.support.oidc_provider import (
    OidcProviderProcess,
    client_metadata,
    drive_login,
    run_oidc_provider,
)

HTML = {"accept": "text/html,application/xhtml+xml"}
JSON = {"accept": "application/json"}

ACCOUNTS: dict[str, dict[str, Any]] = {
    "alice": {
        "email": "alice@corp.example",
        "email_verified": True,
        "name": "Alice Liddell",
        "groups": ["admins", "staff"],
        "department": "engineering",
        "roles": ["deployer", "reviewer"],
    },
    "mallory": {"email": "mallory@corp.example", "groups": ["staff"]},
}
#: oidc-provider's UserInfo names someone else for this login (Core 5.3.2 case).
USERINFO_IMPOSTOR = "mallory"
SCOPES = "openid email profile groups department roles"
CUSTOM_CLAIMS = ("department", "roles")
COOKIE_SECRET = "interop-cookie-secret-0123456789"


@dataclass(frozen=True)
class RegisteredClient:
    """A client registered with every provider the interop tests start."""

    client_id: str
    client_secret: str
    auth_method: str


POST_CLIENT = RegisteredClient("rp-post", "post-secret-0123456789abcdef", "client_secret_post")
# RFC 6749 2.3.1: these must be form-urlencoded in the Basic header. "%41" sent
# raw would be read as "A", "+" as a space, and ":" would end the id.
BASIC_CLIENT = RegisteredClient("rp-basic", "b4sic+s%41cret:with/colons=", "client_secret_basic")
CLIENTS = (POST_CLIENT, BASIC_CLIENT)


def _two_free_ports() -> tuple[int, int]:
    # Both bound at once, so they differ.
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        return a.getsockname()[1], b.getsockname()[1]


_PORT_A, _PORT_B = _two_free_ports()
#: Instance A of the app: served on this port by the browser and server tests,
#: mounted in-process by the others (nothing listens there then).
APP_A = f"http://127.0.0.1:{_PORT_A}"
#: Instance B of the same app.
APP_B = f"http://127.0.0.1:{_PORT_B}"
#: The app as if served over https: in-process only, for Secure cookies.
SECURE_APP = f"https://127.0.0.1:{_PORT_A}"
ORIGINS = (APP_A, APP_B, SECURE_APP)


def callback_uri(origin: str) -> str:
    return f"{origin}/oauth2/callback"


def post_logout_uri(origin: str) -> str:
    return f"{origin}/signed-out"


def _clients() -> list[dict[str, Any]]:
    return [
        client_metadata(
            c.client_id,
            c.client_secret,
            [callback_uri(o) for o in ORIGINS],
            post_logout_redirect_uris=[post_logout_uri(o) for o in ORIGINS],
            token_endpoint_auth_method=c.auth_method,
        )
        for c in CLIENTS
    ]


@pytest.fixture(scope="session")
def op() -> Iterator[OidcProviderProcess]:
    """oidc-provider in its default mode: email, groups and custom claims only
    at UserInfo; UserInfo lies about ``sub`` for :data:`USERINFO_IMPOSTOR`."""
    with run_oidc_provider(
        clients=_clients(),
        accounts=ACCOUNTS,
        userinfo_subjects={USERINFO_IMPOSTOR: "someone-else"},
    ) as provider:
        yield provider


@pytest.fixture(scope="session")
def op_claims_in_id_token() -> Iterator[OidcProviderProcess]:
    """oidc-provider with ``conformIdTokenClaims: false``: the claims are in the ID token."""
    with run_oidc_provider(
        clients=_clients(), accounts=ACCOUNTS, conform_id_token_claims=False
    ) as provider:
        yield provider


#: Access-token lifetime of :func:`op_short_tokens`, in seconds (whole seconds
#: from a whole-second ``iat``: a token lives between TTL-1 and TTL seconds).
SHORT_ACCESS_TTL = 2


@pytest.fixture(scope="session")
def op_short_tokens() -> Iterator[OidcProviderProcess]:
    """oidc-provider with short-lived access tokens and rotating refresh tokens."""
    with run_oidc_provider(
        clients=_clients(),
        accounts=ACCOUNTS,
        access_token_ttl=SHORT_ACCESS_TTL,
        rotate_refresh_token=True,
    ) as provider:
        yield provider


# --- what the middleware says to the provider ------------------------------------


class RecordingTransport(httpx.AsyncBaseTransport):
    """The middleware's outbound transport: real HTTP, every exchange kept."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport(trust_env=False)
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        response = await self._inner.handle_async_request(request)
        await response.aread()
        self.exchanges.append((request, response))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    def to(self, url: str) -> list[tuple[httpx.Request, httpx.Response]]:
        """The exchanges with one endpoint (query ignored)."""
        return [(q, r) for q, r in self.exchanges if str(q.url).split("?")[0] == url]


@dataclass
class BuiltMiddleware:
    app: OIDCMiddleware
    outbound: RecordingTransport


MiddlewareFactory = Callable[..., BuiltMiddleware]


def middleware_settings(
    op: OidcProviderProcess,
    redis_url: str,
    *,
    client: RegisteredClient = POST_CLIENT,
    origin: str = APP_A,
) -> dict[str, Any]:
    """The settings a deployment of the app at ``origin`` would use."""
    return {
        "issuer": op.issuer,
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "token_endpoint_auth_method": client.auth_method,
        "redirect_uri": callback_uri(origin),
        "post_logout_redirect_uri": post_logout_uri(origin),
        "cookie_secure": False,
        "cookie_secret": COOKIE_SECRET,
        "redis_url": redis_url,
        "scopes": SCOPES,
        "claims": list(CUSTOM_CLAIMS),
    }


@pytest_asyncio.fixture
async def make_middleware(redis_url: str) -> AsyncIterator[MiddlewareFactory]:
    """``make_middleware(op, client=…, origin=…, drop=(…), **overrides)``: our
    middleware around the echo app, on the session's real Redis (emptied for the
    test), closed at the end of the test. ``drop`` removes settings so that their
    defaults apply."""
    built: list[OIDCMiddleware] = []

    def make(
        op: OidcProviderProcess,
        *,
        client: RegisteredClient = POST_CLIENT,
        origin: str = APP_A,
        drop: Sequence[str] = (),
        **overrides: Any,
    ) -> BuiltMiddleware:
        settings = middleware_settings(op, redis_url, client=client, origin=origin)
        for name in drop:
            del settings[name]
        settings.update(overrides)
        outbound = RecordingTransport()
        app = OIDCMiddleware(echo_app, http_transport=outbound, **settings)
        built.append(app)
        return BuiltMiddleware(app, outbound)

    try:
        yield make
    finally:
        for app in built:
            await app.aclose()


@contextlib.asynccontextmanager
async def user_agent(apps: Mapping[str, Any] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """One cookie jar for the provider (over the network) and the apps (each
    origin in ``apps`` served in-process), as a browser has: cookies ignore
    ports, so the provider's cookies on 127.0.0.1 reach the app too."""
    mounts = {origin: httpx.ASGITransport(app=app) for origin, app in (apps or {}).items()}
    async with httpx.AsyncClient(
        mounts=mounts, timeout=10, follow_redirects=False, trust_env=False
    ) as client:
        yield client


@dataclass
class Login:
    """What a login through the middleware and the provider went through."""

    authorize: httpx.Response  # the app's redirect to the provider
    callback_url: str  # where the provider sent the browser
    callback: httpx.Response  # the app's answer to it


async def login(
    ua: httpx.AsyncClient,
    origin: str,
    *,
    path: str = "/",
    user: str = "alice",
    callback_origin: str | None = None,
    consent: bool = True,
) -> Login:
    """Ask ``origin`` for ``path`` as a browser, log in at the provider's pages,
    and deliver its callback (to ``callback_origin`` when given: another instance)."""
    authorize = await ua.get(origin + path, headers=HTML)
    assert authorize.status_code == 302, authorize.text
    back = await drive_login(ua, authorize.headers["location"], login=user, consent=consent)
    assert back.status_code == 303, back.text
    callback_url = back.headers["location"]
    parts = urlsplit(callback_url)
    target = f"{callback_origin}{parts.path}?{parts.query}" if callback_origin else callback_url
    callback = await ua.get(target, headers=HTML)
    return Login(authorize, callback_url, callback)


async def whoami(ua: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """The echo app's JSON for ``url``; fails unless it answered 200."""
    response = await ua.get(url, headers=JSON)
    assert response.status_code == 200, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    return body


def set_cookies(response: httpx.Response) -> dict[str, dict[str, str]]:
    """Set-Cookie headers by cookie name: ``{"": value, attribute (lower): value}``."""
    found: dict[str, dict[str, str]] = {}
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = (part.strip() for part in header.split(";"))
        name, _, value = first.partition("=")
        parsed = {"": value}
        for attribute in attributes:
            key, _, val = attribute.partition("=")
            parsed[key.lower()] = val
        found[name] = parsed
    return found


def session_id(cookie_value: str) -> str:
    """The session id inside a signed session cookie (``<sid>.<mac>``)."""
    return cookie_value.rpartition(".")[0]


async def session_record(redis_url: str, sid: str) -> dict[str, Any] | None:
    """The session record as stored in Redis, read directly."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        raw = await client.get(f"asgi_oidc:session:{sid}")
    finally:
        await client.aclose()
    if raw is None:
        return None
    record: dict[str, Any] = json.loads(raw)
    return record


@contextlib.asynccontextmanager
async def serve(app: Any, origin: str) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on ``origin``'s loopback port, in this event
    loop (so the middleware, its Redis and HTTP clients live in the test's loop
    and close there). Yields the base URL."""
    import uvicorn

    port = urlsplit(origin).port
    assert port is not None
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # raises what stopped it
        assert server.started, f"uvicorn did not start on {origin}"
        yield origin
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 10)
        except asyncio.TimeoutError:
            server.force_exit = True
            await task
        sock.close()
