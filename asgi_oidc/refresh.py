"""Refreshing a session's tokens: one refresh per session across every
instance, the others reusing its result.

Within a process, concurrent requests of one session share one task; across
processes, a Redis lock with a lease (longer than the HTTP timeout) picks the
instance that calls the provider, and the others watch the session record
until the winner has stored the new tokens.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from .client import ProviderClient
from .config import OIDCConfig
from .errors import (
    InvalidNonce,
    OIDCError,
    ProviderUnavailable,
    RefreshRefused,
    SessionEnded,
    SubjectMismatch,
    TokenValidationError,
)
from .sessions import Session, SessionManager, SessionRecord
from .stores.base import Store

__all__ = ["Refresher", "needs_refresh"]

logger = logging.getLogger("asgi_oidc")

_POLL_INTERVAL = 0.05

#: What identifies one set of tokens: a refresh replaces it.
_Version = tuple[str | None, float | None]


def needs_refresh(record: SessionRecord, now: float, margin: float) -> bool:
    """True when the access token has expired (or will within ``margin``) and
    a refresh token is held."""
    return (
        # An empty refresh token is none: Authlib would fall back on the last
        # token its shared client saw, which may be another user's.
        bool(record.refresh_token)
        and record.access_expires_at is not None
        and record.access_expires_at - margin <= now
    )


def _version(record: SessionRecord) -> _Version:
    return (record.access_token, record.access_expires_at)


def _audiences(claims: Mapping[str, Any]) -> frozenset[str] | None:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return frozenset((aud,))
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return frozenset(aud)
    return None


class Refresher:
    """Single-flight token refresh for sessions."""

    def __init__(
        self,
        config: OIDCConfig,
        store: Store,
        provider: ProviderClient,
        sessions: SessionManager,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._provider = provider
        self._sessions = sessions
        self._prefix = config.key_prefix
        self._margin = config.refresh_margin
        self._lease = config.refresh_lock_ttl
        self._clock = clock
        self._in_flight: dict[str, asyncio.Task[Session]] = {}

    def due(self, record: SessionRecord) -> bool:
        """Whether this record must be refreshed before use."""
        return needs_refresh(record, self._clock(), self._margin)

    def _replaced(self, record: SessionRecord, seen: _Version) -> bool:
        # Not "no longer due": a provider whose tokens live less than the
        # margin would have every waiter refresh again.
        return _version(record) != seen or not self.due(record)

    async def refresh(self, session: Session) -> Session:
        """The session with fresh tokens; raises SessionEnded when refused."""
        sid = session.record.sid
        task = self._in_flight.get(sid)
        if task is None:
            task = asyncio.ensure_future(self._refresh_once(sid, _version(session.record)))
            self._in_flight[sid] = task
            task.add_done_callback(lambda _t: self._in_flight.pop(sid, None))
        # shield: one cancelled request must not cancel the others' refresh.
        return await asyncio.shield(task)

    async def _refresh_once(self, sid: str, seen: _Version) -> Session:
        lock_key = f"{self._prefix}refresh:{{{sid}}}:lock"
        deadline = self._clock() + self._lease
        while True:
            token = secrets.token_urlsafe(16).encode()
            if await self._store.put_if_absent(lock_key, token, self._lease):
                try:
                    return await self._refresh_locked(sid, seen)
                finally:
                    await self._store.delete_if_equals(lock_key, token)
            # Another instance is refreshing: wait for its result.
            while self._clock() < deadline:
                await asyncio.sleep(_POLL_INTERVAL)
                record = await self._sessions.fetch(sid)
                if record is None:
                    raise SessionEnded("session ended during refresh")
                if self._replaced(record, seen):
                    return self._sessions.build(record)
                if await self._store.get(lock_key) is None:
                    break  # the winner gave up without a result: try ourselves
            else:
                raise ProviderUnavailable("refresh by another instance did not finish")

    async def _refresh_locked(self, sid: str, seen: _Version) -> Session:
        record = await self._sessions.fetch(sid)
        if record is None:
            raise SessionEnded("session ended before refresh")
        if self._replaced(record, seen) or not record.refresh_token:
            return self._sessions.build(record)  # another instance just did it
        try:
            token = await self._provider.refresh(record.refresh_token)
            changes = await self._changes(record, token)
        except RefreshRefused:
            logger.info("asgi_oidc: refresh refused; ending session")
            await self._sessions.end(record)
            raise SessionEnded("refresh refused") from None
        except TokenValidationError as exc:
            logger.warning("asgi_oidc: refreshed id token refused (%s)", type(exc).__name__)
            await self._sessions.end(record)
            raise SessionEnded("refreshed id token refused") from None
        except OIDCError:
            raise  # provider down: the session stays, the request gets 503
        # The provider call took a while: a logout or revocation meanwhile
        # must not be undone by writing the record back.
        current = await self._sessions.fetch(sid)
        if current is None:
            raise SessionEnded("session ended during refresh")
        updated = await self._sessions.replace(current, **changes)
        if updated is None:  # ended between that read and the write
            raise SessionEnded("session ended during refresh")
        return self._sessions.build(updated)

    async def _changes(self, record: SessionRecord, token: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {"access_token": token["access_token"]}
        if isinstance(token.get("refresh_token"), str):
            changes["refresh_token"] = token["refresh_token"]  # rotated
        expires_in = token.get("expires_in")
        changes["access_expires_at"] = (
            self._clock() + float(expires_in) if isinstance(expires_in, (int, float)) else None
        )
        id_token = token.get("id_token")
        if isinstance(id_token, str):
            claims = await self._provider.validator.validate_id_token(id_token, nonce=None)
            # Core 12.2: iss, sub and aud must be those of the original ID
            # token (aud compared as a set: "a" and ["a"] are one audience),
            # and a nonce, if any, the original one.
            for name in ("iss", "sub"):
                if claims.get(name) != record.claims.get(name):
                    raise SubjectMismatch(f"refreshed id token changed {name}")
            if _audiences(claims) != _audiences(record.claims):
                raise SubjectMismatch("refreshed id token changed aud")
            if "nonce" in claims and claims["nonce"] != record.claims.get("nonce"):
                raise InvalidNonce("refreshed id token changed nonce")
            merged = dict(record.claims)
            merged.update(claims)
            changes["claims"] = merged
            changes["id_token"] = id_token
        return changes
