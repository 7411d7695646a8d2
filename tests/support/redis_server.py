"""The test suite's redis-server: :class:`asgi_oidc.testing.RedisServer`, which
skips the tests that need it when it is missing, and fails them under CI."""

from __future__ import annotations

import os

import pytest

from asgi_oidc.testing.redis_server import RedisServer as _RedisServer
from asgi_oidc.testing.redis_server import RedisServerMissing

__all__ = ["MISSING", "RedisServer"]

MISSING = "redis-server is missing: install it with apt-get install -y redis-server"


class RedisServer(_RedisServer):
    """One ``redis-server`` process; skips (or fails on CI) when there is none."""

    def __init__(self) -> None:
        """Find ``redis-server`` and pick a port; :meth:`start` launches it."""
        try:
            super().__init__()
        except RedisServerMissing:
            if os.environ.get("CI") == "true":
                pytest.fail(MISSING)
            pytest.skip(MISSING)
