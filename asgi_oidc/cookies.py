"""Reading the Cookie header and writing Set-Cookie, cheaply.

The header is parsed by hand rather than with ``http.cookies``, which rejects
a whole header over one malformed cookie from another app on the same host
(an identity provider on the same loopback address sets its own) and costs
several microseconds per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["CookieSigner", "cookie_value", "parse_cookies", "set_cookie"]


def parse_cookies(header: bytes | str) -> dict[str, str]:
    """Split a Cookie header into names and values; the first of a name wins."""
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    cookies: dict[str, str] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        if not sep:
            continue
        name = name.strip()
        if name and name not in cookies:
            cookies[name] = value.strip().strip('"')
    return cookies


def cookie_value(header: bytes | str, name: str) -> str | None:
    """``parse_cookies(header).get(name)``, without building the whole dict."""
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    if name not in header:
        return None
    for chunk in header.split(";"):
        key, sep, value = chunk.partition("=")
        if sep and key.strip() == name:
            return value.strip().strip('"')
    return None


def set_cookie(
    name: str,
    value: str,
    *,
    max_age: int,
    secure: bool,
    path: str = "/",
    http_only: bool = True,
    same_site: str = "Lax",
) -> tuple[bytes, bytes]:
    """One ``Set-Cookie`` header; ``max_age`` 0 deletes the cookie."""
    parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}"]
    if max_age == 0:
        parts.append("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    if http_only:
        parts.append("HttpOnly")
    if secure:
        parts.append("Secure")
    parts.append(f"SameSite={same_site}")
    return (b"set-cookie", "; ".join(parts).encode("latin-1"))


class CookieSigner:
    """HMAC-SHA256 signatures for cookie values, one purpose per signer."""

    def __init__(self, secret: str, purpose: str) -> None:
        # A purpose-derived key keeps a state cookie from passing as a session.
        self._key = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()

    def _mac(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, value: str) -> str:
        """``value.signature``; ``value`` must not contain a dot."""
        return f"{value}.{self._mac(value)}"

    def unsign(self, signed: str) -> str | None:
        """The value, or ``None`` when the signature is wrong or missing."""
        value, sep, mac = signed.rpartition(".")
        if not sep or not value or len(signed) > 256:
            return None
        if hmac.compare_digest(mac, self._mac(value)):
            return value
        return None
