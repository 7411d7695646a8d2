"""App instances for tests: the echo app behind OIDCMiddleware, sharing the
test redis-server and the development provider; closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from asgi_oidc import OIDCMiddleware
from asgi_oidc.testing import DevProvider
from tests.support.apps import echo_app
from tests.support.flow import settings_for

#: Builds one instance; keyword arguments override settings.
Factory = Callable[..., OIDCMiddleware]


@pytest.fixture
async def instance(dev_provider: DevProvider, redis_url: str) -> AsyncIterator[Factory]:
    """Builds app instances that share the test redis-server."""
    made: list[OIDCMiddleware] = []

    def factory(**overrides: Any) -> OIDCMiddleware:
        app = OIDCMiddleware(
            echo_app, **settings_for(dev_provider, redis_url=redis_url, **overrides)
        )
        made.append(app)
        return app

    yield factory
    for app in made:
        await app.aclose()
