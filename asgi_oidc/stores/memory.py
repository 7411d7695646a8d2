"""An in-process store for one process: development, the demo and unit tests.

:class:`MemoryStore` keeps everything in a dict in this process, so a second
process (another worker, another instance) sees none of it: logins that begin
on one worker fail on another, and a logout on one instance does not reach the
others. It says so in a warning when it is built; use
:class:`asgi_oidc.stores.RedisStore` for anything that runs more than one
process.

It mirrors Redis semantics where callers can tell the difference: expiry on a
monotonic clock, an emptied set disappears, ``take`` is atomic (no ``await``
between the read and the delete, so no other task can run in between), and a
key holds either a value or a set, never both.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
import traceback

from asgi_oidc.stores.base import InvalidationHandler

__all__ = ["MemoryStore"]

logger = logging.getLogger("asgi_oidc")

_Entry = tuple[bytes | set[str], float]


def _check_ttl(ttl: float) -> float:
    """Return ``ttl`` if it is a finite number of seconds above zero."""
    if not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError(f"ttl must be a finite number of seconds above 0, not {ttl!r}")
    return ttl


async def _deliver(channel: str, handler: InvalidationHandler, message: str) -> None:
    """Call ``handler`` with ``message``; log (never raise) what it raises.

    The log names the exception type and where it was raised, but not its
    text: the message is often a session id, and handlers tend to put what
    they were given into their exceptions (``KeyError(message)``).
    """
    try:
        result = handler(message)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        logger.error(
            "A handler for the store channel %r raised %s at %s; the message was dropped",
            channel,
            type(exc).__name__,
            where,
        )


class MemoryStore:
    """A :class:`~asgi_oidc.stores.Store` in a dict, for one process only.

    Expired entries are dropped when they are read, and a sweep over the
    whole dict runs after enough writes to pay for it (at least as many
    writes as the last sweep left entries behind, and at least once a minute
    while there are writes), so memory stays bounded by the live entries
    without scanning on every call.
    """

    #: A sweep runs after this many writes, or after as many writes as there
    #: were entries left by the last sweep, whichever is more: a sweep then
    #: costs at most twice the writes since the last one, O(1) per write, and
    #: the dict holds at most about twice what was live at the last sweep.
    _PURGE_MIN_WRITES = 1024
    #: ... or after this many seconds, at the next write.
    _PURGE_INTERVAL = 60.0

    def __init__(self) -> None:
        """Build an empty store and warn that it serves this process only."""
        logger.warning(
            "MemoryStore keeps sessions and login state in this process only; it does "
            "not scale past one process (a second worker or instance sees none of it). "
            "Use RedisStore (redis_url=...) in production."
        )
        self._entries: dict[str, _Entry] = {}
        self._handlers: dict[str, list[InvalidationHandler]] = {}
        self._writes_since_purge = 0
        self._left_by_last_purge = 0
        self._last_purge = time.monotonic()

    def __repr__(self) -> str:
        return f"MemoryStore(<{len(self._entries)} entries>)"

    # -- internals: every method below runs without awaiting, hence atomically.

    def _live(self, key: str) -> _Entry | None:
        """Return the entry at ``key`` unless it has expired (then drop it)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._entries[key]
            return None
        return entry

    def _value(self, key: str) -> bytes | None:
        entry = self._live(key)
        if entry is None:
            return None
        if not isinstance(entry[0], bytes):
            raise TypeError("MemoryStore: this key holds a set, not a value")
        return entry[0]

    def _set(self, key: str) -> set[str] | None:
        entry = self._live(key)
        if entry is None:
            return None
        if not isinstance(entry[0], set):
            raise TypeError("MemoryStore: this key holds a value, not a set")
        return entry[0]

    def _write(self, key: str, value: bytes | set[str], ttl: float) -> None:
        now = time.monotonic()
        self._entries[key] = (value, now + _check_ttl(ttl))
        self._writes_since_purge += 1
        if (
            self._writes_since_purge >= max(self._PURGE_MIN_WRITES, self._left_by_last_purge)
            or now - self._last_purge >= self._PURGE_INTERVAL
        ):
            self._purge(now)

    def _purge(self, now: float) -> None:
        """Drop every expired entry (the amortised sweep)."""
        expired = [key for key, (_, deadline) in self._entries.items() if deadline <= now]
        for key in expired:
            del self._entries[key]
        self._writes_since_purge = 0
        self._left_by_last_purge = len(self._entries)
        self._last_purge = now

    # -- the Store contract

    async def get(self, key: str) -> bytes | None:
        """Return the value, or ``None`` when absent or expired."""
        return self._value(key)

    async def get_and_expire(self, key: str, ttl: float) -> bytes | None:
        """Return the value and reset its TTL in one step (like ``GETEX PX``)."""
        _check_ttl(ttl)
        value = self._value(key)
        if value is not None:
            self._write(key, value, ttl)
        return value

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Set ``key`` to ``value`` for ``ttl`` seconds (> 0)."""
        self._write(key, bytes(value), ttl)

    async def put_if_present(self, key: str, value: bytes, ttl: float) -> bool:
        """Set ``key`` only if it exists; ``True`` when it was set."""
        _check_ttl(ttl)
        if self._live(key) is None:
            return False
        self._write(key, bytes(value), ttl)
        return True

    async def put_if_absent(self, key: str, value: bytes, ttl: float) -> bool:
        """Set ``key`` only if it does not exist; ``True`` when it was set."""
        _check_ttl(ttl)
        if self._live(key) is not None:
            return False
        self._write(key, bytes(value), ttl)
        return True

    async def take(self, key: str) -> bytes | None:
        """Read and delete ``key`` in one step (no other task runs in between)."""
        value = self._value(key)
        if value is not None:
            del self._entries[key]
        return value

    async def delete(self, *keys: str) -> None:
        """Delete the keys; absent keys are ignored."""
        for key in keys:
            self._entries.pop(key, None)

    async def expire(self, key: str, ttl: float) -> bool:
        """Reset the TTL of an existing key; ``False`` when it is absent."""
        _check_ttl(ttl)
        entry = self._live(key)
        if entry is None:
            return False
        self._write(key, entry[0], ttl)
        return True

    async def set_add(self, key: str, member: str, ttl: float) -> None:
        """Add ``member`` to the set at ``key`` and (re)set the set's TTL."""
        _check_ttl(ttl)
        members = self._set(key)
        if members is None:
            members = set()
        members.add(member)
        self._write(key, members, ttl)

    async def set_remove(self, key: str, member: str) -> None:
        """Remove ``member``; the set disappears when it empties, as in Redis."""
        members = self._set(key)
        if members is None:
            return
        members.discard(member)
        if not members:
            del self._entries[key]

    async def set_members(self, key: str) -> set[str]:
        """Return a copy of the members of the set at ``key`` (empty when absent)."""
        members = self._set(key)
        return set(members) if members is not None else set()

    async def delete_if_equals(self, key: str, value: bytes) -> bool:
        """Delete ``key`` only if it holds ``value`` (a lock release)."""
        entry = self._live(key)
        if entry is None or entry[0] != value:
            return False
        del self._entries[key]
        return True

    async def publish(self, channel: str, message: str) -> None:
        """Call the handlers subscribed on this store object, one after another.

        Unlike Redis, delivery has finished when this returns, and it reaches
        only this store object: there is no other process to reach.
        """
        for handler in list(self._handlers.get(channel, ())):
            await _deliver(channel, handler, message)

    async def subscribe(self, channel: str, handler: InvalidationHandler) -> None:
        """Call ``handler`` for every message published on ``channel`` here."""
        self._handlers.setdefault(channel, []).append(handler)

    async def ping(self) -> None:
        """Return at once: a dict is always reachable."""

    async def close(self) -> None:
        """Drop the subscriptions (the data stays until it expires)."""
        self._handlers.clear()
