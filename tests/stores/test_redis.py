"""RedisStore against a real ``redis-server``: sharing, outages, secrets."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio

from asgi_oidc.errors import ConfigError, StoreUnavailable
from asgi_oidc.stores import RedisStore
from asgi_oidc.stores.redis import mask_url
from tests.support.redis_server import RedisServer

PASSWORD = "s3cr3t-Pa55word"

#: "Quickly": a store must give up long before a request would time out.
QUICK = 1.0


class Inbox:
    """Collects messages from a subscription and waits for them."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, message: str) -> None:
        self.messages.append(message)
        self._changed.set()

    async def wait_for(self, message: str, timeout: float = 2.0) -> None:
        async def arrived() -> None:
            while message not in self.messages:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(arrived(), timeout)


async def publish_until_received(
    publisher: RedisStore, inbox: Inbox, channel: str, timeout: float = 5.0
) -> None:
    """Publish until the subscriber has one: it resubscribes in the background."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        message = f"after-restart-{attempt}"
        try:
            await publisher.publish(channel, message)
            await inbox.wait_for(message, timeout=0.1)
            return
        except (StoreUnavailable, asyncio.TimeoutError):
            if time.monotonic() > deadline:
                raise


# -- two instances, one Redis


async def test_two_stores_see_each_others_writes(redis_url: str) -> None:
    one, two = RedisStore(redis_url), RedisStore(redis_url)
    try:
        await one.put("state:abc", b"record", 10)
        assert await two.take("state:abc") == b"record"
        assert await one.take("state:abc") is None
        await two.set_add("{sub:alice}:sessions", "s1", 10)
        await one.set_add("{sub:alice}:sessions", "s2", 10)
        assert await two.set_members("{sub:alice}:sessions") == {"s1", "s2"}
        assert await one.put_if_absent("lock", b"one", 10) is True
        assert await two.put_if_absent("lock", b"two", 10) is False
        assert await two.delete_if_equals("lock", b"one") is True
    finally:
        await one.close()
        await two.close()


async def test_two_stores_see_each_others_messages(redis_url: str) -> None:
    one, two = RedisStore(redis_url), RedisStore(redis_url)
    try:
        inbox_one, inbox_two = Inbox(), Inbox()
        await one.subscribe("invalidate", inbox_one)
        await two.subscribe("invalidate", inbox_two)
        await one.publish("invalidate", "from-one")
        await two.publish("invalidate", "from-two")
        for inbox in (inbox_one, inbox_two):
            await inbox.wait_for("from-one")
            await inbox.wait_for("from-two")
    finally:
        await one.close()
        await two.close()


async def test_keys_are_used_as_given_and_ttls_are_milliseconds(
    redis_store: RedisStore, redis_url: str
) -> None:
    await redis_store.put("asgi_oidc:{sid}:session", b"v", 1.5)
    await redis_store.set_add("asgi_oidc:{sub}:index", "s", 2.25)
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert sorted(await raw.keys("*")) == [b"asgi_oidc:{sid}:session", b"asgi_oidc:{sub}:index"]
        assert 1400 < await raw.pttl("asgi_oidc:{sid}:session") <= 1500
        assert 2150 < await raw.pttl("asgi_oidc:{sub}:index") <= 2250
        assert await redis_store.expire("asgi_oidc:{sid}:session", 0.25)
        assert 150 < await raw.pttl("asgi_oidc:{sid}:session") <= 250
        assert await redis_store.get_and_expire("asgi_oidc:{sid}:session", 3) == b"v"
        assert 2900 < await raw.pttl("asgi_oidc:{sid}:session") <= 3000
    finally:
        await raw.aclose()


# -- secrets


@pytest.mark.usefixtures("redis_url")  # restarts the server afterwards
async def test_password_never_appears_when_redis_is_unreachable(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.stop()
    store = RedisStore(f"redis://user:{PASSWORD}@127.0.0.1:{redis_server.port}/0")
    try:
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(StoreUnavailable) as caught:
                await store.get("k")
            await store.subscribe("c", lambda message: None)
        assert PASSWORD not in str(caught.value)
        assert PASSWORD not in caught.value.detail
        assert PASSWORD not in repr(caught.value)
        assert "user:***@127.0.0.1" in str(caught.value)
        assert PASSWORD not in repr(store)
        assert PASSWORD not in caplog.text
    finally:
        await store.close()


async def test_password_never_appears_when_redis_refuses_it(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = redis.asyncio.Redis.from_url(redis_url)
    await admin.acl_setuser("alice", enabled=True, passwords=["+the-right-one"], commands=["+@all"])
    store = RedisStore(redis_url.replace("redis://", f"redis://alice:{PASSWORD}@"))
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(StoreUnavailable) as caught:
            await store.ping()
        assert "AuthenticationError" in str(caught.value)
        assert PASSWORD not in str(caught.value)
        assert PASSWORD not in caplog.text
    finally:
        await store.close()
        await admin.acl_deluser("alice")
        await admin.aclose()


def test_password_never_appears_in_a_bad_url() -> None:
    with pytest.raises(ConfigError) as caught:
        RedisStore(f"http://user:{PASSWORD}@127.0.0.1:6379/0")
    assert caught.value.field == "redis_url"
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        (f"redis://:{PASSWORD}@host:6379/0", "redis://:***@host:6379/0"),
        (f"rediss://user:{PASSWORD}@host/1", "rediss://user:***@host/1"),
        (f"redis://{PASSWORD}@host", "redis://***@host"),
        (
            f"unix:///run/redis.sock?db=2&password={PASSWORD}",
            "unix:///run/redis.sock?db=2&password=***",
        ),
        ("redis://user:p%40ss%3Aword@host", "redis://user:***@host"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# -- construction


def test_needs_a_url_or_a_client() -> None:
    with pytest.raises(ConfigError):
        RedisStore()


async def test_not_both_a_url_and_a_client(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        with pytest.raises(ConfigError):
            RedisStore(redis_url, client=client)
    finally:
        await client.aclose()


async def test_refuses_a_decoding_client(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ConfigError, match="decode_responses"):
            RedisStore(client=client)
    finally:
        await client.aclose()


async def test_a_passed_in_client_stays_open(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        store = RedisStore(client=client)
        inbox = Inbox()
        await store.subscribe("c", inbox)
        await store.put("k", b"v", 10)
        await store.publish("c", "m")
        await inbox.wait_for("m")
        await store.close()
        assert await client.get("k") == b"v"
        assert await client.ping()
        assert "127.0.0.1" in repr(store)
    finally:
        await client.aclose()


# -- Redis goes away and comes back


def every_operation(store: RedisStore) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "get": lambda: store.get("k"),
        "get_and_expire": lambda: store.get_and_expire("k", 10),
        "put": lambda: store.put("k", b"v", 10),
        "put_if_absent": lambda: store.put_if_absent("k", b"v", 10),
        "take": lambda: store.take("k"),
        "delete": lambda: store.delete("{t}a", "{t}b"),
        "expire": lambda: store.expire("k", 10),
        "set_add": lambda: store.set_add("s", "m", 10),
        "set_remove": lambda: store.set_remove("s", "m"),
        "set_members": lambda: store.set_members("s"),
        "delete_if_equals": lambda: store.delete_if_equals("k", b"v"),
        "publish": lambda: store.publish("c", "m"),
        "ping": store.ping,
    }


async def test_redis_down_then_back(redis_server: RedisServer, redis_store: RedisStore) -> None:
    inbox = Inbox()
    await redis_store.subscribe("invalidate", inbox)
    # Fill the pool with connections that are about to die.
    await asyncio.gather(*(redis_store.put(f"k{i}", b"v", 10) for i in range(5)))
    await redis_store.publish("invalidate", "before")
    await inbox.wait_for("before")

    redis_server.stop()
    for name, operation in every_operation(redis_store).items():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await operation()
        assert time.monotonic() - started < QUICK, name

    redis_server.start()
    # The same store object, not rebuilt: the pool reconnects on its own.
    await redis_store.put("k", b"back", 10)
    assert await redis_store.get("k") == b"back"
    for operation in every_operation(redis_store).values():
        await operation()  # none raises
    await publish_until_received(redis_store, inbox, "invalidate")


async def test_a_restart_between_calls_costs_no_error(
    redis_server: RedisServer, redis_store: RedisStore
) -> None:
    # Every pooled connection dies while idle; the next calls must not see it.
    await asyncio.gather(*(redis_store.put(f"k{i}", b"v", 10) for i in range(5)))
    redis_server.stop()
    redis_server.start()
    results = await asyncio.gather(*(redis_store.get(f"k{i}") for i in range(5)))
    assert results == [None] * 5  # data is gone (no persistence), errors are not
    await redis_store.ping()
    assert await redis_store.delete_if_equals("k", b"v") is False  # the script is reloaded


async def test_subscribe_while_redis_is_down(
    redis_server: RedisServer, redis_store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.stop()
    inbox = Inbox()
    started = time.monotonic()
    await redis_store.subscribe("invalidate", inbox)  # does not raise
    assert time.monotonic() - started < QUICK
    assert "resubscribing" in caplog.text
    redis_server.start()
    await publish_until_received(redis_store, inbox, "invalidate")
    assert "resubscribed" in caplog.text


async def test_a_hanging_redis_times_out() -> None:
    # A listener that accepts connections and never answers: a hung Redis.
    writers: list[asyncio.StreamWriter] = []

    async def accept_and_hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept_and_hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3, connect_timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            await store.get("k")
        # One timeout, not one per retry.
        assert time.monotonic() - started < 0.9
        assert "Timeout" in str(caught.value)
    finally:
        await store.close()
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_close_stops_subscriptions(redis_store: RedisStore) -> None:
    await redis_store.subscribe("a", lambda message: None)
    await redis_store.subscribe("b", lambda message: None)
    tasks = {t for t in asyncio.all_tasks() if t.get_name().startswith("asgi_oidc subscription")}
    assert len(tasks) == 2
    await redis_store.close()
    assert all(t.done() for t in tasks)
    with pytest.raises(RuntimeError):
        await redis_store.subscribe("c", lambda message: None)


# -- the test server itself


def test_a_missing_redis_server_skips_locally_and_fails_on_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y redis-server"):
        RedisServer()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y redis-server"):
        RedisServer()
