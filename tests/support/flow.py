"""Driving a login through the middleware and the development provider, the
way a browser would: follow the redirect to the provider, pick a user, follow
the redirect back to the callback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from asgi_oidc import OIDCMiddleware
from asgi_oidc.testing import DevProvider

APP_BASE = "https://testserver"
REDIRECT = f"{APP_BASE}/oauth2/callback"
HTML = {"accept": "text/html,application/xhtml+xml"}
JSON = {"accept": "application/json"}


def settings_for(provider: DevProvider, **overrides: Any) -> dict[str, Any]:
    """Middleware settings that fit the test client registered at ``provider``."""
    from tests.support.idp_fixtures import CLIENT_ID, CLIENT_SECRET

    provider.add_redirect_uri(CLIENT_ID, REDIRECT)
    settings: dict[str, Any] = {
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT,
        "cookie_secret": "test-cookie-secret-0123456789",
        "claims": ["department", "roles"],
    }
    settings.update(overrides)
    return settings


@asynccontextmanager
async def app_client(app: OIDCMiddleware) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling the middleware in-process, keeping cookies."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=APP_BASE) as client:
        yield client


async def begin_login(client: httpx.AsyncClient, path: str = "/") -> str:
    """Request a guarded page as a browser; return the authorization URL."""
    response = await client.get(path, headers=HTML)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    return location


async def authorize(authorization_url: str, user: str) -> str:
    """Log in at the provider as ``user``; return the callback URL it sends us to."""
    async with httpx.AsyncClient() as idp:
        response = await idp.get(f"{authorization_url}&{urlencode({'login_hint': user})}")
    assert response.status_code in (302, 303), response.text
    return response.headers["location"]


async def finish_login(client: httpx.AsyncClient, callback_url: str) -> httpx.Response:
    """Deliver the provider's redirect to the app's callback."""
    parts = urlsplit(callback_url)
    return await client.get(f"{parts.path}?{parts.query}", headers=HTML)


async def login(client: httpx.AsyncClient, user: str = "alice", path: str = "/") -> httpx.Response:
    """The whole login; returns the callback's response (a redirect to ``path``)."""
    callback = await authorize(await begin_login(client, path), user)
    response = await finish_login(client, callback)
    assert response.status_code == 302, response.text
    return response


def query_of(url: str) -> dict[str, str]:
    """The query parameters of a URL, one value each."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
