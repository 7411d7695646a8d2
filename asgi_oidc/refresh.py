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
from collections.abc import Callable
from typing import Any

from .client import ProviderClient
from .config import OIDCConfig
from .errors import (
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


def needs_refresh(record: SessionRecord, now: float, margin: float) -> bool:
    """True when the access token has expired (or will within ``margin``) and
    a refresh token is held."""
    return (
        record.refresh_token is not None
        and record.access_expires_at is not None
        and record.access_expires_at - margin <= now
    )


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

    async def refresh(self, session: Session) -> Session:
        """The session with fresh tokens; raises SessionEnded when refused."""
        sid = session.record.sid
        task = self._in_flight.get(sid)
        if task is None:
            task = asyncio.ensure_future(self._refresh_once(sid))
            self._in_flight[sid] = task
            task.add_done_callback(lambda _t: self._in_flight.pop(sid, None))
        # shield: one cancelled request must not cancel the others' refresh.
        return await asyncio.shield(task)

    async def _refresh_once(self, sid: str) -> Session:
        lock_key = f"{self._prefix}refresh:{{{sid}}}:lock"
        deadline = self._clock() + self._lease
        while True:
            token = secrets.token_urlsafe(16).encode()
            if await self._store.put_if_absent(lock_key, token, self._lease):
                try:
                    return await self._refresh_locked(sid)
                finally:
                    await self._store.delete_if_equals(lock_key, token)
            # Another instance is refreshing: wait for its result.
            while self._clock() < deadline:
                await asyncio.sleep(_POLL_INTERVAL)
                record = await self._sessions.fetch(sid)
                if record is None:
                    raise SessionEnded("session ended during refresh")
                if not self.due(record):
                    return self._sessions.build(record)
                if await self._store.get(lock_key) is None:
                    break  # the winner gave up without a result: try ourselves
            else:
                raise ProviderUnavailable("refresh by another instance did not finish")

    async def _refresh_locked(self, sid: str) -> Session:
        record = await self._sessions.fetch(sid)
        if record is None:
            raise SessionEnded("session ended before refresh")
        if not self.due(record) or record.refresh_token is None:
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
        updated = await self._sessions.replace(record, **changes)
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
            # Core 12.2: iss, sub and aud must be those of the original ID token.
            for name in ("iss", "sub", "aud"):
                if claims.get(name) != record.claims.get(name):
                    raise SubjectMismatch(f"refreshed id token changed {name}")
            merged = dict(record.claims)
            merged.update(claims)
            changes["claims"] = merged
            changes["id_token"] = id_token
        return changes
