"""The shared store: real Redis through ``redis.asyncio``.

Every instance that points at the same Redis sees the same state records,
sessions and indexes, so a login may begin on one instance and finish on
another, and a logout published on one reaches all of them.

Keys are used exactly as given: callers add the configured prefix and, where
keys must live together, a Cluster ``{hash tag}``. Every operation here touches
one key, except ``delete(*keys)``, which deletes several in one ``DEL``: the
keys passed to one call must share a hash slot (one hash tag), or Redis
Cluster refuses the command. The ``set_add`` transaction and the
``delete_if_equals`` script touch a single key. ``PUBLISH`` reaches every node
of a Cluster.

Failures: every error from Redis, the connection or a timeout is raised as
:class:`~asgi_oidc.errors.StoreUnavailable`, whose text names a masked URL
(never a password). The client built from a URL retries a failed command once
on a fresh connection, so a connection that died while idle in the pool (Redis
restarted) costs nothing, and a Redis that is down is reported at once
instead of after redis-py's default ladder of ten retries. A Redis that
accepts connections but does not answer is reported after one
``socket_timeout`` (or ``connect_timeout``): timeouts are not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import redis.asyncio
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from asgi_oidc.errors import ConfigError, StoreUnavailable
from asgi_oidc.stores.base import INTERRUPTED, InvalidationHandler
from asgi_oidc.stores.memory import _deliver

__all__ = ["RedisStore", "mask_url"]

logger = logging.getLogger("asgi_oidc")

#: What "Redis cannot be reached" looks like from here (asyncio.TimeoutError
#: is TimeoutError, an OSError, from 3.11 on; listed for 3.10).
_UNAVAILABLE = (RedisError, OSError, asyncio.TimeoutError)

#: A connection idle longer than this is PINGed before it is used again; on a
#: subscription connection it keeps a quiet channel checked.
_HEALTH_CHECK_INTERVAL = 30

#: How long the subscription loop waits for a message before it checks its
#: connection's health again; also bounds how late a cancellation lands.
_POLL_SECONDS = 1.0

#: Backoff between resubscription attempts while Redis is away.
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 1.0

_DELETE_IF_EQUALS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

_QUERY_SECRET = re.compile(r"(?i)(password=)[^&;#]*")


def mask_url(url: str) -> str:
    """Return ``url`` with its password (and a bare userinfo) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable Redis URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        # Without a colon the userinfo may well be a password given the old
        # way (redis://secret@host); hide it too.
        netloc = f"{user}:***@{hostport}" if colon else f"***@{hostport}"
    query = _QUERY_SECRET.sub(r"\1***", parts.query)
    # Built by hand: urlunsplit drops the empty authority of unix:///path.
    masked = f"{parts.scheme}://{netloc}{parts.path}"
    if query:
        masked += f"?{query}"
    if parts.fragment:
        masked += f"#{parts.fragment}"
    return masked


def _milliseconds(ttl: float) -> int:
    """Turn a TTL in seconds into whole milliseconds, at least 1."""
    if not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError(f"ttl must be a finite number of seconds above 0, not {ttl!r}")
    return max(1, round(ttl * 1000))


class RedisStore:
    """A :class:`~asgi_oidc.stores.Store` on Redis, shared by every instance.

    Give either ``url`` (``redis://``, ``rediss://`` or ``unix://``; the store
    then owns its connection pool and closes it in :meth:`close`) or
    ``client``, a ``redis.asyncio.Redis`` built without ``decode_responses``
    that stays the caller's: its own timeouts and retry policy apply, and
    :meth:`close` leaves it open. ``socket_timeout`` and ``connect_timeout``
    (seconds) apply to a client built from ``url``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.asyncio.Redis | None = None,
        socket_timeout: float = 2.0,
        connect_timeout: float = 2.0,
    ) -> None:
        """Build the client (no connection is made until the first command)."""
        if url is not None and client is not None:
            raise ConfigError("redis_url", "give a Redis URL or a client, not both")
        self._owns_client = client is None
        if client is None:
            if url is None:
                raise ConfigError("redis_url", "give a Redis URL or a client")
            self._where = mask_url(url)
            try:
                client = redis.asyncio.Redis.from_url(
                    url,
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=connect_timeout,
                    # One retry, on a fresh connection, after a connection error
                    # only: enough to get past a connection that died idle in the
                    # pool (Redis restarted), and a Redis that is down is reported
                    # at once. A timeout is not retried: a hung Redis would
                    # otherwise hold each request for several timeouts. (This
                    # replaces the deprecated ``retry_on_timeout``.)
                    retry=Retry(
                        ExponentialWithJitterBackoff(base=0.01, cap=0.05),
                        retries=1,
                        supported_errors=(RedisConnectionError,),
                    ),
                    health_check_interval=_HEALTH_CHECK_INTERVAL,
                )
            except (ValueError, TypeError) as exc:
                # redis-py's messages here can quote the URL: name the masked one.
                raise ConfigError(
                    "redis_url", f"{self._where} is not a usable Redis URL ({type(exc).__name__})"
                ) from None
        else:
            kwargs = client.connection_pool.connection_kwargs
            self._where = _describe_client(kwargs)
            if kwargs.get("decode_responses"):
                raise ConfigError(
                    "store", "the Redis client must not use decode_responses: values are bytes"
                )
        self._client = client
        settings = client.connection_pool.connection_kwargs
        # How long to wait for Redis to confirm a SUBSCRIBE.
        self._confirm_timeout: float = settings.get("socket_timeout") or 5.0
        password = settings.get("password")
        # Redis error texts do not carry the password; scrub them anyway, in
        # both the plain and the URL-quoted spelling.
        self._secrets = tuple({password, quote(password, safe="")}) if password else ()
        self._delete_if_equals = client.register_script(_DELETE_IF_EQUALS)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r})"

    # -- internals

    def _detail(self, operation: str, exc: BaseException) -> str:
        text = f"Redis {operation} failed at {self._where}: {type(exc).__name__}: {exc}"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @contextlib.contextmanager
    def _unavailable(self, operation: str) -> Iterator[None]:
        """Raise every way of not reaching Redis as StoreUnavailable."""
        try:
            yield
        except _UNAVAILABLE as exc:
            # ``from None``: the chained error would be printed with tracebacks,
            # and its text is not ours to vouch for.
            raise StoreUnavailable(self._detail(operation, exc)) from None

    # -- the Store contract

    async def get(self, key: str) -> bytes | None:
        """Return the value, or ``None`` when absent or expired (``GET``)."""
        with self._unavailable("GET"):
            return _as_bytes(await self._client.get(key))

    async def get_and_expire(self, key: str, ttl: float) -> bytes | None:
        """Return the value and reset its TTL in one ``GETEX … PX``."""
        px = _milliseconds(ttl)
        with self._unavailable("GETEX"):
            return _as_bytes(await self._client.getex(key, px=px))

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Set ``key`` to ``value`` for ``ttl`` seconds (``SET … PX``)."""
        px = _milliseconds(ttl)
        with self._unavailable("SET"):
            await self._client.set(key, value, px=px)

    async def put_if_present(self, key: str, value: bytes, ttl: float) -> bool:
        """Set ``key`` only if it exists (``SET … XX PX``)."""
        px = _milliseconds(ttl)
        with self._unavailable("SET XX"):
            return bool(await self._client.set(key, value, px=px, xx=True))

    async def put_if_absent(self, key: str, value: bytes, ttl: float) -> bool:
        """Set ``key`` only if it does not exist (``SET … NX PX``)."""
        px = _milliseconds(ttl)
        with self._unavailable("SET NX"):
            return bool(await self._client.set(key, value, px=px, nx=True))

    async def take(self, key: str) -> bytes | None:
        """Read and delete ``key`` in one atomic ``GETDEL``."""
        with self._unavailable("GETDEL"):
            return _as_bytes(await self._client.getdel(key))

    async def delete(self, *keys: str) -> None:
        """Delete the keys in one ``DEL`` (keys of one hash slot only)."""
        if not keys:
            return
        with self._unavailable("DEL"):
            await self._client.delete(*keys)

    async def expire(self, key: str, ttl: float) -> bool:
        """Reset the TTL of an existing key (``PEXPIRE``); ``False`` when absent."""
        px = _milliseconds(ttl)
        with self._unavailable("PEXPIRE"):
            return bool(await self._client.pexpire(key, px))

    async def set_add(self, key: str, member: str, ttl: float) -> None:
        """``SADD`` and ``PEXPIRE`` in one ``MULTI`` transaction on one key."""
        px = _milliseconds(ttl)
        with self._unavailable("SADD"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.sadd(key, member)
                pipe.pexpire(key, px)
                await pipe.execute()

    async def set_remove(self, key: str, member: str) -> None:
        """Remove ``member`` from the set at ``key`` (``SREM``)."""
        with self._unavailable("SREM"):
            await self._client.srem(key, member)

    async def set_members(self, key: str) -> set[str]:
        """Return the members of the set at ``key`` (``SMEMBERS``)."""
        with self._unavailable("SMEMBERS"):
            members = await self._client.smembers(key)
        return {m.decode() if isinstance(m, bytes) else m for m in members}

    async def delete_if_equals(self, key: str, value: bytes) -> bool:
        """Delete ``key`` only if it holds ``value``, in one Lua script."""
        with self._unavailable("EVALSHA"):
            return bool(await self._delete_if_equals(keys=[key], args=[value]))

    async def publish(self, channel: str, message: str) -> None:
        """``PUBLISH`` ``message`` to every subscriber, in every process."""
        with self._unavailable("PUBLISH"):
            await self._client.publish(channel, message)

    async def subscribe(self, channel: str, handler: InvalidationHandler) -> None:
        """Call ``handler`` for every message on ``channel`` until :meth:`close`.

        A background task holds its own subscription connection. This returns
        once the subscription is confirmed, so a message published afterwards
        is delivered; or, when Redis is unreachable, after the first failed
        attempt (it logs a warning and does not raise). Either way the task
        keeps resubscribing whenever Redis goes away and comes back; messages
        published meanwhile are lost, as Redis pub/sub always loses them.
        Handlers run one message at a time, in order; what they raise is
        logged and the subscription goes on.
        """
        if self._closed:
            raise RuntimeError("RedisStore.subscribe called after close")
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            self._listen(channel, handler, ready), name=f"asgi_oidc subscription {channel!r}"
        )
        self._tasks.add(task)

        def finished(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            _resolve(ready)  # never leave subscribe() waiting on a dead task

        task.add_done_callback(finished)
        await ready

    async def ping(self) -> None:
        """``PING``; raise StoreUnavailable when Redis cannot be reached."""
        with self._unavailable("PING"):
            await self._client.ping()

    async def close(self) -> None:
        """Stop the subscriptions; close the pool if this store built it."""
        if self._closed:
            return
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._owns_client:
            with contextlib.suppress(*_UNAVAILABLE):
                await self._client.aclose()

    # -- the subscription task

    async def _listen(
        self, channel: str, handler: InvalidationHandler, ready: asyncio.Future[None]
    ) -> None:
        delay = _BACKOFF_FIRST
        lost = False
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(channel)
                await self._confirmed(pubsub)
                if lost:
                    logger.warning("Redis is back at %s: resubscribed to %r", self._where, channel)
                    # Messages sent while we were away are lost: say so.
                    await _deliver(channel, handler, INTERRUPTED)
                lost = False
                delay = _BACKOFF_FIRST
                _resolve(ready)
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=_POLL_SECONDS
                    )
                    if message is not None and message["type"] == "message":
                        await _deliver(channel, handler, _as_text(message["data"]))
            except Exception as exc:  # the subscription must outlive any error
                if not lost:
                    logger.warning(
                        "%s; resubscribing to %r until Redis is back",
                        self._detail("SUBSCRIBE", exc),
                        channel,
                    )
                    await _deliver(channel, handler, INTERRUPTED)
                lost = True
            finally:
                with contextlib.suppress(*_UNAVAILABLE):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py lacks the hint
            _resolve(ready)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)

    async def _confirmed(self, pubsub: PubSub) -> None:
        """Wait for Redis to confirm the SUBSCRIBE (it is sent without waiting)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._confirm_timeout
        while (remaining := deadline - loop.time()) > 0:
            message = await pubsub.get_message(timeout=remaining)
            if message is not None and message["type"] == "subscribe":
                return
        raise RedisTimeoutError("no confirmation of SUBSCRIBE")


def _resolve(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


def _as_bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _as_text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


def _describe_client(kwargs: dict[str, Any]) -> str:
    """Name a caller's client by where it connects, without credentials."""
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
