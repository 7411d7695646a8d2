"""OIDCConfig: validated at construction, secrets masked, three loaders."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from asgi_oidc import ConfigError, OIDCConfig

BASE: dict[str, Any] = {
    "issuer": "https://idp.example.com",
    "client_id": "web",
    "client_secret": "top-secret-value",
    "redirect_uri": "https://app.example.com/oauth2/callback",
    "cookie_secret": "cookie-secret-0123456789abcdef",
}


def make(**changes: Any) -> OIDCConfig:
    return OIDCConfig.from_mapping({**BASE, **changes})


def test_defaults() -> None:
    config = make()
    assert config.scopes == ("openid", "email", "profile")
    assert config.pkce is True
    assert config.cookie_secure is True
    assert config.email_claim == "email"
    assert config.groups_claim == "groups"
    assert config.token_endpoint_auth_method == "client_secret_basic"
    assert config.callback_path == "/oauth2/callback"
    assert config.session_cookie_name == "__Host-asgi_oidc"
    assert "HS256" not in config.id_token_algorithms
    assert "none" not in config.id_token_algorithms


def test_is_frozen() -> None:
    config = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.client_id = "other"  # type: ignore[misc]


def test_scopes_as_string_and_openid_added() -> None:
    assert make(scopes="email groups").scopes == ("openid", "email", "groups")
    assert make(scopes=["openid", "offline_access"]).scopes == ("openid", "offline_access")


def test_repr_masks_secrets() -> None:
    config = make(redis_url="redis://user:hunter2pass@redis.internal:6379/0")
    shown = repr(config)
    assert "top-secret-value" not in shown
    assert "cookie-secret-0123456789abcdef" not in shown
    assert "hunter2pass" not in shown
    assert "redis.internal" in shown
    assert str(config) == shown


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("issuer", "not a url"),
        ("issuer", "http://idp.example.com"),
        ("redirect_uri", "/relative"),
        ("client_id", ""),
        ("scopes", 42),
        ("pkce", "yes"),
        ("id_token_algorithms", ["none"]),
        ("id_token_algorithms", []),
        ("session_ttl", -1),
        ("session_idle_ttl", "long"),
        ("logout_path", "oauth2/logout"),
        ("public_paths", ["no-slash"]),
        ("redis_url", "http://not-redis"),
        ("cookie_secret", "short"),
        ("token_endpoint_auth_method", "private_key_jwt"),
        ("userinfo", "sometimes"),
        ("session_cache_size", -5),
        ("authorization_endpoint", "ftp://idp.example.com/auth"),
    ],
)
def test_bad_values_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        make(**{field: value})
    assert caught.value.field == field
    assert field in str(caught.value)


def test_missing_required_field_is_named() -> None:
    data = {k: v for k, v in BASE.items() if k != "redirect_uri"}
    with pytest.raises(ConfigError) as caught:
        OIDCConfig.from_mapping(data)
    assert caught.value.field == "redirect_uri"


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        make(cliend_id="typo")
    assert caught.value.field == "cliend_id"


def test_hs_algorithms_need_a_client_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        make(client_secret=None, token_endpoint_auth_method="none", id_token_algorithms="HS256")
    assert caught.value.field == "id_token_algorithms"


def test_redis_needs_a_shared_cookie_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        make(cookie_secret=None, redis_url="redis://localhost:6379/0")
    assert caught.value.field == "cookie_secret"


def test_missing_cookie_secret_is_generated_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make(cookie_secret=None)
    assert config.cookie_secret and len(config.cookie_secret) >= 32
    assert "cookie_secret" in caplog.text


def test_public_client_without_secret_uses_none_auth() -> None:
    config = make(client_secret=None)
    assert config.token_endpoint_auth_method == "none"


def test_cookie_not_secure_drops_host_prefix() -> None:
    assert make(cookie_secure=False).session_cookie_name == "asgi_oidc"


CLOUDFLARE = {
    "config": {
        "client_id": "<your client id>",
        "client_secret": "<your client secret>",
        "auth_url": "https://accounts.google.com/o/oauth2/auth",
        "token_url": "https://accounts.google.com/o/oauth2/token",
        "certs_url": "https://www.googleapis.com/oauth2/v3/certs",
        "scopes": ["openid", "email", "profile"],
        "pkce_enabled": False,
        "email_claim_name": "upn",
        "claims": ["employeeID", "groups"],
    },
    "type": "oidc",
    "name": "Generic Google",
}


def test_cloudflare_access_shape_verbatim() -> None:
    config = OIDCConfig.from_mapping(
        CLOUDFLARE,
        issuer="https://accounts.google.com",
        redirect_uri="https://app.example.com/oauth2/callback",
        cookie_secret="cookie-secret-0123456789abcdef",
    )
    assert config.client_id == "<your client id>"
    assert config.authorization_endpoint == "https://accounts.google.com/o/oauth2/auth"
    assert config.token_endpoint == "https://accounts.google.com/o/oauth2/token"
    assert config.jwks_uri == "https://www.googleapis.com/oauth2/v3/certs"
    assert config.pkce is False
    assert config.email_claim == "upn"
    assert config.claims == ("employeeID", "groups")


def test_cloudflare_shape_without_issuer_says_so() -> None:
    with pytest.raises(ConfigError) as caught:
        OIDCConfig.from_mapping(
            CLOUDFLARE, redirect_uri="https://app.example.com/cb", cookie_secret="c" * 32
        )
    assert caught.value.field == "issuer"


def test_cloudflare_shape_refuses_saml() -> None:
    with pytest.raises(ConfigError) as caught:
        OIDCConfig.from_mapping({**CLOUDFLARE, "type": "saml"}, issuer="https://idp.example.com")
    assert caught.value.field == "type"


def test_from_env(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"path": "/admin/*", "require": [{"group": "a"}]}]}))
    env = {
        "OIDC_ISSUER": "https://idp.example.com",
        "OIDC_CLIENT_ID": "web",
        "OIDC_CLIENT_SECRET": "s3cret",
        "OIDC_REDIRECT_URI": "https://app.example.com/oauth2/callback",
        "OIDC_COOKIE_SECRET": "cookie-secret-0123456789abcdef",
        "OIDC_SCOPES": "openid email groups",
        "OIDC_PKCE": "false",
        "OIDC_SESSION_TTL": "600",
        "OIDC_CLAIMS": "department,roles",
        "OIDC_RULES": str(rules),
        "UNRELATED": "x",
    }
    config = OIDCConfig.from_env(environ=env)
    assert config.scopes == ("openid", "email", "groups")
    assert config.pkce is False
    assert config.session_ttl == 600.0
    assert config.claims == ("department", "roles")
    assert config.rules is not None and len(config.rules) == 1


def test_from_env_bad_boolean_names_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        OIDCConfig.from_env(
            environ={
                **{f"OIDC_{k.upper()}": v for k, v in BASE.items()},
                "OIDC_COOKIE_SECURE": "maybe",
            }
        )
    assert caught.value.field == "cookie_secure"


def test_from_env_with_prefix() -> None:
    env = {f"APP_{k.upper()}": v for k, v in BASE.items()}
    assert OIDCConfig.from_env("APP_", environ=env).client_id == "web"


def test_compares_by_value() -> None:
    assert make() == make()
    assert make() != make(client_id="other")


def test_refresh_lease_must_outlive_a_slow_provider() -> None:
    with pytest.raises(ConfigError) as caught:
        make(http_timeout=30, refresh_lock_ttl=10)
    assert caught.value.field == "refresh_lock_ttl"
