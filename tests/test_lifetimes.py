"""Session lifetimes (issue 5): ``session_idle_ttl`` slides with each request,
``session_ttl`` is absolute; both are store TTLs and checked on read.

Lifetimes here are fractions of a second so that no test sleeps long: a
sleep meant to outlast a lifetime exceeds it by half, and requests meant to
keep a session alive come at a sixth of its idle timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as redis

from asgi_oidc import OIDCMiddleware
from asgi_oidc.sessions import SessionRecord
from asgi_oidc.testing import DevProvider
from tests.support.app_fixtures import Factory
from tests.support.flow import HTML, JSON, app_client, login

COOKIE = "__Host-asgi_oidc"


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[redis.Redis]:
    """A plain client on the test server, to look at keys and TTLs."""
    client = redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def sid_of(app: OIDCMiddleware, client: httpx.AsyncClient) -> str:
    """The session id in the client's session cookie."""
    cookie = client.cookies.get(COOKIE)
    assert cookie
    sid = app.sessions.sid_from_cookie(cookie)
    assert sid is not None
    return sid


async def record_of(app: OIDCMiddleware, client: httpx.AsyncClient) -> SessionRecord:
    """The stored record of the client's session."""
    record = await app.sessions.fetch(sid_of(app, client))
    assert record is not None
    return record


def keep_cookie(client: httpx.AsyncClient) -> None:
    """Hold on to the session cookie past its Max-Age, as a client that ignores
    it would (httpx's jar counts whole seconds, so sub-second sessions would
    lose it early): only the server may end the session here."""
    value = client.cookies.get(COOKIE)
    assert value
    client.cookies.delete(COOKIE)
    client.cookies.set(COOKIE, value)


async def sleep_until(deadline: float) -> None:
    """Sleep until the wall clock has passed ``deadline``."""
    while (left := deadline - time.time()) > 0:
        await asyncio.sleep(left + 0.01)


async def test_idle_session_expires(instance: Factory, dev_provider: DevProvider) -> None:
    app = instance(session_idle_ttl=0.3, session_ttl=30, session_cache_ttl=0)
    async with app_client(app) as client:
        await login(client, "alice")
        alive = await client.get("/", headers=JSON)
        await asyncio.sleep(0.45)
        api = await client.get("/", headers=JSON)
        page = await client.get("/page", headers=HTML)
        gone = await app.sessions.fetch(sid_of(app, client))
    assert alive.status_code == 200
    assert api.status_code == 401
    assert page.status_code == 302
    assert page.headers["location"].startswith(f"{dev_provider.issuer}/authorize?")
    assert gone is None


async def test_activity_keeps_an_idle_session_alive(instance: Factory) -> None:
    app = instance(session_idle_ttl=0.3, session_ttl=30, session_cache_ttl=0)
    async with app_client(app) as client:
        await login(client, "alice")
        started = time.time()
        statuses = []
        # Well past the idle timeout in total, never idle for half of it.
        while time.time() - started < 0.8:
            await asyncio.sleep(0.05)
            statuses.append((await client.get("/", headers=JSON)).status_code)
    assert len(statuses) >= 4
    assert set(statuses) == {200}


async def test_in_process_cache_never_outlives_the_idle_timeout(instance: Factory) -> None:
    # The default cache (2 s) is longer than this idle timeout: a cached
    # session must still end after the idle timeout, and activity served from
    # the cache must still keep it alive.
    app = instance(session_idle_ttl=0.3, session_ttl=30)
    assert app.config.session_cache_ttl > 0.3
    async with app_client(app) as client:
        await login(client, "alice")
        started = time.time()
        active = []
        while time.time() - started < 0.65:
            await asyncio.sleep(0.05)
            active.append((await client.get("/", headers=JSON)).status_code)
        await asyncio.sleep(0.4)
        idle = await client.get("/", headers=JSON)
    assert set(active) == {200}
    assert idle.status_code == 401


async def test_absolute_expiry_ends_a_session_despite_activity(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance(session_idle_ttl=0.3, session_ttl=0.6, session_cache_ttl=0)
    async with app_client(app) as client:
        await login(client, "alice")
        keep_cookie(client)
        expires_at = (await record_of(app, client)).expires_at
        statuses = []
        while time.time() < expires_at - 0.1:
            statuses.append((await client.get("/", headers=JSON)).status_code)
            await asyncio.sleep(0.05)
        await sleep_until(expires_at)
        api = await client.get("/", headers=JSON)
        page = await client.get("/page", headers=HTML)
    assert statuses and set(statuses) == {200}
    assert api.status_code == 401
    assert page.status_code == 302
    assert page.headers["location"].startswith(f"{dev_provider.issuer}/authorize?")


async def test_absolute_expiry_is_checked_on_read(instance: Factory) -> None:
    # Even if the key outlived its lifetime (a store that kept it, a TTL set
    # by an older version), a record past expires_at is no session.
    app = instance(session_cache_ttl=0)
    async with app_client(app) as client:
        await login(client, "alice")
        record = await record_of(app, client)
        assert (await client.get("/", headers=JSON)).status_code == 200
        expired = dataclasses.replace(record, expires_at=time.time() - 1)
        await app.store.put(f"asgi_oidc:session:{record.sid}", expired.to_bytes(), 60)
        response = await client.get("/", headers=JSON)
    assert response.status_code == 401


async def test_expired_session_cookie_lives_no_longer_than_the_session(
    instance: Factory,
) -> None:
    app = instance(session_ttl=0.6, session_idle_ttl=0.3)
    async with app_client(app) as client:
        response = await login(client, "alice")
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith(COOKIE + "=")
        )
        assert (await client.get("/", headers=JSON)).status_code == 200
    # A sub-second lifetime still gets a cookie (Max-Age=0 would delete it).
    assert "Max-Age=1;" in cookie


async def test_redis_key_ttl_never_exceeds_the_absolute_lifetime(
    instance: Factory, raw_redis: redis.Redis
) -> None:
    # The idle timeout is longer than the whole session: the slide must stop
    # at the absolute lifetime.
    app = instance(session_ttl=1.0, session_idle_ttl=30, session_cache_ttl=0)
    async with app_client(app) as client:
        await login(client, "alice")
        keep_cookie(client)
        record = await record_of(app, client)
        key = f"asgi_oidc:session:{record.sid}"
        checks = []
        for _ in range(3):
            assert (await client.get("/", headers=JSON)).status_code == 200
            now = time.time()  # before PTTL, so the bound errs on the generous side
            pttl = await raw_redis.pttl(key)
            # + 50 ms: the TTL is reckoned from when the request read the clock,
            # a round trip earlier; uncapped, it would be the 30 s idle timeout.
            checks.append((pttl, (record.expires_at - now) * 1000 + 50))
            await asyncio.sleep(0.15)
        others = [k async for k in raw_redis.scan_iter("asgi_oidc:*")]
        other_ttls = [await raw_redis.pttl(k) for k in others]
    for pttl, bound in checks:
        assert 0 < pttl <= bound
    assert other_ttls and all(0 < t <= 1000 for t in other_ttls)


async def test_redis_key_ttl_slides_with_the_idle_timeout(
    instance: Factory, raw_redis: redis.Redis
) -> None:
    app = instance(session_ttl=30, session_idle_ttl=0.5, session_cache_ttl=0)
    async with app_client(app) as client:
        await login(client, "alice")
        key = f"asgi_oidc:session:{sid_of(app, client)}"
        await asyncio.sleep(0.2)
        lowered = await raw_redis.pttl(key)
        assert (await client.get("/", headers=JSON)).status_code == 200
        slid = await raw_redis.pttl(key)
    assert 0 < lowered < slid <= 500
