"""The contract every state store meets.

Values are opaque bytes; keys are strings that already carry the configured
prefix. Every write has a TTL: nothing is kept forever. Methods that touch
several keys only ever touch keys of one Redis Cluster hash slot (callers put
a ``{hash tag}`` in such keys). Any failure to reach the backing service is
raised as :class:`asgi_oidc.errors.StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

__all__ = ["INTERRUPTED", "InvalidationHandler", "Store"]

#: Delivered to subscribers when their channel was cut (and again when it is
#: back): messages may have been lost, so anything cached on them is suspect.
INTERRUPTED = ""

#: Called with each message published on the invalidation channel.
InvalidationHandler = Callable[[str], Awaitable[None] | None]


@runtime_checkable
class Store(Protocol):
    """Asynchronous key-value store with TTLs, atomic take and small sets."""

    async def get(self, key: str) -> bytes | None:
        """Return the value, or ``None`` when absent or expired."""

    async def get_and_expire(self, key: str, ttl: float) -> bytes | None:
        """Return the value and reset its TTL in one step (Redis ``GETEX PX``)."""

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Set ``key`` to ``value`` for ``ttl`` seconds (> 0)."""

    async def put_if_present(self, key: str, value: bytes, ttl: float) -> bool:
        """Set ``key`` only if it exists (Redis ``SET XX``); ``True`` when set."""

    async def put_if_absent(self, key: str, value: bytes, ttl: float) -> bool:
        """Set ``key`` only if it does not exist; ``True`` when it was set."""

    async def take(self, key: str) -> bytes | None:
        """Atomically read and delete ``key`` (Redis ``GETDEL``)."""

    async def delete(self, *keys: str) -> None:
        """Delete the keys; absent keys are ignored."""

    async def expire(self, key: str, ttl: float) -> bool:
        """Reset the TTL of an existing key; ``False`` when it is absent."""

    async def set_add(self, key: str, member: str, ttl: float) -> None:
        """Add ``member`` to the set at ``key`` and (re)set the set's TTL."""

    async def set_remove(self, key: str, member: str) -> None:
        """Remove ``member`` from the set at ``key``."""

    async def set_members(self, key: str) -> set[str]:
        """Return the members of the set at ``key`` (empty when absent)."""

    async def delete_if_equals(self, key: str, value: bytes) -> bool:
        """Delete ``key`` only if it holds ``value`` (a lock release)."""

    async def publish(self, channel: str, message: str) -> None:
        """Send ``message`` to every subscriber of ``channel``, in every process."""

    async def subscribe(self, channel: str, handler: InvalidationHandler) -> None:
        """Call ``handler`` for every message on ``channel`` until ``close``."""

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""

    async def close(self) -> None:
        """Release connections and stop subscriptions."""
