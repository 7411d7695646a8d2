"""MemoryStore specifics: the warning, bounded memory, one keyspace."""

from __future__ import annotations

import asyncio
import logging

import pytest

from asgi_oidc.stores import MemoryStore


def test_warns_that_it_serves_one_process(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asgi_oidc"):
        MemoryStore()
    records = [r for r in caplog.records if r.name == "asgi_oidc"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    text = records[0].getMessage()
    assert "this process only" in text
    assert "does not scale past one process" in text
    assert "RedisStore" in text


async def test_expired_entries_are_purged_without_being_read(memory_store: MemoryStore) -> None:
    for i in range(500):
        await memory_store.put(f"short-{i}", b"v", 0.05)
    await memory_store.set_add("short-set", "m", 0.05)
    await asyncio.sleep(0.1)
    # Writes alone (never reading the expired keys) must make room again.
    for i in range(MemoryStore._PURGE_MIN_WRITES):
        await memory_store.put(f"long-{i % 10}", b"v", 10)
    assert len(memory_store._entries) == 10
    assert await memory_store.get("long-0") == b"v"


async def test_memory_stays_bounded_under_churn(memory_store: MemoryStore) -> None:
    # A stream of short-lived entries: the dict never holds many more than
    # the live ones plus one sweep's worth of writes.
    for i in range(6000):
        await memory_store.put(f"k{i}", b"v", 0.001)
        if i % 1000 == 999:
            await asyncio.sleep(0.002)
    assert len(memory_store._entries) <= 2 * MemoryStore._PURGE_MIN_WRITES


async def test_reading_an_expired_entry_drops_it(memory_store: MemoryStore) -> None:
    await memory_store.put("k", b"v", 0.05)
    await asyncio.sleep(0.1)
    assert "k" in memory_store._entries
    assert await memory_store.get("k") is None
    assert "k" not in memory_store._entries


async def test_sweep_also_runs_on_a_timer(
    memory_store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MemoryStore, "_PURGE_INTERVAL", 0.05)
    await memory_store.put("old", b"v", 0.01)
    await asyncio.sleep(0.1)
    await memory_store.put("new", b"v", 10)
    assert set(memory_store._entries) == {"new"}


async def test_a_key_holds_a_value_or_a_set(memory_store: MemoryStore) -> None:
    await memory_store.put("v", b"x", 10)
    await memory_store.set_add("s", "m", 10)
    with pytest.raises(TypeError):
        await memory_store.get("s")
    with pytest.raises(TypeError):
        await memory_store.set_add("v", "m", 10)
    assert await memory_store.delete_if_equals("s", b"m") is False


async def test_values_are_copied_in(memory_store: MemoryStore) -> None:
    value = bytearray(b"abc")
    await memory_store.put("k", value, 10)  # type: ignore[arg-type]  # a caller's mistake
    value[0] = ord("X")
    assert await memory_store.get("k") == b"abc"


async def test_publish_has_delivered_when_it_returns(memory_store: MemoryStore) -> None:
    received: list[str] = []

    async def handler(message: str) -> None:
        await asyncio.sleep(0)
        received.append(message)

    await memory_store.subscribe("c", handler)
    await memory_store.publish("c", "m")
    assert received == ["m"]


async def test_close_drops_subscriptions(memory_store: MemoryStore) -> None:
    received: list[str] = []
    await memory_store.subscribe("c", received.append)
    await memory_store.close()
    await memory_store.publish("c", "m")
    assert received == []


async def test_two_memory_stores_share_nothing() -> None:
    one, two = MemoryStore(), MemoryStore()
    await one.put("k", b"v", 10)
    assert await two.get("k") is None
