"""Request paths made canonical, and tables that map path patterns to values.

Every decision that depends on a path (claim rules, ``public_paths``) is taken
on :func:`normalize_path`'s result, never on ``scope["path"]`` itself, so that
one resource cannot be reached under a spelling the rules do not know.

What :func:`normalize_path` does, in order:

1. Percent-decoding that the server left (``scope["path"]`` is decoded once
   already) is repeated until the text is stable, so ``%2e%2e``, ``%252e`` and
   ``%2f`` mean the characters they stand for. More than
   ``_MAX_DECODE_ROUNDS`` layers of encoding is refused: no honest client
   encodes a path four times.
2. The result must be valid UTF-8 with no control character (C0, DEL, C1).
3. Backslashes become ``/`` (Windows servers and some proxies treat them so).
4. The path must start with ``/``, before decoding and after.
5. Each segment loses its ``;params`` (``/admin;jsessionid=1/x`` is judged as
   ``/admin/x``), as servlet containers read them; a Python router reads the
   ``;`` literally and so can only ever route such a path somewhere at least
   as specific.
6. Empty segments are dropped: repeated slashes collapse, and a trailing slash
   is not significant (``/admin/`` is ``/admin``).
7. Dot segments (``.``, ``..``) and segments ending in a dot or white space
   (``admin.``, ``admin%20``, which Windows file systems read as ``admin``) are
   **refused**, not resolved. Python routers (Starlette, FastAPI, Quart) do
   not resolve them either: ``/admin/../public/x`` reaches a
   ``/admin/{rest:path}`` route. Resolving it to ``/public/x`` would judge the
   request by a rule other than the one for the code that serves it. Browsers
   and HTTP libraries resolve dot segments before sending, so only hand-made
   requests are refused.

A refused path gives ``None``; the middleware answers 400.

Patterns are a normalized path (an exact match) or a normalized path followed
by ``/*``, which matches that path itself and everything below it; ``/*``
matches every path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Generic, TypeVar
from urllib.parse import unquote_to_bytes

from .errors import ConfigError

__all__ = ["DuplicatePattern", "PathPatterns", "PathTable", "normalize_path", "parse_pattern"]

T = TypeVar("T")

#: Layers of percent-encoding peeled off beyond the server's own decoding.
_MAX_DECODE_ROUNDS = 4

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Anything that may need work; a path without any of these is returned as is,
# so normalizing an already normal path costs one scan.
_SUSPECT = re.compile(r"[%\\;\x00-\x1f\x7f]|//|/\.|[.\s](?:/|$)")


def normalize_path(path: str) -> str | None:
    """Return the canonical form of a request path, or ``None`` to refuse it.

    ``path`` is ASGI ``scope["path"]``. The result starts with ``/``, has no
    empty, ``.`` or ``..`` segment, no trailing slash (except ``/`` itself),
    no backslash, no ``;params`` and no decodable ``%XX``. Applying the
    function to its own result gives the same result. See the module
    docstring for each step and why.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        # ASGI servers always give an origin-form path; anything else is odd
        # enough to refuse before decoding could turn it into one.
        return None
    if path.isascii() and not _SUSPECT.search(path) and (len(path) == 1 or not path.endswith("/")):
        return path
    try:
        raw = path.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not a path a server produces
        return None
    for _ in range(_MAX_DECODE_ROUNDS + 1):
        decoded = unquote_to_bytes(raw)
        if decoded == raw:
            break
        raw = decoded
    else:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _CONTROL.search(text):
        return None
    text = text.replace("\\", "/")
    if not text.startswith("/"):
        return None
    segments: list[str] = []
    for segment in text.split("/"):
        segment = segment.split(";", 1)[0]
        if not segment:
            continue
        if segment in (".", "..") or segment[-1] == "." or segment[-1].isspace():
            return None
        segments.append(segment)
    return "/" + "/".join(segments)


def parse_pattern(pattern: str) -> tuple[bool, str]:
    """Split a pattern into ``(is_prefix, normalized path)``.

    Raises :class:`ValueError` with a reason a person can act on when the
    pattern is not one of ``/exact/path``, ``/prefix/*`` or ``/*``.
    """
    if not isinstance(pattern, str) or not pattern.startswith("/"):
        raise ValueError("must be a string starting with '/'")
    is_prefix = pattern == "/*" or pattern.endswith("/*")
    base = (pattern[:-2] or "/") if is_prefix else pattern
    if "*" in base:
        raise ValueError("'*' is allowed only as a final '/*' (as in '/admin/*')")
    normalized = normalize_path(base)
    if normalized is None:
        raise ValueError(
            "is not a path a request can have (dot segments, control characters, "
            "or a segment ending in '.' or a space)"
        )
    return is_prefix, normalized


class DuplicatePattern(ValueError):
    """A pattern that, once normalized, is the same as an earlier one."""


class PathTable(Generic[T]):
    """Path patterns mapped to values; a lookup finds the most specific one.

    An exact pattern beats any ``/prefix/*``; a longer prefix beats a shorter
    one. The order patterns were added never matters. A lookup costs one
    dictionary probe per segment of the path, whatever the number of patterns.
    """

    __slots__ = ("_case_sensitive", "_exact", "_prefix")

    def __init__(self, *, case_sensitive: bool = True) -> None:
        self._case_sensitive = case_sensitive
        self._exact: dict[str, T] = {}
        self._prefix: dict[str, T] = {}

    @property
    def case_sensitive(self) -> bool:
        """Whether ``/Admin`` and ``/admin`` are different paths."""
        return self._case_sensitive

    def add(self, pattern: str, value: T) -> None:
        """Map ``pattern`` to ``value``.

        Raises :class:`ValueError` for an invalid pattern, and
        :class:`DuplicatePattern` for one that is the same as an earlier one
        once normalized (``/admin/`` and ``/admin``; ``/Admin/*`` and
        ``/admin/*`` when case-insensitive). ``value`` must not be ``None``,
        which :meth:`lookup` uses for "no match".
        """
        is_prefix, key = parse_pattern(pattern)
        if not self._case_sensitive:
            key = key.lower()
        table = self._prefix if is_prefix else self._exact
        if key in table:
            raise DuplicatePattern("is the same pattern as an earlier one")
        table[key] = value

    def lookup(self, path: str) -> T | None:
        """Return the value of the most specific pattern matching ``path``.

        ``path`` must be a :func:`normalize_path` result; lookups on anything
        else are meaningless.
        """
        if not self._case_sensitive:
            path = path.lower()
        found = self._exact.get(path)
        if found is not None or not self._prefix:
            return found
        prefixes = self._prefix
        end = len(path)
        # Walk the path's own ancestors, longest first: /a/b/c, /a/b, /a, /.
        while end > 0:
            found = prefixes.get(path[:end])
            if found is not None:
                return found
            end = path.rfind("/", 0, end)
        return prefixes.get("/")

    def __len__(self) -> int:
        return len(self._exact) + len(self._prefix)


class PathPatterns:
    """A set of path patterns (``public_paths``), in the rule-path syntax.

    ``PathPatterns(["/health", "/static/*"]).matches("/static/app.css")`` is
    true. Duplicates are harmless and ignored. An invalid pattern raises
    :class:`~asgi_oidc.errors.ConfigError` naming ``field``.
    """

    __slots__ = ("_patterns", "_table")

    def __init__(
        self,
        patterns: Iterable[str],
        *,
        case_sensitive: bool = True,
        field: str = "public_paths",
    ) -> None:
        if isinstance(patterns, str):
            patterns = (patterns,)
        self._table: PathTable[bool] = PathTable(case_sensitive=case_sensitive)
        kept: list[str] = []
        for pattern in patterns:
            try:
                self._table.add(pattern, True)
            except DuplicatePattern:
                continue
            except ValueError as exc:
                raise ConfigError(field, f"{pattern!r} {exc}") from None
            kept.append(pattern)
        self._patterns = tuple(kept)

    @property
    def patterns(self) -> tuple[str, ...]:
        """The patterns as written, without duplicates."""
        return self._patterns

    def matches(self, path: str) -> bool:
        """Whether ``path`` (raw or normalized) matches any pattern.

        A path :func:`normalize_path` refuses matches nothing, so it is never
        treated as public.
        """
        normalized = normalize_path(path)
        if normalized is None:
            return False
        return self._table.lookup(normalized) is not None

    def matches_normalized(self, path: str) -> bool:
        """:meth:`matches` for a :func:`normalize_path` result (no second normalization)."""
        return self._table.lookup(path) is not None

    def __len__(self) -> int:
        return len(self._patterns)

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def __repr__(self) -> str:
        return f"PathPatterns({list(self._patterns)!r})"
