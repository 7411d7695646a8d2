"""What every benchmark needs: the development provider and its one user, the
middleware's settings, raw ASGI calls, logging in once to get a cookie (the
way ``tests/support/flow.py`` does, through the provider's ``/authorize`` with
a ``login_hint``), the peer's cookie, and a throwaway ``redis-server``."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from starlette.middleware.sessions import SessionMiddleware

from asgi_oidc.testing import DevClient, DevProvider, DevUser
from asgi_oidc.testing.redis_server import RedisServer as _RedisServer

from .apps import BENCH_PATH, ASGIApp, Message, Scope

__all__ = [
    "APP_ORIGIN",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "COOKIE_SECRET",
    "HTML",
    "IN_PROCESS_ISSUER",
    "PEER_SECRET",
    "USER",
    "AsgiResult",
    "RedisServer",
    "authorize_in_process",
    "begin_login_in_process",
    "call",
    "cookie_pair",
    "login_in_process",
    "login_over_http",
    "new_provider",
    "oidc_settings",
    "peer_cookie",
    "request_scope",
    "rules_document",
    "taskset",
]

CLIENT_ID = "bench"
CLIENT_SECRET = "bench-client-secret"
COOKIE_SECRET = "bench-cookie-secret-0123456789abcdef"
PEER_SECRET = "bench-peer-secret-0123456789abcdef"
#: Where the in-process middleware lives, and its provider.
APP_ORIGIN = "http://testserver"
IN_PROCESS_ISSUER = "https://idp.test"
HTML = (b"accept", b"text/html,application/xhtml+xml")

USER = DevUser(
    "alice",
    email="alice@corp.com",
    name="Alice Admin",
    groups=("admins", "staff"),
    claims={"department": "finance", "roles": ["reader", "writer"]},
)


def new_provider(issuer: str, redirect_uris: Sequence[str]) -> DevProvider:
    """The provider with the one client and user; tokens live an hour, so no
    refresh falls due during a run."""
    client = DevClient(CLIENT_ID, CLIENT_SECRET, redirect_uris=tuple(redirect_uris))
    return DevProvider(
        issuer=issuer,
        clients=[client],
        users=[USER],
        access_token_ttl=3600,
        id_token_ttl=3600,
    )


def rules_document(count: int) -> dict[str, Any]:
    """``count`` rules; the one for ``/api/*`` (what every request hits) lets
    ``admins`` in, the others are a mix of exact and prefix patterns with the
    various selectors."""
    rules: list[dict[str, Any]] = [{"path": "/api/*", "require": [{"group": "admins"}]}]
    for i in range(count - 1):
        kind = i % 4
        if kind == 0:
            rules.append({"path": f"/app{i}/*", "require": [{"group": f"team{i}"}]})
        elif kind == 1:
            rules.append({"path": f"/app{i}/page", "include": [{"email_domain": "corp.com"}]})
        elif kind == 2:
            rules.append(
                {"path": f"/api/v{i}/*", "require": [{"claim": {"department": ["finance"]}}]}
            )
        else:
            rules.append({"path": f"/docs/{i}/*", "exclude": [{"email": "mallory@corp.com"}]})
    return {"rules": rules}


def oidc_settings(
    issuer: str, redirect_uri: str, *, rules: int = 1, **overrides: Any
) -> dict[str, Any]:
    """``OIDCMiddleware`` settings for the bench client (cookies without
    ``Secure``: everything runs over plain HTTP on loopback)."""
    settings: dict[str, Any] = {
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": redirect_uri,
        "cookie_secret": COOKIE_SECRET,
        "cookie_secure": False,
        "claims": ["department", "roles"],
        "rules": rules_document(rules),
    }
    settings.update(overrides)
    return settings


# -- raw ASGI calls ------------------------------------------------------------


class AsgiResult:
    """What one ASGI http call answered."""

    __slots__ = ("body", "headers", "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    def header(self, name: bytes) -> str | None:
        """The first value of a response header."""
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None

    def set_cookies(self) -> list[str]:
        """``name=value`` of every ``Set-Cookie`` header."""
        return [
            value.decode("latin-1").split(";", 1)[0]
            for key, value in self.headers
            if key == b"set-cookie"
        ]


def request_scope(
    path: str = BENCH_PATH,
    *,
    query: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = (),
    method: str = "GET",
    host: str = "testserver",
) -> dict[str, Any]:
    """An ASGI http scope as uvicorn builds it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"host", host.encode()), *headers],
        "state": {},
    }


async def call(app: ASGIApp, scope: Scope) -> AsgiResult:
    """Call ``app`` once with an empty request body; collect the response."""
    result = AsgiResult()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            result.body += message.get("body", b"")

    await app(scope, receive, send)
    return result


def cookie_pair(set_cookies: Sequence[str], name: str) -> str:
    """The ``name=value`` pair among Set-Cookie values."""
    for pair in set_cookies:
        if pair.split("=", 1)[0] == name:
            return pair
    raise RuntimeError(f"no {name} cookie was set (got {list(set_cookies)})")


# -- logging in once -------------------------------------------------------------


async def begin_login_in_process(app: ASGIApp) -> tuple[str, str]:
    """A browser navigation to the guarded path: the authorization URL and the
    state cookie (``name=value``)."""
    response = await call(app, request_scope(headers=[HTML]))
    location = response.header(b"location")
    if response.status != 302 or location is None:
        raise RuntimeError(f"expected a redirect to the provider, got {response.status}")
    (state_cookie,) = response.set_cookies()
    return location, state_cookie


async def authorize_in_process(provider: DevProvider, authorization_url: str) -> str:
    """The provider's ``/authorize`` as the user (``login_hint``); the callback URL."""
    parts = urlsplit(authorization_url)
    query = f"{parts.query}&{urlencode({'login_hint': USER.sub})}".encode()
    response = await call(provider, request_scope(parts.path, query=query, host=parts.netloc))
    location = response.header(b"location")
    if response.status not in (302, 303) or location is None:
        raise RuntimeError(f"the provider did not redirect back ({response.status})")
    return location


async def login_in_process(app: ASGIApp, provider: DevProvider) -> str:
    """Log in through the middleware and the in-process provider; the session
    cookie as ``name=value``."""
    location, state_cookie = await begin_login_in_process(app)
    callback = urlsplit(await authorize_in_process(provider, location))
    response = await call(
        app,
        request_scope(
            callback.path,
            query=callback.query.encode(),
            headers=[HTML, (b"cookie", state_cookie.encode())],
        ),
    )
    if response.status != 302:
        raise RuntimeError(f"the callback answered {response.status}: {response.body[:200]!r}")
    session = [c for c in response.set_cookies() if c.split("=", 1)[1]]
    return cookie_pair(session, "asgi_oidc")


def login_over_http(app_base: str) -> str:
    """Log in through a served app and a served provider, as a browser would."""
    with (
        httpx.Client(base_url=app_base, trust_env=False, timeout=10) as browser,
        httpx.Client(trust_env=False, timeout=10) as idp,
    ):
        first = browser.get(BENCH_PATH, headers={"accept": "text/html"})
        if first.status_code != 302:
            raise RuntimeError(f"expected a redirect to the provider, got {first.status_code}")
        back = idp.get(f"{first.headers['location']}&{urlencode({'login_hint': USER.sub})}")
        if back.status_code not in (302, 303):
            raise RuntimeError(f"the provider did not redirect back ({back.status_code})")
        callback = urlsplit(back.headers["location"])
        done = browser.get(f"{callback.path}?{callback.query}", headers={"accept": "text/html"})
        if done.status_code != 302:
            raise RuntimeError(f"the callback answered {done.status_code}: {done.text[:200]}")
        value = browser.cookies.get("asgi_oidc")
        if not value:
            raise RuntimeError("no session cookie after the callback")
        return f"asgi_oidc={value}"


async def peer_cookie(provider: DevProvider, secret: str = PEER_SECRET) -> str:
    """The peer's session cookie (``name=value``), written by Starlette's own
    ``SessionMiddleware`` with the claims of a real ID token, the way an
    Authlib callback stores ``token["userinfo"]``."""
    id_token = provider.id_token(USER.sub, audience=CLIENT_ID, nonce="n")
    payload = id_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    async def store_user(scope: Scope, receive: Any, send: Any) -> None:
        scope["session"]["user"] = claims
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    writer = SessionMiddleware(store_user, secret_key=secret, https_only=False)
    response = await call(writer, request_scope("/auth"))
    return cookie_pair(response.set_cookies(), "session")


# -- processes ---------------------------------------------------------------------


def taskset(core: int | None) -> list[str]:
    """A ``taskset -c`` prefix pinning a command to ``core`` (when possible)."""
    if core is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(core)]


class RedisServer(_RedisServer):
    """asgi_oidc.testing's throwaway redis-server, started at once, optionally
    pinned to a core."""

    def __init__(self, *, core: int | None = None) -> None:
        super().__init__(command_prefix=taskset(core))
        self.start(timeout=10)
