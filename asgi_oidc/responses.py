"""Every response the middleware itself sends, and the one place that maps an
error to a response (:func:`error_response`).

Pages are small, fixed HTML; API clients get JSON. Nothing here ever shows
an exception's detail, a token or a secret.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from asgiref.typing import ASGISendCallable, HTTPScope, WebSocketScope

from .errors import (
    AuthenticationRequired,
    OIDCError,
    ProviderError,
    StoreUnavailable,
    TokenValidationError,
)

__all__ = [
    "Response",
    "error_response",
    "html_page",
    "json_response",
    "redirect",
    "wants_html",
    "websocket_close_code",
]

logger = logging.getLogger("asgi_oidc")

Header = tuple[bytes, bytes]

_SECURITY_HEADERS: tuple[Header, ...] = (
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


@dataclass(slots=True)
class Response:
    """A complete response the middleware sends without calling the app."""

    status: int
    body: bytes = b""
    headers: list[Header] = field(default_factory=list)

    async def send(self, send: ASGISendCallable) -> None:
        """Send it over an http scope."""
        headers = [
            *self.headers,
            *_SECURITY_HEADERS,
            (b"content-length", str(len(self.body)).encode()),
        ]
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": headers,
                "trailers": False,
            }
        )
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


def wants_html(scope: HTTPScope | WebSocketScope) -> bool:
    """True when the client asked for HTML (a browser), not JSON."""
    for name, value in scope["headers"]:
        if name == b"accept":
            return b"text/html" in value
    return False


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;
padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}}a{{color:#0650b4}}</style></head>
<body><h1>{title}</h1><p>{message}</p>{extra}</body></html>
"""


def html_page(
    status: int, title: str, message: str, *, link: tuple[str, str] | None = None
) -> Response:
    """A small HTML page; every piece of text is escaped."""
    extra = ""
    if link is not None:
        extra = f'<p><a href="{html.escape(link[0])}">{html.escape(link[1])}</a></p>'
    body = _PAGE.format(title=html.escape(title), message=html.escape(message), extra=extra)
    return Response(status, body.encode(), [(b"content-type", b"text/html; charset=utf-8")])


def json_response(
    status: int, payload: dict[str, object], headers: Iterable[Header] = ()
) -> Response:
    """A JSON body."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, body, [(b"content-type", b"application/json"), *headers])


def redirect(location: str, cookies: Sequence[Header] = (), status: int = 302) -> Response:
    """A redirect, with any Set-Cookie headers."""
    return Response(status, b"", [(b"location", location.encode("latin-1")), *cookies])


_TITLES = {
    400: "Sign-in failed",
    401: "Sign-in required",
    403: "Access denied",
    502: "Sign-in service error",
    503: "Temporarily unavailable",
}


def error_response(
    exc: OIDCError, *, html_wanted: bool, cookies: Sequence[Header] = ()
) -> Response:
    """The one mapping from an error to what the client sees."""
    status = exc.status_code
    if status >= 500 or isinstance(exc, (ProviderError, StoreUnavailable)):
        logger.error("asgi_oidc: %s (%s)", type(exc).__name__, exc.detail or exc.message)
    else:
        logger.info("asgi_oidc: %s (%s)", type(exc).__name__, exc.detail or exc.message)
    headers: list[Header] = list(cookies)
    if status == 401:
        challenge = 'Bearer realm="asgi_oidc"'
        if isinstance(exc, TokenValidationError):
            challenge += ', error="invalid_token"'
        headers.append((b"www-authenticate", challenge.encode()))
    if status == 503:
        headers.append((b"retry-after", b"5"))
    if html_wanted:
        page = html_page(
            status,
            _TITLES.get(status, "Error"),
            exc.message,
            link=("/", "Start again") if status in (400, 401) else None,
        )
        page.headers.extend(headers)
        return page
    return json_response(status, {"error": exc.error, "message": exc.message}, headers)


def websocket_close_code(exc: OIDCError) -> int:
    """WebSocket close code for an error: policy violation, or try again later."""
    if isinstance(exc, AuthenticationRequired) or 400 <= exc.status_code < 500:
        return 1008
    if exc.status_code == 503:
        return 1013
    return 1011
