"""A real browser for the interop tests: Debian's Chromium driven by Playwright.

``async with chromium_page() as page:`` launches headless Chromium (the system
one: never ``playwright install``) with a route that aborts every request leaving
loopback, so a page that reaches for the internet (oidc-provider's pages ``@import``
a web font) neither waits on the network nor leaks. Pass ``blocked=[]`` to collect
the URLs that were aborted.

When Chromium or Playwright is missing the tests skip, except under ``CI=true``,
where they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Page, Route

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Second layer: Playwright's routes never see the later legs of a redirect,
    # so a redirect off loopback would slip past the route below. No name other
    # than localhost resolves.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Schemes that never touch the network, let through as they are.
LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome", "chrome-error"})
DEFAULT_TIMEOUT_MS = 10_000


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"{reason}: install it with `apt-get install -y chromium` (and the dev extras,"
            " which include the playwright package; never `playwright install`)",
            pytrace=False,
        )
    pytest.skip(f"{reason} (apt-get install -y chromium to enable the browser tests)")


def chromium_executable() -> str:
    """The system Chromium; skip (or fail under CI) when there is none."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    _missing("chromium is not installed")


def is_loopback(url: str) -> bool:
    """Whether a request for ``url`` stays on this machine."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return (parts.hostname or "").lower() in LOOPBACK_HOSTS


@contextlib.asynccontextmanager
async def chromium_page(
    *,
    blocked: list[str] | None = None,
    timeout_ms: float = DEFAULT_TIMEOUT_MS,
) -> AsyncIterator[Page]:
    """A fresh headless Chromium page (its own browser, context and cookie jar).

    Every request whose host is not 127.0.0.1, localhost or [::1] is aborted
    (``blockedbyclient``) and its URL appended to ``blocked`` when given. Routes
    that a test adds on the page take precedence over this one. Playwright's
    routes do not see the later legs of a redirect (a 303 from the provider to the
    relying party's callback): watch those with ``page.expect_request``; a
    redirect to a host name other than localhost fails to resolve
    (``--host-resolver-rules``). A second page in the same browser (sharing
    cookies) is ``await page.context.new_page()``.
    """
    executable = chromium_executable()
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - playwright is in the dev extras
        _missing("the playwright package is not installed")

    async def guard(route: Route) -> None:
        url = route.request.url
        if is_loopback(url):
            await route.continue_()
        else:
            if blocked is not None:
                blocked.append(url)
            await route.abort("blockedbyclient")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_ARGS),
        )
        try:
            context = await browser.new_context()
            context.set_default_timeout(timeout_ms)
            await context.route("**/*", guard)
            page = await context.new_page()
            yield page
            await context.close()
        finally:
            await browser.close()
