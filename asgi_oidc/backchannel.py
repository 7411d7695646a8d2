"""OpenID Connect Back-Channel Logout 1.0: the provider ends sessions."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from urllib.parse import parse_qsl

from asgiref.typing import ASGIReceiveCallable, HTTPScope

from .client import ProviderClient
from .config import OIDCConfig
from .errors import LogoutTokenError, LogoutTokenReplayed, OIDCError
from .responses import Response, json_response
from .sessions import SessionManager
from .stores.base import Store

__all__ = ["BackchannelLogout", "read_body"]

logger = logging.getLogger("asgi_oidc")

_MAX_BODY = 64 * 1024
#: How long a seen ``jti`` is remembered when the token has no ``exp``.
_JTI_MEMORY = 24 * 3600.0


async def read_body(receive: ASGIReceiveCallable, limit: int = _MAX_BODY) -> bytes | None:
    """The request body, or ``None`` when it is larger than ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            return None
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks)


class BackchannelLogout:
    """Validates logout tokens and ends the sessions they name."""

    def __init__(
        self, config: OIDCConfig, store: Store, provider: ProviderClient, sessions: SessionManager
    ) -> None:
        self._config = config
        self._store = store
        self._provider = provider
        self._sessions = sessions

    async def handle(self, scope: HTTPScope, receive: ASGIReceiveCallable) -> Response:
        """200 when the sessions are ended; 400 for anything else (spec 2.8)."""
        try:
            await self._logout(scope, receive)
        except LogoutTokenError as exc:
            logger.info("asgi_oidc: back-channel logout refused (%s)", exc.detail)
            return json_response(400, {"error": "invalid_request"})
        return json_response(200, {})

    async def _logout(self, scope: HTTPScope, receive: ASGIReceiveCallable) -> None:
        if scope["method"] != "POST":
            raise LogoutTokenError("not a POST")
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.split(b";", 1)[0].strip().lower()
        if content_type != b"application/x-www-form-urlencoded":
            raise LogoutTokenError("not a form post")
        body = await read_body(receive)
        if body is None:
            raise LogoutTokenError("body too large")
        tokens = [v for k, v in parse_qsl(body.decode("latin-1")) if k == "logout_token"]
        if len(tokens) != 1:
            raise LogoutTokenError("exactly one logout_token is required")
        claims = await self._provider.validator.validate_logout_token(tokens[0])
        issuer = str(claims["iss"])
        exp = claims.get("exp")
        remember = (
            max(float(exp) - time.time(), 0.0) + self._config.leeway
            if isinstance(exp, (int, float))
            else _JTI_MEMORY
        )
        jti_key = (
            self._config.key_prefix
            + "jti:"
            + hashlib.sha256(f"{issuer}\x00{claims['jti']}".encode()).hexdigest()
        )
        if not await self._store.put_if_absent(jti_key, b"1", max(remember, 1.0)):
            raise LogoutTokenReplayed("jti seen before")
        sid, sub = claims.get("sid"), claims.get("sub")
        try:
            if isinstance(sid, str) and sid:
                ended = await self._sessions.end_provider_session(issuer, sid)
            else:
                ended = await self._sessions.end_subject(issuer, str(sub))
        except BaseException:
            # The provider retries a failed delivery with the same token:
            # it must not then be refused as a replay.
            with contextlib.suppress(OIDCError):
                await self._store.delete(jti_key)
            raise
        logger.info("asgi_oidc: back-channel logout ended %d session(s)", ended)
