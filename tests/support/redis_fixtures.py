"""Store fixtures (a pytest plugin, listed in ``tests/conftest.py``).

- ``redis_server``: one throwaway ``redis-server`` for the whole session.
- ``redis_url``: makes sure that server runs (a test may have stopped it),
  empties it, and gives its URL.
- ``redis_store`` / ``memory_store``: a fresh store, closed afterwards.
- ``store``: both of them, one after the other, for the contract tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from asgi_oidc.stores import MemoryStore, RedisStore, Store
from tests.support.redis_server import RedisServer

__all__ = ["memory_store", "redis_server", "redis_store", "redis_url", "store"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A ``redis-server`` for the test session, removed at its end."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The URL of the running, empty session server."""
    redis_server.start()  # a no-op unless an earlier test stopped it
    redis_server.flushall()
    yield redis_server.url
    # A test that stopped Redis leaves it running for the next one.
    redis_server.start()


@pytest_asyncio.fixture
async def redis_store(redis_url: str) -> AsyncIterator[RedisStore]:
    """A :class:`RedisStore` on the session server, closed afterwards."""
    store = RedisStore(redis_url)
    try:
        yield store
    finally:
        await store.close()


@pytest_asyncio.fixture
async def memory_store() -> AsyncIterator[MemoryStore]:
    """A fresh :class:`MemoryStore`, closed afterwards."""
    store = MemoryStore()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Store:
    """Each store in turn: the contract tests run against both."""
    chosen: Store = request.getfixturevalue(f"{request.param}_store")
    return chosen
