"""Server-side sessions: records in the store, an opaque signed id in the
cookie, indexes for revocation, and a short-lived in-process cache that every
instance invalidates through the store's pub/sub channel.

Key layout (``P`` is the configured prefix; every key has a TTL)::

    P session:<sid>            the session record (JSON)
    P subject:<hash(iss,sub)>  set of sids of one user (revocation)
    P psid:<hash(iss,sid)>     set of sids for one provider session (back-channel)
    P invalidate               pub/sub channel: a sid, or "*" for all
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .config import OIDCConfig
from .cookies import CookieSigner
from .principal import AuthCredentials, Principal, principal_from_claims
from .stores.base import INTERRUPTED, Store

__all__ = ["Session", "SessionManager", "SessionRecord"]

logger = logging.getLogger("asgi_oidc")

_FORMAT = 1


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What the store holds for one session."""

    sid: str
    claims: Mapping[str, Any]
    id_token: str
    created_at: float
    expires_at: float
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    access_expires_at: float | None = None
    provider_sid: str | None = None

    @property
    def sub(self) -> str:
        """The subject of the session."""
        return str(self.claims["sub"])

    @property
    def issuer(self) -> str:
        """The issuer of the session."""
        return str(self.claims["iss"])

    def to_bytes(self) -> bytes:
        """Serialise for the store."""
        data = asdict(self)
        data["v"] = _FORMAT
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> SessionRecord | None:
        """Parse a stored record; ``None`` for anything unreadable."""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.pop("v", None) != _FORMAT:
                return None
            record = cls(**data)
        except (ValueError, TypeError):
            return None
        if not isinstance(record.claims, dict) or "sub" not in record.claims:
            return None
        return record


@dataclass(frozen=True, slots=True)
class Session:
    """A loaded session: its record and the principal built from it once."""

    record: SessionRecord
    principal: Principal
    auth: AuthCredentials


class SessionManager:
    """Creates, loads, ends and revokes sessions in the store."""

    def __init__(
        self,
        config: OIDCConfig,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._store = store
        self._prefix = config.key_prefix
        self._signer = CookieSigner(config.cookie_secret or "", "session")
        self._clock = clock
        self._monotonic = monotonic
        self._ttl = config.session_ttl
        self._idle = config.session_idle_ttl
        self._cache_ttl = config.session_cache_ttl
        self._cache_size = config.session_cache_size
        # cookie value -> (session, monotonic deadline); the key being the
        # whole signed value lets a hit skip the HMAC check.
        self._cache: OrderedDict[str, tuple[Session, float]] = OrderedDict()
        self._channel = f"{self._prefix}invalidate"
        self._subscribed = False
        # Only once the invalidation channel is confirmed may anything be cached.
        self._listening = False
        # Bumped by every invalidation: a load that raced one caches nothing.
        self._generation = 0

    # -- keys -------------------------------------------------------------

    def _session_key(self, sid: str) -> str:
        return f"{self._prefix}session:{sid}"

    def _subject_key(self, issuer: str, sub: str) -> str:
        return f"{self._prefix}subject:{_digest(issuer, sub)}"

    def _psid_key(self, issuer: str, provider_sid: str) -> str:
        return f"{self._prefix}psid:{_digest(issuer, provider_sid)}"

    # -- cookie -----------------------------------------------------------

    def cookie_value(self, sid: str) -> str:
        """The signed cookie value for a session id."""
        return self._signer.sign(sid)

    def sid_from_cookie(self, value: str) -> str | None:
        """The session id in a cookie value, or ``None`` when forged."""
        return self._signer.unsign(value)

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to invalidations from other instances (idempotent)."""
        if self._subscribed or self._cache_ttl <= 0:
            return
        self._subscribed = True
        await self._store.subscribe(self._channel, self._on_invalidate)
        self._listening = True

    def _on_invalidate(self, message: str) -> None:
        self._generation += 1
        if message == "*" or message == INTERRUPTED:
            # "" is how a store says its channel was interrupted: anything
            # may have been missed, so nothing cached can be trusted.
            self._cache.clear()
            return
        self._cache.pop(self.cookie_value(message), None)

    async def create(
        self,
        claims: Mapping[str, Any],
        *,
        id_token: str,
        access_token: str | None,
        refresh_token: str | None,
        expires_in: float | None,
    ) -> SessionRecord:
        """Write a new session with a fresh id (>= 256 random bits)."""
        now = self._clock()
        provider_sid = claims.get("sid")
        record = SessionRecord(
            sid=secrets.token_urlsafe(32),
            claims=dict(claims),
            id_token=id_token,
            created_at=now,
            expires_at=now + self._ttl,
            access_token=access_token,
            refresh_token=refresh_token,
            access_expires_at=now + expires_in if expires_in else None,
            provider_sid=provider_sid if isinstance(provider_sid, str) else None,
        )
        await self._write(record)
        await self._store.set_add(
            self._subject_key(record.issuer, record.sub), record.sid, self._ttl
        )
        if record.provider_sid:
            await self._store.set_add(
                self._psid_key(record.issuer, record.provider_sid), record.sid, self._ttl
            )
        return record

    async def _write(self, record: SessionRecord) -> None:
        ttl = min(self._idle, record.expires_at - self._clock())
        if ttl > 0:
            await self._store.put(self._session_key(record.sid), record.to_bytes(), ttl)

    async def replace(self, record: SessionRecord, **changes: Any) -> SessionRecord | None:
        """Store a changed record (after a refresh) and tell every instance;
        ``None`` when the session ended meanwhile (it is never written back)."""
        updated = replace(record, **changes)
        ttl = min(self._idle, updated.expires_at - self._clock())
        stored = ttl > 0 and await self._store.put_if_present(
            self._session_key(updated.sid), updated.to_bytes(), ttl
        )
        await self._invalidate(record.sid)
        return updated if stored else None

    def build(self, record: SessionRecord) -> Session:
        """The principal and credentials for a record."""
        config = self._config
        principal = principal_from_claims(
            record.claims,
            email_claim=config.email_claim,
            groups_claim=config.groups_claim,
            custom_claims=config.claims,
            session_id=record.sid,
            access_token=record.access_token if config.pass_access_token else None,
        )
        return Session(record, principal, AuthCredentials(principal.groups))

    def cached(self, cookie: str) -> Session | None:
        """The session the in-process cache holds for a cookie value, while
        fresh; ``None`` otherwise (then :meth:`load`). Never touches the store."""
        entry = self._cache.get(cookie)
        if entry is not None and self._monotonic() < entry[1]:
            return entry[0]
        return None

    async def load(self, cookie: str) -> Session | None:
        """The live session a cookie names, or ``None``.

        Costs no store round trip on a cache hit and one (``GETEX``, which
        also slides the idle timeout) on a miss.
        """
        cached = self._cache.get(cookie)
        now_mono = self._monotonic()
        if cached is not None:
            session, deadline = cached
            if now_mono < deadline:
                return session
            del self._cache[cookie]
        sid = self._signer.unsign(cookie)
        if sid is None:
            return None
        generation = self._generation
        now = self._clock()
        raw = await self._store.get_and_expire(self._session_key(sid), self._idle)
        if raw is None:
            return None
        record = SessionRecord.from_bytes(raw)
        if record is None or record.sid != sid or record.expires_at <= now:
            return None
        if record.expires_at - now < self._idle:
            # The idle slide must never outlive the absolute lifetime.
            await self._store.expire(self._session_key(sid), record.expires_at - now)
        session = self.build(record)
        if (
            self._listening
            and generation == self._generation
            and self._cache_ttl > 0
            and self._cache_size > 0
        ):
            # A hit does not slide the idle timeout in the store: entries live
            # at most half of it, so active sessions still reach the store.
            lifetime = min(self._cache_ttl, self._idle / 2, record.expires_at - now)
            if record.access_expires_at is not None:
                lifetime = min(
                    lifetime, record.access_expires_at - self._config.refresh_margin - now
                )
            if lifetime > 0:
                self._cache[cookie] = (session, now_mono + lifetime)
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return session

    async def fetch(self, sid: str) -> SessionRecord | None:
        """The stored record, bypassing the cache and leaving its TTL alone."""
        raw = await self._store.get(self._session_key(sid))
        record = SessionRecord.from_bytes(raw) if raw is not None else None
        if record is None or record.sid != sid or record.expires_at <= self._clock():
            return None
        return record

    async def end(self, record: SessionRecord) -> None:
        """End one session on every instance."""
        await self._store.delete(self._session_key(record.sid))
        await self._store.set_remove(self._subject_key(record.issuer, record.sub), record.sid)
        await self._invalidate(record.sid)

    async def end_by_id(self, sid: str) -> bool:
        """End a session by its id; ``True`` when it existed."""
        raw = await self._store.take(self._session_key(sid))
        await self._invalidate(sid)
        if raw is None:
            return False
        record = SessionRecord.from_bytes(raw)
        if record is not None:
            await self._store.set_remove(self._subject_key(record.issuer, record.sub), record.sid)
        return True

    async def end_subject(self, issuer: str, sub: str) -> int:
        """End every session of one user; returns how many were ended."""
        sids = await self._store.set_members(self._subject_key(issuer, sub))
        ended = 0
        for sid in sids:
            ended += await self.end_by_id(sid)
        await self._store.delete(self._subject_key(issuer, sub))
        return ended

    async def end_provider_session(self, issuer: str, provider_sid: str) -> int:
        """End the sessions created from one provider session (its ``sid``)."""
        key = self._psid_key(issuer, provider_sid)
        sids = await self._store.set_members(key)
        ended = 0
        for sid in sids:
            ended += await self.end_by_id(sid)
        await self._store.delete(key)
        return ended

    async def _invalidate(self, sid: str) -> None:
        self._generation += 1
        self._cache.pop(self.cookie_value(sid), None)
        await self._store.publish(self._channel, sid)
