"""A real browser (Debian's Chromium, headless) through our middleware and
oidc-provider's pages: the app is served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.interop.conftest import APP_A, MiddlewareFactory, post_logout_uri, serve
from tests.support.browser import chromium_page
from tests.support.oidc_provider import OidcProviderProcess


async def _shown(page: Any) -> dict[str, Any]:
    """What the echo app printed (Chromium shows JSON as text)."""
    body: dict[str, Any] = json.loads(await page.inner_text("body"))
    return body


async def _app_cookies(page: Any) -> dict[str, dict[str, Any]]:
    """The browser's cookies for the app, by name, without the provider's."""
    cookies = await page.context.cookies(APP_A)
    return {c["name"]: dict(c) for c in cookies if c["name"].startswith("asgi_oidc")}


async def test_browser_login_and_logout(
    op: OidcProviderProcess, make_middleware: MiddlewareFactory
) -> None:
    built = make_middleware(op)  # cookie_secure=False: the app is on plain http
    wanted = f"{APP_A}/reports/q3?year=2026"
    blocked: list[str] = []
    async with serve(built.app, APP_A):
        started = time.perf_counter()
        async with chromium_page(blocked=blocked) as page:
            # Sent to the provider's login page, with a state cookie set.
            await page.goto(wanted)
            assert page.url.startswith(f"{op.issuer}/interaction/"), page.url
            assert await page.title() == "Sign-in"
            [(state_name, state)] = (await _app_cookies(page)).items()
            assert state_name.startswith("asgi_oidc_state_")
            assert state["httpOnly"] is True
            assert state["sameSite"] == "Lax"
            assert state["secure"] is False

            await page.fill("input[name=login]", "alice")
            await page.fill("input[name=password]", "any password")
            await page.click("button[type=submit]")
            await page.wait_for_selector("input[name=prompt][value=consent]", state="attached")
            await page.click("button[type=submit]")

            # Back on the page first asked for, signed in.
            await page.wait_for_url(wanted)
            shown = await _shown(page)
            assert shown["email"] == "alice@corp.example"
            assert shown["groups"] == ["admins", "staff"]
            assert shown["path"] == "/reports/q3"
            cookies = await _app_cookies(page)
            assert set(cookies) == {"asgi_oidc"}  # the state cookie is spent
            assert cookies["asgi_oidc"]["httpOnly"] is True
            assert cookies["asgi_oidc"]["sameSite"] == "Lax"
            # A second page of the app, same browser: no new login.
            await page.goto(f"{APP_A}/elsewhere")
            assert (await _shown(page))["sub"] == "alice"
            logged_in = time.perf_counter()

            # Logout: the provider's confirmation page, then back to us.
            await page.goto(f"{APP_A}/oauth2/logout")
            assert page.url.startswith(f"{op.issuer}/session/end"), page.url
            await page.click("button[name=logout][value=yes]")
            await page.wait_for_url(f"{post_logout_uri(APP_A)}?*")
            assert parse_qs(urlsplit(page.url).query)["state"]
            assert (await _shown(page))["user"] == "anonymous"
            assert await _app_cookies(page) == {}

            # The next visit asks for a login again.
            await page.goto(wanted)
            assert page.url.startswith(f"{op.issuer}/interaction/"), page.url
            assert await page.title() == "Sign-in"
            finished = time.perf_counter()
    # Only the provider pages' web font left loopback, and it was stopped.
    assert all(urlsplit(url).hostname == "fonts.googleapis.com" for url in blocked), blocked
    assert logged_in - started < 10 and finished - logged_in < 10
