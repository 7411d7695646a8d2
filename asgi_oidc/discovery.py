"""Provider metadata (discovery or explicit endpoints) and the signing key set.

Both are fetched asynchronously through the middleware's one pooled HTTP
client, cached, and fetched by one coroutine at a time however many requests
ask at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from .config import OIDCConfig
from .errors import (
    DisallowedAlgorithm,
    DiscoveryError,
    IssuerMismatch,
    KeySetError,
    ProviderUnavailable,
    UnknownKey,
)

__all__ = ["KeySet", "ProviderMetadata", "fetch_json", "resolve_metadata"]

logger = logging.getLogger("asgi_oidc")

_MAX_DOCUMENT_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The endpoints and capabilities the flow needs."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    #: RFC 9207: the provider sends ``iss`` on every authorization response.
    iss_parameter_supported: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


async def fetch_json(http: httpx.AsyncClient, url: str, *, what: str) -> dict[str, Any]:
    """GET a JSON object, mapping every failure to a ProviderError subclass."""
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        logger.warning("asgi_oidc: %s unreachable: %s", what, type(exc).__name__)
        raise ProviderUnavailable(f"{what} unreachable") from None
    if response.status_code >= 500:
        logger.warning("asgi_oidc: %s answered %d", what, response.status_code)
        raise ProviderUnavailable(f"{what} answered {response.status_code}")
    error_class = KeySetError if what == "jwks" else DiscoveryError
    if response.status_code != 200 or len(response.content) > _MAX_DOCUMENT_BYTES:
        logger.warning("asgi_oidc: %s answered %d", what, response.status_code)
        raise error_class(f"{what} answered {response.status_code}")
    try:
        document = json.loads(response.content)
    except ValueError:
        raise error_class(f"{what} is not JSON") from None
    if not isinstance(document, dict):
        raise error_class(f"{what} is not a JSON object")
    return document


def _explicit_only(config: OIDCConfig) -> bool:
    return (
        bool(config.authorization_endpoint and config.token_endpoint and config.jwks_uri)
        and not config.discovery_url
    )


async def resolve_metadata(config: OIDCConfig, http: httpx.AsyncClient) -> ProviderMetadata:
    """Discover the provider's metadata, or build it from explicit endpoints.

    Explicit endpoints always override discovered ones. When the three
    required endpoints are all configured (and no ``discovery_url``), no
    request is made at all.
    """
    discovered: dict[str, Any] = {}
    if not _explicit_only(config):
        url = config.discovery_url or (
            config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        )
        discovered = await fetch_json(http, url, what="discovery")
        # OpenID Connect Discovery 1.0 §4.3: the issuer must be exactly ours.
        if discovered.get("issuer") != config.issuer:
            logger.error("asgi_oidc: discovery metadata names another issuer; refusing it")
            raise IssuerMismatch("discovery issuer differs from the configured issuer")

    def pick(name: str) -> str | None:
        explicit = getattr(config, name)
        if explicit:
            return str(explicit)
        value = discovered.get(name)
        if value is not None and not (isinstance(value, str) and value.startswith("http")):
            raise DiscoveryError(f"{name} is not a URL")
        return value

    def required(name: str) -> str:
        value = pick(name)
        if not value:
            raise DiscoveryError(f"the provider has no {name}")
        return value

    return ProviderMetadata(
        issuer=config.issuer,
        authorization_endpoint=required("authorization_endpoint"),
        token_endpoint=required("token_endpoint"),
        jwks_uri=required("jwks_uri"),
        userinfo_endpoint=pick("userinfo_endpoint"),
        end_session_endpoint=pick("end_session_endpoint"),
        iss_parameter_supported=discovered.get("authorization_response_iss_parameter_supported")
        is True,
        raw=discovered,
    )


class KeySet:
    """The provider's JWKS: cached, refetched on an unknown ``kid`` at most
    once per cooldown, and kept while the provider is unreachable."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        cache_ttl: float,
        refetch_cooldown: float,
        clock: Any = time.monotonic,
    ) -> None:
        self._http = http
        self._cache_ttl = cache_ttl
        self._cooldown = refetch_cooldown
        self._clock = clock
        self._keys: list[dict[str, Any]] = []
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._prepared: dict[tuple[str | None, str, int], jwt.PyJWK] = {}
        self._lock = asyncio.Lock()

    async def key_for(self, jwks_uri: str, kid: str | None, alg: str) -> jwt.PyJWK:
        """Return the key that verifies a token with this ``kid`` and ``alg``."""
        if self._fetched_at is None or self._clock() - self._fetched_at > self._cache_ttl:
            await self._refresh(jwks_uri, seen=self._attempted_at)
        found = self._find(kid, alg)
        if found is None and self._may_refetch():
            # An unknown kid is how key rotation shows; look once more.
            await self._refresh(jwks_uri, seen=self._attempted_at)
            found = self._find(kid, alg)
        if found is None:
            raise UnknownKey("no key in the key set matches the token")
        return found

    def _may_refetch(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self._cooldown

    async def _refresh(self, jwks_uri: str, *, seen: float | None) -> None:
        async with self._lock:
            if self._attempted_at != seen:
                return  # another coroutine fetched while this one waited
            self._attempted_at = self._clock()
            try:
                document = await fetch_json(self._http, jwks_uri, what="jwks")
                keys = document.get("keys")
                if not isinstance(keys, list):
                    raise KeySetError("jwks has no keys list")
            except (ProviderUnavailable, KeySetError):
                if self._keys:
                    logger.warning("asgi_oidc: key set refetch failed; keeping the last good set")
                    # Count the old set as fresh for one cooldown, so requests
                    # don't each wait on a provider that is down.
                    self._fetched_at = self._clock() - self._cache_ttl + self._cooldown
                    return
                raise
            self._keys = [k for k in keys if isinstance(k, dict) and k.get("use", "sig") == "sig"]
            self._prepared.clear()
            self._fetched_at = self._clock()

    def _find(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        candidates = [
            (index, k)
            for index, k in enumerate(self._keys)
            if (kid is None or k.get("kid") == kid) and k.get("alg", alg) == alg
        ]
        if kid is None and len(candidates) != 1:
            candidates = [c for c in candidates if _kty_fits(c[1], alg)]
            if len(candidates) != 1:
                return None
        for index, jwk_data in candidates:
            cache_key = (kid, alg, index)
            prepared = self._prepared.get(cache_key)
            if prepared is None:
                try:
                    prepared = jwt.PyJWK(jwk_data, algorithm=alg)
                except jwt.exceptions.PyJWTError:
                    continue
                self._prepared[cache_key] = prepared
            return prepared
        if candidates:
            raise DisallowedAlgorithm("the key does not fit the token's algorithm")
        return None


def _kty_fits(jwk_data: Mapping[str, Any], alg: str) -> bool:
    kty = jwk_data.get("kty")
    if alg.startswith(("RS", "PS")):
        return kty == "RSA"
    if alg.startswith("ES"):
        return kty == "EC"
    if alg == "EdDSA":
        return kty == "OKP"
    return False
