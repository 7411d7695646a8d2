"""The stacks the benchmarks compare, all around the same small app.

- ``bare``: :func:`echo_app`, a bare ASGI callable answering a small JSON body;
- ``oidc``: that app behind :class:`~asgi_oidc.OIDCMiddleware` (MemoryStore,
  or RedisStore when ``OIDC_REDIS_URL`` is set);
- ``peer``: the hand-glued alternative: Starlette's ``SessionMiddleware``
  (an itsdangerous-signed cookie holding the ID token's claims, as Authlib's
  Starlette integration stores them with ``request.session["user"] = token["userinfo"]``)
  and an Authlib-style check that the session holds a user
  (:class:`SessionUserGuard`).

uvicorn builds them with ``uvicorn benchmarks.apps:create_app --factory``,
choosing the stack with ``BENCH_APP``; the middleware's settings come from
``OIDC_*`` variables through :meth:`asgi_oidc.OIDCConfig.from_env`, and the
peer's signing secret from ``BENCH_PEER_SECRET``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.middleware.sessions import SessionMiddleware

from asgi_oidc import OIDCConfig, OIDCMiddleware

__all__ = [
    "BENCH_PATH",
    "ENV_APP",
    "ENV_PEER_SECRET",
    "ASGIApp",
    "SessionUserGuard",
    "create_app",
    "echo_app",
    "oidc_app",
    "peer_app",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The guarded path every measurement requests (a rule covers ``/api/*``).
BENCH_PATH = "/api/data"
#: Which stack ``create_app`` builds: ``bare``, ``oidc`` or ``peer``.
ENV_APP = "BENCH_APP"
#: The peer's ``SessionMiddleware`` secret.
ENV_PEER_SECRET = "BENCH_PEER_SECRET"

_JSON_HEADERS = [(b"content-type", b"application/json")]


def _subject(user: Any) -> str | None:
    if isinstance(user, dict):
        sub = user.get("sub")
        return sub if isinstance(sub, str) else None
    sub = getattr(user, "sub", None)
    return sub if isinstance(sub, str) else None


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer ``{"path": …, "sub": …}``: the path, and who the guard let in."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = json.dumps({"path": scope["path"], "sub": _subject(scope.get("user"))}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": _JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


_UNAUTHORIZED = json.dumps({"error": "login_required"}).encode()


class SessionUserGuard:
    """The peer's guard: 401 unless the signed session cookie holds a user.

    What an app glued together from Starlette's ``SessionMiddleware`` and
    Authlib typically does on every request: ``user = request.session.get("user")``
    and refuse when it is missing; the user is the ID token's claims that the
    callback stored in the session.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user = scope["session"].get("user")
        if not isinstance(user, dict) or not user.get("sub"):
            await send({"type": "http.response.start", "status": 401, "headers": _JSON_HEADERS})
            await send({"type": "http.response.body", "body": _UNAUTHORIZED})
            return
        scope["user"] = user
        await self.app(scope, receive, send)


def peer_app(app: ASGIApp, secret: str) -> ASGIApp:
    """``app`` behind ``SessionMiddleware`` and :class:`SessionUserGuard`."""
    return SessionMiddleware(SessionUserGuard(app), secret_key=secret, https_only=False)


def oidc_app(app: ASGIApp, config: OIDCConfig) -> OIDCMiddleware:
    """``app`` behind ``OIDCMiddleware``."""
    return OIDCMiddleware(app, config)


def create_app() -> ASGIApp:
    """The uvicorn factory: the stack ``BENCH_APP`` names, set up from the environment."""
    kind = os.environ.get(ENV_APP, "bare")
    if kind == "bare":
        return echo_app
    if kind == "peer":
        return peer_app(echo_app, os.environ[ENV_PEER_SECRET])
    if kind == "oidc":
        return oidc_app(echo_app, OIDCConfig.from_env(prefix="OIDC_"))
    raise SystemExit(f"{ENV_APP} must be bare, oidc or peer, not {kind!r}")
