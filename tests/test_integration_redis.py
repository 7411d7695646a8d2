"""Several instances sharing one real redis-server: a login begun on one ends
on another, a logout on one is seen by all, and Redis going away fails closed.
"""

from __future__ import annotations

import asyncio

from tests.support.app_fixtures import Factory
from tests.support.apps import echo_app
from tests.support.flow import (
    HTML,
    JSON,
    app_client,
    authorize,
    begin_login,
    finish_login,
    login,
)
from tests.support.redis_server import RedisServer

COOKIE = "__Host-asgi_oidc"


async def test_login_begun_on_one_instance_finishes_on_another(instance: Factory) -> None:
    first, second = instance(), instance()
    async with app_client(first) as on_first, app_client(second) as on_second:
        location = await begin_login(on_first, "/dashboard")
        callback = await authorize(location, "alice")
        # The browser's cookies travel with it to whichever instance answers.
        on_second.cookies = on_first.cookies
        done = await finish_login(on_second, callback)
        assert done.status_code == 302
        assert done.headers["location"].endswith("/dashboard")
        on_first.cookies = on_second.cookies
        seen_first = await on_first.get("/dashboard", headers=JSON)
        seen_second = await on_second.get("/dashboard", headers=JSON)
    assert seen_first.json()["sub"] == "alice"
    assert seen_second.json()["sub"] == "alice"


async def test_logout_on_one_instance_is_seen_by_the_other_at_once(instance: Factory) -> None:
    first, second = instance(), instance()
    async with app_client(first) as on_first, app_client(second) as on_second:
        await login(on_first, "bob")
        on_second.cookies = on_first.cookies
        # Warm the second instance's in-process cache.
        assert (await on_second.get("/", headers=JSON)).json()["sub"] == "bob"
        assert (await on_first.get("/oauth2/logout", headers=HTML)).status_code == 302
        on_second.cookies.set(COOKIE, on_first.cookies.get(COOKIE) or "")
        refused = await on_second.get("/", headers=JSON)
        for _ in range(50):
            if refused.status_code == 401:
                break
            # Pub/sub delivery takes a round trip; milliseconds, not the cache's seconds.
            await asyncio.sleep(0.01)
            refused = await on_second.get("/", headers=JSON)
    assert refused.status_code == 401


async def test_revoke_by_subject_ends_every_session(instance: Factory) -> None:
    first, second = instance(), instance()
    async with app_client(first) as browser_a, app_client(second) as browser_b:
        await login(browser_a, "alice")
        await login(browser_b, "alice")
        ended = await first.revoke(sub="alice")
        await asyncio.sleep(0.05)
        after_a = await browser_a.get("/", headers=JSON)
        after_b = await browser_b.get("/", headers=JSON)
    assert ended == 2
    assert after_a.status_code == 401 and after_b.status_code == 401


async def test_revoke_by_session_id(instance: Factory) -> None:
    app = instance()
    seen: list[str] = []

    async def capture(scope: dict[str, object], receive: object, send: object) -> None:
        seen.append(getattr(scope["user"], "session_id", ""))
        await echo_app(scope, receive, send)  # type: ignore[arg-type]

    app.app = capture  # type: ignore[assignment]
    async with app_client(app) as client:
        await login(client)
        await client.get("/", headers=JSON)
        assert await app.revoke(session_id=seen[-1]) == 1
        after = await client.get("/", headers=JSON)
    assert after.status_code == 401


async def test_state_is_held_in_redis_with_a_ttl(instance: Factory, redis_url: str) -> None:
    import redis.asyncio as redis

    app = instance(state_ttl=120)
    async with app_client(app) as client:
        await begin_login(client)
    client_redis = redis.from_url(redis_url)
    try:
        keys = [k async for k in client_redis.scan_iter("asgi_oidc:state:*")]
        assert len(keys) == 1
        ttl = await client_redis.ttl(keys[0])
        assert 0 < ttl <= 120
    finally:
        await client_redis.aclose()


async def test_every_key_has_a_ttl(instance: Factory, redis_url: str) -> None:
    import redis.asyncio as redis

    app = instance()
    async with app_client(app) as client:
        await login(client)
        await client.get("/", headers=JSON)
    client_redis = redis.from_url(redis_url)
    try:
        keys = [k async for k in client_redis.scan_iter("asgi_oidc:*")]
        assert keys
        for key in keys:
            assert await client_redis.pttl(key) > 0, key
    finally:
        await client_redis.aclose()


async def test_redis_down_fails_closed_and_recovers(
    instance: Factory, redis_server: RedisServer
) -> None:
    app = instance()
    async with app_client(app) as client:
        await login(client, "alice")
        assert (await client.get("/", headers=JSON)).status_code == 200
        redis_server.stop()
        try:
            # Give the invalidation channel a moment to notice and drop the cache.
            await asyncio.sleep(0.3)
            api = await client.get("/", headers=JSON)
            page = await client.get("/", headers=HTML)
            callback = await client.get("/oauth2/callback?state=x&code=y", headers=HTML)
            for response in (api, page, callback):
                assert response.status_code == 503
                assert "Traceback" not in response.text
                assert "redis://" not in response.text
            assert api.json()["error"] == "store_unavailable"
            assert "unavailable" in page.text
        finally:
            redis_server.start()
        recovered = await client.get("/", headers=JSON)
        for _ in range(20):
            if recovered.status_code != 503:
                break
            await asyncio.sleep(0.1)
            recovered = await client.get("/", headers=JSON)
        # The throwaway server keeps nothing on disk, so the session went with
        # it: the guard must be working again, and a new login must succeed.
        assert recovered.status_code == 401
        await login(client, "alice")
        again = await client.get("/", headers=JSON)
    assert again.status_code == 200
    assert again.json()["sub"] == "alice"


async def test_redis_down_nothing_let_through_without_cache(
    instance: Factory, redis_server: RedisServer
) -> None:
    app = instance(session_cache_ttl=0)
    async with app_client(app) as client:
        await login(client, "bob")
        redis_server.stop()
        try:
            response = await client.get("/", headers=JSON)
        finally:
            redis_server.start()
    assert response.status_code == 503


async def test_two_tabs_with_redis(instance: Factory) -> None:
    app = instance()
    async with app_client(app) as client:
        first, second = await asyncio.gather(
            begin_login(client, "/one"), begin_login(client, "/two")
        )
        done = await asyncio.gather(
            finish_login(client, await authorize(second, "alice")),
            finish_login(client, await authorize(first, "alice")),
        )
    assert sorted(r.headers["location"].rsplit("/", 1)[-1] for r in done) == ["one", "two"]
