"""The Store contract, run against every store (``store`` is parametrized)."""

from __future__ import annotations

import asyncio

import pytest

from asgi_oidc.stores import MemoryStore, RedisStore, Store

SHORT_TTL = 0.15
PAST_SHORT_TTL = 0.3


async def eventually(condition: asyncio.Event, timeout: float = 2.0) -> None:
    """Wait for ``condition``; pub/sub delivery is asynchronous in Redis."""
    await asyncio.wait_for(condition.wait(), timeout)


def stores_meet_the_contract(memory: MemoryStore, redis: RedisStore) -> list[Store]:
    """Never called: mypy checks here that both classes satisfy ``Store``."""
    return [memory, redis]


def test_is_a_store(store: Store) -> None:
    assert isinstance(store, Store)


async def test_get_absent(store: Store) -> None:
    assert await store.get("absent") is None


async def test_put_then_get(store: Store) -> None:
    await store.put("k", b"\x00binary\xff", 10)
    assert await store.get("k") == b"\x00binary\xff"


async def test_put_overwrites(store: Store) -> None:
    await store.put("k", b"one", 10)
    await store.put("k", b"two", 10)
    assert await store.get("k") == b"two"


async def test_put_expires(store: Store) -> None:
    await store.put("k", b"v", SHORT_TTL)
    assert await store.get("k") == b"v"
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.get("k") is None


async def test_a_tiny_ttl_still_stores_for_a_moment(store: Store) -> None:
    await store.put("k", b"v", 0.0001)  # rounds up to 1 ms, never to "no TTL"
    await asyncio.sleep(0.05)
    assert await store.get("k") is None


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
async def test_ttl_must_be_positive_and_finite(store: Store, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await store.put("k", b"v", ttl)
    with pytest.raises(ValueError, match="ttl"):
        await store.put_if_absent("k", b"v", ttl)
    with pytest.raises(ValueError, match="ttl"):
        await store.put_if_present("k", b"v", ttl)
    with pytest.raises(ValueError, match="ttl"):
        await store.set_add("k", "m", ttl)
    with pytest.raises(ValueError, match="ttl"):
        await store.expire("k", ttl)
    with pytest.raises(ValueError, match="ttl"):
        await store.get_and_expire("k", ttl)
    assert await store.get("k") is None


async def test_get_and_expire_extends(store: Store) -> None:
    await store.put("k", b"v", SHORT_TTL)
    assert await store.get_and_expire("k", 10) == b"v"
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.get("k") == b"v"


async def test_get_and_expire_can_shorten(store: Store) -> None:
    await store.put("k", b"v", 10)
    assert await store.get_and_expire("k", SHORT_TTL) == b"v"
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.get("k") is None


async def test_get_and_expire_absent(store: Store) -> None:
    assert await store.get_and_expire("absent", 10) is None
    assert await store.get("absent") is None


async def test_get_and_expire_expired(store: Store) -> None:
    await store.put("k", b"v", SHORT_TTL)
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.get_and_expire("k", 10) is None
    assert await store.get("k") is None


async def test_put_if_absent(store: Store) -> None:
    assert await store.put_if_absent("k", b"first", 10) is True
    assert await store.put_if_absent("k", b"second", 10) is False
    assert await store.get("k") == b"first"


async def test_put_if_present(store: Store) -> None:
    assert await store.put_if_present("k", b"first", 10) is False
    assert await store.get("k") is None
    await store.put("k", b"first", 10)
    assert await store.put_if_present("k", b"second", 10) is True
    assert await store.get("k") == b"second"


async def test_put_if_present_after_delete_writes_nothing(store: Store) -> None:
    await store.put("k", b"first", 10)
    await store.delete("k")
    assert await store.put_if_present("k", b"second", 10) is False
    assert await store.get("k") is None


async def test_put_if_absent_after_expiry(store: Store) -> None:
    assert await store.put_if_absent("k", b"first", SHORT_TTL) is True
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.put_if_absent("k", b"second", 10) is True
    assert await store.get("k") == b"second"


async def test_put_if_absent_concurrently_sets_once(store: Store) -> None:
    results = await asyncio.gather(
        *(store.put_if_absent("lock", str(i).encode(), 10) for i in range(50))
    )
    assert results.count(True) == 1


async def test_take_returns_once(store: Store) -> None:
    await store.put("state", b"record", 10)
    assert await store.take("state") == b"record"
    assert await store.take("state") is None
    assert await store.get("state") is None


async def test_take_absent(store: Store) -> None:
    assert await store.take("absent") is None


async def test_take_expired(store: Store) -> None:
    await store.put("state", b"record", SHORT_TTL)
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.take("state") is None


async def test_concurrent_takes_return_once(store: Store) -> None:
    await store.put("state", b"record", 10)
    results = await asyncio.gather(*(store.take("state") for _ in range(100)))
    assert [r for r in results if r is not None] == [b"record"]


async def test_delete_several(store: Store) -> None:
    await store.put("{t}a", b"1", 10)
    await store.put("{t}b", b"2", 10)
    await store.put("{t}c", b"3", 10)
    await store.delete("{t}a", "{t}b", "{t}absent")
    assert await store.get("{t}a") is None
    assert await store.get("{t}b") is None
    assert await store.get("{t}c") == b"3"


async def test_delete_nothing(store: Store) -> None:
    await store.delete()
    await store.delete("absent")


async def test_expire_present_key(store: Store) -> None:
    await store.put("k", b"v", SHORT_TTL)
    assert await store.expire("k", 10) is True
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.get("k") == b"v"


async def test_expire_can_shorten(store: Store) -> None:
    await store.put("k", b"v", 10)
    assert await store.expire("k", SHORT_TTL) is True
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.get("k") is None


async def test_expire_absent_key(store: Store) -> None:
    assert await store.expire("absent", 10) is False
    assert await store.get("absent") is None


async def test_expire_expired_key(store: Store) -> None:
    await store.put("k", b"v", SHORT_TTL)
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.expire("k", 10) is False
    assert await store.get("k") is None


async def test_set_add_and_members(store: Store) -> None:
    await store.set_add("s", "a", 10)
    await store.set_add("s", "b", 10)
    await store.set_add("s", "a", 10)
    assert await store.set_members("s") == {"a", "b"}


async def test_set_members_absent(store: Store) -> None:
    assert await store.set_members("absent") == set()


async def test_set_members_is_a_copy(store: Store) -> None:
    await store.set_add("s", "a", 10)
    members = await store.set_members("s")
    members.add("intruder")
    assert await store.set_members("s") == {"a"}


async def test_set_remove(store: Store) -> None:
    await store.set_add("s", "a", 10)
    await store.set_add("s", "b", 10)
    await store.set_remove("s", "a")
    await store.set_remove("s", "never-there")
    await store.set_remove("absent", "a")
    assert await store.set_members("s") == {"b"}


async def test_set_emptied_disappears(store: Store) -> None:
    await store.set_add("s", "a", 10)
    await store.set_remove("s", "a")
    assert await store.set_members("s") == set()
    assert await store.expire("s", 10) is False


async def test_set_expires(store: Store) -> None:
    await store.set_add("s", "a", SHORT_TTL)
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.set_members("s") == set()


async def test_set_add_resets_the_ttl(store: Store) -> None:
    await store.set_add("s", "a", SHORT_TTL)
    await store.set_add("s", "b", 10)
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.set_members("s") == {"a", "b"}


async def test_set_after_expiry_starts_empty(store: Store) -> None:
    await store.set_add("s", "old", SHORT_TTL)
    await asyncio.sleep(PAST_SHORT_TTL)
    await store.set_add("s", "new", 10)
    assert await store.set_members("s") == {"new"}


async def test_set_members_are_text(store: Store) -> None:
    await store.set_add("s", "sïd-ünicode", 10)
    assert await store.set_members("s") == {"sïd-ünicode"}


async def test_expire_on_a_set(store: Store) -> None:
    await store.set_add("s", "a", 10)
    assert await store.expire("s", SHORT_TTL) is True
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.set_members("s") == set()


async def test_delete_a_set(store: Store) -> None:
    await store.set_add("s", "a", 10)
    await store.delete("s")
    assert await store.set_members("s") == set()


async def test_delete_if_equals(store: Store) -> None:
    await store.put("lock", b"mine", 10)
    assert await store.delete_if_equals("lock", b"theirs") is False
    assert await store.get("lock") == b"mine"
    assert await store.delete_if_equals("lock", b"mine") is True
    assert await store.get("lock") is None
    assert await store.delete_if_equals("lock", b"mine") is False


async def test_delete_if_equals_expired(store: Store) -> None:
    await store.put("lock", b"mine", SHORT_TTL)
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.delete_if_equals("lock", b"mine") is False


async def test_publish_subscribe_delivers(store: Store) -> None:
    received: list[str] = []
    arrived = asyncio.Event()

    def handler(message: str) -> None:
        received.append(message)
        if len(received) == 2:
            arrived.set()

    await store.subscribe("invalidate", handler)
    await store.publish("invalidate", "session-1")
    await store.publish("invalidate", "séssion-2")
    await eventually(arrived)
    assert received == ["session-1", "séssion-2"]


async def test_async_handlers_and_several_subscribers(store: Store) -> None:
    first: list[str] = []
    second: list[str] = []
    both = asyncio.Event()

    async def one(message: str) -> None:
        await asyncio.sleep(0)
        first.append(message)
        if second:
            both.set()

    def two(message: str) -> None:
        second.append(message)
        if first:
            both.set()

    await store.subscribe("c", one)
    await store.subscribe("c", two)
    await store.publish("c", "m")
    await eventually(both)
    assert first == ["m"]
    assert second == ["m"]


async def test_other_channels_are_not_delivered(store: Store) -> None:
    received: list[str] = []
    marker = asyncio.Event()

    def handler(message: str) -> None:
        received.append(message)
        if message == "mine":
            marker.set()

    await store.subscribe("mine", handler)
    await store.publish("other", "not mine")
    await store.publish("mine", "mine")
    await eventually(marker)
    assert received == ["mine"]


async def test_publish_without_subscribers(store: Store) -> None:
    await store.publish("nobody-listens", "m")


async def test_a_failing_handler_does_not_stop_delivery(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[str] = []
    done = asyncio.Event()

    def handler(message: str) -> None:
        if message == "secret-session-id":
            raise KeyError(message)
        received.append(message)
        done.set()

    await store.subscribe("c", handler)
    await store.publish("c", "secret-session-id")
    await store.publish("c", "next")
    await eventually(done)
    assert received == ["next"]
    assert "KeyError" in caplog.text
    assert "secret-session-id" not in caplog.text


async def test_ping(store: Store) -> None:
    await store.ping()


async def test_close_twice(store: Store) -> None:
    await store.close()
    await store.close()
