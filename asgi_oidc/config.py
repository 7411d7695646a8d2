"""``OIDCConfig``: every setting, validated once, secrets kept out of ``repr``."""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError
from .rules import RuleSet, load_rules
from .stores.base import Store

__all__ = ["DEFAULT_ALGORITHMS", "OIDCConfig"]

logger = logging.getLogger("asgi_oidc")

#: Asymmetric algorithms accepted for ID tokens unless configured otherwise.
DEFAULT_ALGORITHMS: tuple[str, ...] = (
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512",
    "EdDSA",
)  # fmt: skip
_SYMMETRIC = frozenset({"HS256", "HS384", "HS512"})
_KNOWN_ALGORITHMS = frozenset(DEFAULT_ALGORITHMS) | _SYMMETRIC
_AUTH_METHODS = frozenset({"client_secret_basic", "client_secret_post", "none"})
_SECRET_FIELDS = frozenset({"client_secret", "cookie_secret"})

# Cloudflare Access's generic OIDC connector names (``config`` object).
_CLOUDFLARE_KEYS = {
    "auth_url": "authorization_endpoint",
    "token_url": "token_endpoint",
    "certs_url": "jwks_uri",
    "pkce_enabled": "pkce",
    "email_claim_name": "email_claim",
}


def _mask_url(url: str | None) -> str | None:
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _words(name: str, value: Any) -> tuple[str, ...]:
    """A list of strings, or one string split on whitespace and commas."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(w for w in value.replace(",", " ").split() if w)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ConfigError(name, "must be a list of strings or a space-separated string")


def _url(name: str, value: Any, *, https_only: bool = False) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(name, "must be a URL string")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(name, "must be an absolute http(s) URL")
    if https_only and parts.scheme != "https" and parts.hostname not in _LOOPBACK:
        raise ConfigError(name, "must use https (http is accepted only on loopback)")
    return value


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def _path(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError(name, "must be a path starting with '/'")
    return value


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, "must be a number of seconds")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(name, "must be positive")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class OIDCConfig:
    """Everything the middleware needs, checked at construction.

    A wrong value raises :class:`~asgi_oidc.errors.ConfigError` naming the
    field. Either ``issuer`` (discovery) or the explicit endpoints
    (``authorization_endpoint``, ``token_endpoint``, ``jwks_uri``) must be
    given; explicit endpoints override what discovery says.
    """

    issuer: str
    client_id: str
    redirect_uri: str
    client_secret: str | None = None
    discovery_url: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    jwks_uri: str | None = None
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    token_endpoint_auth_method: str | None = None
    scopes: Sequence[str] | str = ("openid", "email", "profile")
    pkce: bool = True
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    email_claim: str = "email"
    groups_claim: str = "groups"
    claims: Sequence[str] | str = ()
    id_token_algorithms: Sequence[str] | str = DEFAULT_ALGORITHMS
    audience: Sequence[str] | str = ()
    trusted_audiences: Sequence[str] | str = ()
    leeway: float = 30.0
    userinfo: bool | None = None
    redis_url: str | None = None
    store: Store | None = field(default=None, compare=False)
    key_prefix: str = "asgi_oidc:"
    cookie_secret: str | None = None
    cookie_secure: bool = True
    cookie_name: str | None = None
    public_paths: Sequence[str] | str = ()
    rules: Any = None
    email_domains: Sequence[str] | str = ()
    login_path: str = "/oauth2/login"
    logout_path: str = "/oauth2/logout"
    backchannel_logout_path: str = "/oauth2/backchannel-logout"
    post_logout_redirect_uri: str | None = None
    session_ttl: float = 8 * 3600.0
    session_idle_ttl: float = 3600.0
    state_ttl: float = 600.0
    session_cache_ttl: float = 2.0
    session_cache_size: int = 10_000
    refresh_margin: float = 30.0
    refresh_lock_ttl: float = 30.0
    pass_access_token: bool = False
    bearer: bool = True
    http_timeout: float = 10.0
    jwks_cache_ttl: float = 3600.0
    jwks_refetch_cooldown: float = 30.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        issuer = _url("issuer", self.issuer, https_only=True)
        if issuer is None:
            raise ConfigError("issuer", "is required")
        set_(self, "issuer", issuer)
        if not isinstance(self.client_id, str) or not self.client_id:
            raise ConfigError("client_id", "is required")
        redirect = _url("redirect_uri", self.redirect_uri)
        if redirect is None:
            raise ConfigError("redirect_uri", "is required (the absolute callback URL)")
        if urlsplit(redirect).fragment:
            raise ConfigError("redirect_uri", "must not have a fragment")
        for name in (
            "discovery_url", "authorization_endpoint", "token_endpoint", "jwks_uri",
            "userinfo_endpoint", "end_session_endpoint", "post_logout_redirect_uri",
        ):  # fmt: skip
            set_(self, name, _url(name, getattr(self, name)))
        if self.client_secret is not None and not isinstance(self.client_secret, str):
            raise ConfigError("client_secret", "must be a string")
        method = self.token_endpoint_auth_method or (
            "client_secret_basic" if self.client_secret else "none"
        )
        if method not in _AUTH_METHODS:
            raise ConfigError(
                "token_endpoint_auth_method", f"must be one of {sorted(_AUTH_METHODS)}"
            )
        if method != "none" and not self.client_secret:
            raise ConfigError("client_secret", f"is required for {method}")
        set_(self, "token_endpoint_auth_method", method)

        scopes = _words("scopes", self.scopes)
        if "openid" not in scopes:
            scopes = ("openid", *scopes)
        set_(self, "scopes", scopes)
        for name in ("pkce", "cookie_secure", "pass_access_token", "bearer"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, "must be true or false")
        if self.userinfo is not None and not isinstance(self.userinfo, bool):
            raise ConfigError("userinfo", "must be true, false or None (automatic)")
        for name in ("email_claim", "groups_claim", "key_prefix"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(name, "must be a non-empty string")
        if not isinstance(self.extra_authorize_params, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str)
            for k, v in self.extra_authorize_params.items()
        ):
            raise ConfigError("extra_authorize_params", "must map strings to strings")
        set_(self, "extra_authorize_params", dict(self.extra_authorize_params))
        set_(self, "claims", _words("claims", self.claims))
        set_(self, "audience", _words("audience", self.audience))
        set_(self, "trusted_audiences", _words("trusted_audiences", self.trusted_audiences))
        domains = tuple(d.lower().lstrip("@") for d in _words("email_domains", self.email_domains))
        set_(self, "email_domains", domains)

        algorithms = _words("id_token_algorithms", self.id_token_algorithms)
        if not algorithms:
            raise ConfigError("id_token_algorithms", "must name at least one algorithm")
        for alg in algorithms:
            if alg not in _KNOWN_ALGORITHMS:
                raise ConfigError("id_token_algorithms", f"unsupported algorithm {alg!r}")
        if _SYMMETRIC & set(algorithms) and not self.client_secret:
            raise ConfigError("id_token_algorithms", "HS* algorithms need a client_secret")
        set_(self, "id_token_algorithms", algorithms)

        for name in (
            "session_ttl", "session_idle_ttl", "state_ttl", "http_timeout",
            "jwks_cache_ttl", "refresh_lock_ttl",
        ):  # fmt: skip
            set_(self, name, _positive(name, getattr(self, name)))
        for name in ("leeway", "session_cache_ttl", "refresh_margin", "jwks_refetch_cooldown"):
            set_(self, name, _positive(name, getattr(self, name), allow_zero=True))
        if self.refresh_lock_ttl <= self.http_timeout:
            # A lease shorter than a slow provider lets a second instance
            # refresh too, which a rotating refresh token punishes.
            raise ConfigError("refresh_lock_ttl", "must be longer than http_timeout")
        if (
            isinstance(self.session_cache_size, bool)
            or not isinstance(self.session_cache_size, int)
            or self.session_cache_size < 0
        ):
            raise ConfigError("session_cache_size", "must be a non-negative integer")

        for name in ("login_path", "logout_path", "backchannel_logout_path"):
            _path(name, getattr(self, name))
        public = _words("public_paths", self.public_paths)
        for p in public:
            _path("public_paths", p)
        set_(self, "public_paths", public)
        if self.rules is not None and not isinstance(self.rules, RuleSet):
            set_(self, "rules", load_rules(self.rules))

        if self.redis_url is not None:
            parts = urlsplit(self.redis_url) if isinstance(self.redis_url, str) else None
            if parts is None or parts.scheme not in ("redis", "rediss", "unix"):
                raise ConfigError("redis_url", "must be a redis://, rediss:// or unix:// URL")
        if self.store is not None and not isinstance(self.store, Store):
            raise ConfigError("store", "must implement asgi_oidc.stores.Store")

        if self.cookie_secret is None:
            if self.redis_url is not None:
                raise ConfigError(
                    "cookie_secret",
                    "is required with redis_url: every instance must sign cookies alike",
                )
            logger.warning(
                "asgi_oidc: no cookie_secret configured; using a random one, so sessions "
                "end when this process restarts"
            )
            set_(self, "cookie_secret", secrets.token_urlsafe(32))
        elif not isinstance(self.cookie_secret, str) or len(self.cookie_secret) < 16:
            raise ConfigError("cookie_secret", "must be a string of at least 16 characters")
        if self.cookie_name is not None and (
            not isinstance(self.cookie_name, str) or not self.cookie_name.isascii()
        ):
            raise ConfigError("cookie_name", "must be an ASCII string")

    # -- derived values ---------------------------------------------------

    @property
    def callback_path(self) -> str:
        """The path part of ``redirect_uri``: where the middleware takes callbacks."""
        return urlsplit(self.redirect_uri).path or "/"

    @property
    def session_cookie_name(self) -> str:
        """``__Host-``-prefixed when the cookie is Secure, as browsers require."""
        if self.cookie_name:
            return self.cookie_name
        return "__Host-asgi_oidc" if self.cookie_secure else "asgi_oidc"

    @property
    def state_cookie_prefix(self) -> str:
        """Each login flow gets its own cookie, so tabs do not overwrite each other."""
        return f"{self.session_cookie_name}_state_"

    @property
    def scope_string(self) -> str:
        """The scopes as the one space-separated string providers expect."""
        return " ".join(self.scopes)

    # -- representation -----------------------------------------------------

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS and value is not None:
                value = "***"
            elif f.name == "redis_url":
                value = _mask_url(value)
            elif f.name == "rules" and value is not None:
                value = f"<{len(value)} rules>"
            shown.append(f"{f.name}={value!r}")
        return f"OIDCConfig({', '.join(shown)})"

    __str__ = __repr__

    # -- loaders --------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], /, **overrides: Any) -> OIDCConfig:
        """Build a config from a mapping; ``overrides`` win.

        Accepts this class's field names, and verbatim the identity-provider
        JSON that Cloudflare Access documents for its generic OIDC connector
        (``{"config": {"client_id", "client_secret", "auth_url", "token_url",
        "certs_url", "scopes", "pkce_enabled", "email_claim_name", "claims"},
        "type": "oidc", "name": …}``). That shape names no issuer or redirect
        URI, so pass them as overrides (or as top-level keys).
        """
        if not isinstance(data, Mapping):
            raise ConfigError("config", "must be a mapping")
        merged: dict[str, Any] = {}
        nested = data.get("config")
        if isinstance(nested, Mapping):
            kind = data.get("type", "oidc")
            if kind != "oidc":
                raise ConfigError("type", f"only 'oidc' providers are supported, not {kind!r}")
            top = {k: v for k, v in data.items() if k not in ("config", "type", "name", "id")}
            merged.update(_rename(nested))
            merged.update(_rename(top))
        else:
            merged.update(_rename(data))
        merged.update(overrides)
        known = {f.name for f in fields(cls)}
        for key in merged:
            if key not in known:
                raise ConfigError(key, "is not a known setting")
        try:
            return cls(**merged)
        except TypeError as exc:
            missing = str(exc).rsplit(" ", 1)[-1].strip("'")
            raise ConfigError(missing, "is required") from None

    @classmethod
    def from_env(
        cls, prefix: str = "OIDC_", environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> OIDCConfig:
        """Build a config from ``{prefix}{FIELD}`` environment variables.

        Booleans accept true/false/1/0/yes/no; lists are space- or
        comma-separated; ``{prefix}RULES`` is a JSON document or a path to a
        JSON or TOML file.
        """
        env = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(prefix + f.name.upper())
            if raw is None or f.name == "store":
                continue
            data[f.name] = _from_text(f.name, raw)
        data.update(overrides)
        return cls.from_mapping(data)


_BOOL_FIELDS = frozenset({"pkce", "cookie_secure", "pass_access_token", "bearer", "userinfo"})
_NUMBER_FIELDS = frozenset(
    {
        "leeway", "session_ttl", "session_idle_ttl", "state_ttl", "session_cache_ttl",
        "refresh_margin", "refresh_lock_ttl", "http_timeout", "jwks_cache_ttl",
        "jwks_refetch_cooldown",
    }
)  # fmt: skip


def _from_text(name: str, raw: str) -> Any:
    text = raw.strip()
    if name in _BOOL_FIELDS:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        if name == "userinfo" and lowered in ("", "auto"):
            return None
        raise ConfigError(name, "must be true or false")
    if name in _NUMBER_FIELDS:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(name, "must be a number of seconds") from None
    if name == "session_cache_size":
        try:
            return int(text)
        except ValueError:
            raise ConfigError(name, "must be an integer") from None
    if name == "rules":
        if text.startswith("{"):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError("rules", f"is not valid JSON ({exc.msg})") from None
        return Path(text)
    if name == "extra_authorize_params":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError(name, "must be a JSON object") from None
    return text


def _rename(data: Mapping[str, Any]) -> dict[str, Any]:
    return {_CLOUDFLARE_KEYS.get(k, k): v for k, v in data.items()}
