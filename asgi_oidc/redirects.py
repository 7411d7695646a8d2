"""Where a user may be sent back to after login: same-origin paths only."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

__all__ = ["safe_return_path"]

_MAX_LENGTH = 2048


def safe_return_path(target: str | None) -> str:
    """``target`` when it is a same-origin path (with query), else ``"/"``.

    The check runs on every decoding of the target, so encoded slashes,
    backslashes, tabs and newlines (which browsers strip or turn into
    slashes, making ``/\\t/evil.example`` mean ``//evil.example``) cannot
    smuggle another origin through.
    """
    if not target or len(target) > _MAX_LENGTH or not target.startswith("/"):
        return "/"
    if not target.isascii():
        # A Location header is Latin-1 at most; browsers send such paths encoded.
        target = quote(target, safe="/?&=%:@!$'()*+,;~-._#")
    candidate = target
    for _ in range(4):
        if not _plain_path(candidate):
            return "/"
        decoded = unquote(candidate)
        if decoded == candidate:
            return target
        candidate = decoded
    return "/"  # still changing after four decodings: refuse rather than guess


def _plain_path(value: str) -> bool:
    if not value.startswith("/") or value.startswith(("//", "/\\")):
        return False
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc
