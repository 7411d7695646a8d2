"""The authorization code flow: login redirect, callback, logout.

Each step returns a :class:`~asgi_oidc.responses.Response` or raises an
:class:`~asgi_oidc.errors.OIDCError`; the middleware maps errors to
responses in one place.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .client import ProviderClient
from .config import OIDCConfig
from .cookies import set_cookie
from .errors import (
    AccessDenied,
    CallbackError,
    CodeMissing,
    IssuerParameterMismatch,
    OIDCError,
    ProviderError,
    ProviderReturnedError,
    StateBrowserMismatch,
    StateMissing,
    StateUnknown,
    TokenEndpointError,
)
from .principal import claim_at, principal_from_claims
from .redirects import safe_return_path
from .responses import Header, Response, html_page, json_response, redirect
from .rules import email_domain_allowed
from .sessions import SessionManager, SessionRecord
from .stores.base import Store

__all__ = ["Flow", "FlowError", "query_params"]

logger = logging.getLogger("asgi_oidc")


class FlowError(Exception):
    """An OIDCError together with the cookies its response must still set."""

    def __init__(self, error: OIDCError, cookies: Sequence[Header]) -> None:
        super().__init__(error)
        self.error = error
        self.cookies = tuple(cookies)


def query_params(query_string: bytes) -> dict[str, str]:
    """Parse a query; a repeated parameter is refused (RFC 6749 3.1)."""
    params: dict[str, str] = {}
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        raise CallbackError("unparsable query") from None
    for name, value in pairs:
        if name in params:
            raise CallbackError(f"parameter {name[:32]!r} repeated")
        params[name] = value
    return params


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Flow:
    """Login, callback and logout for one middleware."""

    def __init__(
        self, config: OIDCConfig, store: Store, provider: ProviderClient, sessions: SessionManager
    ) -> None:
        self._config = config
        self._store = store
        self._provider = provider
        self._sessions = sessions
        self._prefix = config.key_prefix
        origin = urlsplit(config.redirect_uri)
        self._origin = f"{origin.scheme}://{origin.netloc}"
        self._secure = config.cookie_secure
        self._needs_userinfo_for = (config.email_claim, config.groups_claim, *config.claims)
        post_logout = config.post_logout_redirect_uri
        self.post_logout_path: str | None = None
        if post_logout:
            parts = urlsplit(post_logout)
            if f"{parts.scheme}://{parts.netloc}" == self._origin:
                self.post_logout_path = parts.path or "/"

    # -- cookies ------------------------------------------------------------

    def state_cookie_name(self, state: str) -> str:
        """One cookie per flow, so that tabs logging in at once keep their own."""
        return self._config.state_cookie_prefix + _hash(state)[:16]

    def session_cookie(self, record: SessionRecord) -> Header:
        """Set-Cookie for a new session."""
        return set_cookie(
            self._config.session_cookie_name,
            self._sessions.cookie_value(record.sid),
            max_age=math.ceil(self._config.session_ttl),  # never 0: that deletes it
            secure=self._secure,
        )

    def clear_session_cookie(self) -> Header:
        """Set-Cookie that removes the session cookie."""
        return set_cookie(self._config.session_cookie_name, "", max_age=0, secure=self._secure)

    # -- login ----------------------------------------------------------------

    async def start_login(self, return_to: str | None) -> Response:
        """Store a fresh state record and redirect to the authorization endpoint."""
        metadata = await self._provider.metadata()
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64) if self._config.pkce else None
        binding = secrets.token_urlsafe(32)
        record = {
            "nonce": nonce,
            "verifier": verifier,
            "return_to": safe_return_path(return_to),
            "binding": _hash(binding),
            "created_at": time.time(),
        }
        await self._store.put(
            f"{self._prefix}state:{state}", json.dumps(record).encode(), self._config.state_ttl
        )
        url = self._provider.authorization_url(
            metadata, state=state, nonce=nonce, verifier=verifier
        )
        cookie = set_cookie(
            self.state_cookie_name(state),
            binding,
            max_age=math.ceil(self._config.state_ttl),
            secure=self._secure,
        )
        return redirect(url, [cookie])

    # -- callback ---------------------------------------------------------------

    async def callback(
        self, query_string: bytes, cookies: Mapping[str, str], old_session: str | None
    ) -> Response:
        """Finish a login; raises FlowError carrying the cookie to clear."""
        params = query_params(query_string)
        state = params.get("state")
        if not state:
            raise StateMissing("no state parameter")
        cookie_name = self.state_cookie_name(state)
        clear = [set_cookie(cookie_name, "", max_age=0, secure=self._secure)]
        try:
            record = await self._take_state(state, cookies.get(cookie_name))
            return await self._finish(params, record, clear, old_session)
        except OIDCError as exc:
            raise FlowError(exc, clear) from None

    async def _take_state(self, state: str, binding: str | None) -> dict[str, Any]:
        if len(state) > 512:
            raise StateUnknown("state too long")
        raw = await self._store.take(f"{self._prefix}state:{state}")
        if raw is None:
            raise StateUnknown("state unknown, expired or replayed")
        try:
            record = json.loads(raw)
            expected = record["binding"]
        except (ValueError, KeyError, TypeError):
            raise StateUnknown("state record unreadable") from None
        if binding is None or not hmac.compare_digest(_hash(binding), str(expected)):
            raise StateBrowserMismatch("state cookie missing or different")
        return dict(record)

    async def _finish(
        self,
        params: Mapping[str, str],
        state: Mapping[str, Any],
        cookies: list[Header],
        old_session: str | None,
    ) -> Response:
        metadata = await self._provider.metadata()
        iss = params.get("iss")
        # RFC 9207: mix-up defence; required once the provider advertises it.
        if iss is not None and iss != self._config.issuer:
            raise IssuerParameterMismatch("iss parameter names another issuer")
        if iss is None and metadata.iss_parameter_supported:
            raise IssuerParameterMismatch("iss parameter missing")
        if "error" in params:
            raise ProviderReturnedError(params["error"][:64], params.get("error_description", ""))
        code = params.get("code")
        if not code:
            raise CodeMissing("no code parameter")
        token = await self._provider.exchange_code(code, state.get("verifier"))
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise TokenEndpointError("no id_token in the token response")
        claims = await self._provider.validator.validate_id_token(id_token, nonce=state["nonce"])
        claims = await self._with_userinfo(claims, token["access_token"])
        if self._config.email_domains:
            principal = principal_from_claims(
                claims,
                email_claim=self._config.email_claim,
                groups_claim=self._config.groups_claim,
                custom_claims=(),
            )
            if not email_domain_allowed(principal, self._config.email_domains):
                raise AccessDenied("email domain not allowed", rule_path="email_domains")
        if old_session:
            # A fresh id at every login: a planted session id is never promoted.
            await self._sessions.end_by_id(old_session)
        expires_in = token.get("expires_in")
        record = await self._sessions.create(
            claims,
            id_token=id_token,
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            expires_in=float(expires_in) if isinstance(expires_in, (int, float)) else None,
        )
        logger.info("asgi_oidc: login sub=%s", _short(record.sub))
        cookies.append(self.session_cookie(record))
        return redirect(self._origin + str(state.get("return_to") or "/"), cookies)

    async def _with_userinfo(self, claims: dict[str, Any], access_token: str) -> dict[str, Any]:
        setting = self._config.userinfo
        metadata = await self._provider.metadata()
        if setting is False or metadata.userinfo_endpoint is None:
            return claims
        if setting is None and all(
            claim_at(claims, name) is not None for name in self._needs_userinfo_for
        ):
            return claims
        info = await self._provider.userinfo(access_token, claims["sub"])
        merged = dict(info)
        merged.update(claims)  # protocol claims come from the signed ID token
        return merged

    # -- logout -----------------------------------------------------------------

    async def logout(self, record: SessionRecord | None, html_wanted: bool) -> Response:
        """End the session everywhere, then RP-initiated logout at the provider."""
        cookies = [self.clear_session_cookie()]
        if record is not None:
            await self._sessions.end(record)
            logger.info("asgi_oidc: logout sub=%s", _short(record.sub))
        end_session: str | None = None
        try:
            end_session = (await self._provider.metadata()).end_session_endpoint
        except ProviderError:
            end_session = None  # signed out here; the provider can't be told now
        post_logout = self._config.post_logout_redirect_uri
        if end_session and record is not None:
            params = {"client_id": self._config.client_id, "id_token_hint": record.id_token}
            if post_logout:
                state = secrets.token_urlsafe(24)
                await self._store.put(f"{self._prefix}logout:{state}", b"1", self._config.state_ttl)
                params["post_logout_redirect_uri"] = post_logout
                params["state"] = state
            separator = "&" if urlsplit(end_session).query else "?"
            return redirect(end_session + separator + urlencode(params), cookies)
        if post_logout:
            return redirect(post_logout, cookies)
        if html_wanted:
            page = html_page(200, "Signed out", "You are signed out.", link=("/", "Sign in again"))
            page.headers.extend(cookies)
            return page
        return json_response(200, {"signed_out": True}, cookies)

    async def check_post_logout(self, query_string: bytes) -> None:
        """On return from the provider's logout: the ``state`` must be ours."""
        params = query_params(query_string)
        state = params.get("state")
        if state is None:
            return
        if len(state) > 512 or await self._store.take(f"{self._prefix}logout:{state}") is None:
            raise StateUnknown("logout state unknown, expired or replayed")


def _short(sub: str) -> str:
    # Subjects are identifiers, not secrets, but keep log lines bounded.
    return sub[:64]
