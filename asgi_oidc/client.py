"""Everything the middleware asks of the identity provider, over one pooled
HTTP client: metadata, keys, the authorization URL, code exchange, refresh
and UserInfo. The OAuth 2.0 parts are Authlib's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import warnings
from typing import Any
from urllib.parse import quote_plus

# Authlib 1.9 prefers the httpx2 fork and warns at import when it finds httpx;
# httpx is this project's HTTP client, so the warning is expected. Importing
# authlib.deprecate first lets its own "always" filter in before ours.
import authlib.deprecate  # noqa: F401
import httpx

from .config import OIDCConfig
from .discovery import KeySet, ProviderMetadata, resolve_metadata
from .errors import (
    ProviderUnavailable,
    RefreshRefused,
    SubjectMismatch,
    TokenEndpointError,
    UserInfoError,
)
from .tokens import TokenValidator

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

__all__ = ["ProviderClient", "TokenResponse"]

logger = logging.getLogger("asgi_oidc")

TokenResponse = dict[str, Any]


def _client_secret_basic(
    client: Any, method: str, uri: str, headers: dict[str, str], body: str
) -> tuple[str, dict[str, str], str]:
    # RFC 6749 2.3.1: id and secret are form-urlencoded before base64; Authlib
    # sends them raw, which providers refuse for secrets holding + % or :.
    text = f"{quote_plus(client.client_id)}:{quote_plus(client.client_secret or '')}"
    headers["Authorization"] = "Basic " + base64.b64encode(text.encode()).decode()
    return uri, headers, body


class ProviderClient:
    """The provider as the middleware sees it; build once, share everywhere."""

    def __init__(self, config: OIDCConfig, *, transport: httpx.AsyncBaseTransport | None = None):
        self._config = config
        timeout = httpx.Timeout(config.http_timeout)
        # One connection pool (the transport) under both clients: Authlib's
        # for the token endpoint, a plain one for everything else.
        self._transport = transport or httpx.AsyncHTTPTransport(trust_env=False)
        self.http = httpx.AsyncClient(
            transport=self._transport, timeout=timeout, follow_redirects=False, trust_env=False
        )
        self.oauth = AsyncOAuth2Client(
            client_id=config.client_id,
            client_secret=config.client_secret,
            token_endpoint_auth_method=config.token_endpoint_auth_method,
            scope=config.scope_string,
            redirect_uri=config.redirect_uri,
            code_challenge_method="S256" if config.pkce else None,
            timeout=timeout,
            follow_redirects=False,
            transport=self._transport,
            trust_env=False,
        )
        self.oauth.register_client_auth_method(("client_secret_basic", _client_secret_basic))
        self.keys = KeySet(
            self.http,
            cache_ttl=config.jwks_cache_ttl,
            refetch_cooldown=config.jwks_refetch_cooldown,
        )
        self.validator = TokenValidator(config, self.keys, self._jwks_uri)
        self._metadata: ProviderMetadata | None = None
        self._metadata_lock = asyncio.Lock()

    async def metadata(self) -> ProviderMetadata:
        """Discovered (once) or configured provider metadata."""
        if self._metadata is not None:
            return self._metadata
        async with self._metadata_lock:
            if self._metadata is None:
                self._metadata = await resolve_metadata(self._config, self.http)
        return self._metadata

    async def _jwks_uri(self) -> str:
        return (await self.metadata()).jwks_uri

    def authorization_url(
        self, metadata: ProviderMetadata, *, state: str, nonce: str, verifier: str | None
    ) -> str:
        """The authorization request URL (PKCE S256 when a verifier is given)."""
        url, _ = self.oauth.create_authorization_url(
            metadata.authorization_endpoint,
            state=state,
            code_verifier=verifier,
            nonce=nonce,
            **self._config.extra_authorize_params,
        )
        return str(url)

    async def exchange_code(self, code: str, verifier: str | None) -> TokenResponse:
        """Trade an authorization code for tokens."""
        metadata = await self.metadata()
        extra: dict[str, Any] = {}
        if verifier is not None:
            extra["code_verifier"] = verifier
        return await self._token_call(
            self.oauth.fetch_token(
                metadata.token_endpoint,
                grant_type="authorization_code",
                code=code,
                redirect_uri=self._config.redirect_uri,
                **extra,
            ),
            refresh=False,
        )

    async def refresh(self, refresh_token: str) -> TokenResponse:
        """Use a refresh token; ``RefreshRefused`` when the provider says no."""
        metadata = await self.metadata()
        return await self._token_call(
            self.oauth.refresh_token(metadata.token_endpoint, refresh_token=refresh_token),
            refresh=True,
        )

    async def _token_call(self, call: Any, *, refresh: bool) -> TokenResponse:
        try:
            token = await call
        except OAuthError as exc:
            error = getattr(exc, "error", "") or ""
            logger.warning("asgi_oidc: token endpoint refused: %s", error[:64])
            if refresh and error in ("invalid_grant", "unauthorized_client", "invalid_client"):
                raise RefreshRefused(error) from None
            raise TokenEndpointError(f"token endpoint error {error[:64]!r}") from None
        except httpx.HTTPError as exc:
            logger.warning("asgi_oidc: token endpoint unreachable: %s", type(exc).__name__)
            raise ProviderUnavailable("token endpoint unreachable") from None
        except (ValueError, KeyError, TypeError):
            raise TokenEndpointError("token endpoint answered something unusable") from None
        if not isinstance(token, dict) or not isinstance(token.get("access_token"), str):
            raise TokenEndpointError("no access token")
        return dict(token)

    async def userinfo(self, access_token: str, sub: str) -> dict[str, Any]:
        """The UserInfo claims, refused unless ``sub`` is the ID token's."""
        endpoint = (await self.metadata()).userinfo_endpoint
        if endpoint is None:
            raise UserInfoError("the provider has no userinfo endpoint")
        try:
            response = await self.http.get(
                endpoint,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            logger.warning("asgi_oidc: userinfo unreachable: %s", type(exc).__name__)
            raise ProviderUnavailable("userinfo unreachable") from None
        if response.status_code >= 500:
            raise ProviderUnavailable(f"userinfo answered {response.status_code}")
        if response.status_code != 200:
            raise UserInfoError(f"userinfo answered {response.status_code}")
        try:
            claims = json.loads(response.content)
        except ValueError:
            raise UserInfoError("userinfo is not JSON") from None
        if not isinstance(claims, dict):
            raise UserInfoError("userinfo is not an object")
        # Core 5.3.2: a UserInfo sub other than the ID token's must be refused.
        if claims.get("sub") != sub:
            raise SubjectMismatch("userinfo sub differs from the id token's")
        return claims

    async def aclose(self) -> None:
        """Close the pooled HTTP client."""
        await self.oauth.aclose()
        await self.http.aclose()
