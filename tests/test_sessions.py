"""SessionManager: the in-process cache never outlives an invalidation."""

from __future__ import annotations

import asyncio

from asgi_oidc import MemoryStore, OIDCConfig
from asgi_oidc.sessions import SessionManager

CONFIG = OIDCConfig(
    issuer="https://idp.example.com",
    client_id="web",
    client_secret="s",
    redirect_uri="https://app.example.com/cb",
    cookie_secret="cookie-secret-0123456789abcdef",
    session_cache_ttl=60,
)
CLAIMS = {"iss": "https://idp.example.com", "sub": "alice", "aud": "web"}


class SlowStore(MemoryStore):
    """A store whose session reads wait until the test lets them go."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.reading = asyncio.Event()

    async def get_and_expire(self, key: str, ttl: float) -> bytes | None:
        value = await super().get_and_expire(key, ttl)
        self.reading.set()
        await self.gate.wait()
        return value


async def test_a_load_racing_a_logout_caches_nothing() -> None:
    store = SlowStore()
    a, b = SessionManager(CONFIG, store), SessionManager(CONFIG, store)
    await a.start()
    await b.start()
    record = await a.create(
        CLAIMS, id_token="x.y.z", access_token=None, refresh_token=None, expires_in=None
    )
    cookie = b.cookie_value(record.sid)
    loading = asyncio.create_task(b.load(cookie))
    await store.reading.wait()  # b has read the record; now a ends it
    await a.end(record)
    store.gate.set()
    await loading
    assert b.cached(cookie) is None
    assert await b.load(cookie) is None


async def test_nothing_is_cached_before_the_channel_is_listened_to() -> None:
    store = MemoryStore()
    manager = SessionManager(CONFIG, store)
    record = await manager.create(
        CLAIMS, id_token="x.y.z", access_token=None, refresh_token=None, expires_in=None
    )
    cookie = manager.cookie_value(record.sid)
    assert await manager.load(cookie) is not None
    assert manager.cached(cookie) is None
    await manager.start()
    assert await manager.load(cookie) is not None
    assert manager.cached(cookie) is not None
