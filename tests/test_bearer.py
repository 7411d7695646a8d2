"""Bearer mode (issue 5): ``Authorization: Bearer <JWT>`` from API clients,
validated against the provider's key set, issuer, audience and algorithm
allowlist; the same principal and rules as a session, but no session, no
cookie, and never a redirect.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
import redis.asyncio as redis
from cryptography.hazmat.primitives.asymmetric import ec

from asgi_oidc import OIDCMiddleware
from asgi_oidc.testing import REMOVE, DevProvider
from tests.support.app_fixtures import Factory
from tests.support.flow import HTML, JSON, app_client
from tests.support.idp_fixtures import CLIENT_ID

RULES = {"rules": [{"path": "/admin/*", "require": [{"group": "admins"}]}]}


def bearer(token: str, accept: dict[str, str] = JSON) -> dict[str, str]:
    """Request headers presenting ``token``."""
    return {"authorization": f"Bearer {token}", **accept}


def access_claims(provider: DevProvider, sub: str = "alice", **extra: Any) -> dict[str, Any]:
    """The claims of a valid access token, to sign in odd ways."""
    token = provider.access_token(sub, audience=CLIENT_ID, **extra)
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def call(
    app: OIDCMiddleware, token: str, path: str = "/api/orders", **kw: Any
) -> httpx.Response:
    """One request with a bearer token, from a client that keeps no cookies."""
    async with app_client(app) as client:
        return await client.get(path, headers=bearer(token, **kw))


def refused(response: httpx.Response) -> bool:
    """401 with a Bearer challenge naming invalid_token, and no redirect."""
    return (
        response.status_code == 401
        and response.headers["www-authenticate"].startswith("Bearer ")
        and 'error="invalid_token"' in response.headers["www-authenticate"]
        and "location" not in response.headers
        and "set-cookie" not in response.headers
    )


async def test_valid_bearer_token_reaches_the_app_without_a_session(
    instance: Factory, dev_provider: DevProvider, redis_url: str
) -> None:
    app = instance()
    response = await call(app, dev_provider.access_token("alice", audience=CLIENT_ID))
    client = redis.from_url(redis_url)
    try:
        sessions = [k async for k in client.scan_iter("asgi_oidc:session:*")]
        subjects = [k async for k in client.scan_iter("asgi_oidc:subject:*")]
    finally:
        await client.aclose()
    assert response.status_code == 200
    body = response.json()
    assert body["sub"] == "alice"
    assert body["email"] == "alice@corp.com"
    assert body["groups"] == ["admins", "staff"]
    assert body["claims"] == {"department": "finance", "roles": ["reader", "writer"]}
    assert body["access_token"] is None
    assert "set-cookie" not in response.headers
    assert sessions == [] and subjects == []


async def test_bearer_principal_carries_the_token_with_pass_access_token(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance(pass_access_token=True)
    token = dev_provider.access_token("bob", audience=CLIENT_ID)
    response = await call(app, token)
    assert response.status_code == 200
    assert response.json()["access_token"] == token


async def test_expired_bearer_token_is_401(instance: Factory, dev_provider: DevProvider) -> None:
    app = instance()
    # Well past the leeway the middleware allows for clock skew.
    token = dev_provider.access_token("alice", audience=CLIENT_ID, ttl=-300)
    response = await call(app, token)
    assert refused(response)


async def test_bearer_token_for_another_audience_is_401(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    response = await call(app, dev_provider.access_token("alice", audience="another-api"))
    assert refused(response)


async def test_bearer_token_from_another_issuer_is_401(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    token = dev_provider.access_token("alice", audience=CLIENT_ID, iss="https://evil.example")
    response = await call(app, token)
    assert refused(response)


async def test_bearer_token_with_alg_none_is_401(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    token = dev_provider.sign(access_claims(dev_provider), alg="none")
    response = await call(app, token)
    assert refused(response)


async def test_bearer_token_hs256_signed_with_the_public_key_is_401(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    # Algorithm confusion: HS256 keyed with the provider's RSA public key.
    token = dev_provider.sign(access_claims(dev_provider), alg="HS256")
    response = await call(app, token)
    assert refused(response)


async def test_bearer_token_with_a_bad_signature_is_401(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    foreign = ec.generate_private_key(ec.SECP256R1())
    # The provider's EC kid, someone else's key.
    token = dev_provider.sign(access_claims(dev_provider), alg="ES256", key=foreign)
    response = await call(app, token)
    assert refused(response)


async def test_bearer_token_with_an_unknown_kid_is_401(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    token = dev_provider.sign(access_claims(dev_provider), kid="no-such-key")
    response = await call(app, token)
    assert refused(response)


async def test_bearer_token_without_exp_is_401(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    token = dev_provider.access_token("alice", audience=CLIENT_ID, exp=REMOVE)
    response = await call(app, token)
    assert refused(response)


@pytest.mark.parametrize(
    "value",
    ["opaque-access-token", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.", "x" * 20_000],
    ids=["opaque", "three-dots", "empty-signature", "huge"],
)
async def test_non_jwt_bearer_string_is_401(instance: Factory, value: str) -> None:
    app = instance()
    response = await call(app, value)
    assert refused(response)


async def test_audience_setting_is_honoured(instance: Factory, dev_provider: DevProvider) -> None:
    app = instance(audience="https://api.example")
    for_api = await call(app, dev_provider.access_token("alice", audience="https://api.example"))
    for_client = await call(app, dev_provider.access_token("alice", audience=CLIENT_ID))
    assert for_api.status_code == 200
    assert for_api.json()["sub"] == "alice"
    # With an audience configured, a token for the client is not for this API.
    assert refused(for_client)


async def test_rules_apply_to_bearer_principals(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance(rules=RULES)
    bob = await call(app, dev_provider.access_token("bob", audience=CLIENT_ID), "/admin/users")
    alice = await call(app, dev_provider.access_token("alice", audience=CLIENT_ID), "/admin/users")
    bob_elsewhere = await call(app, dev_provider.access_token("bob", audience=CLIENT_ID), "/shop")
    assert bob.status_code == 403
    assert bob.json()["error"] == "forbidden"
    assert "location" not in bob.headers
    assert alice.status_code == 200
    assert bob_elsewhere.status_code == 200


async def test_email_domains_apply_to_bearer_principals(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance(email_domains=["corp.com"])
    mallory = await call(app, dev_provider.access_token("mallory", audience=CLIENT_ID))
    alice = await call(app, dev_provider.access_token("alice", audience=CLIENT_ID))
    assert mallory.status_code == 403
    assert alice.status_code == 200


async def test_bad_bearer_token_is_never_redirected_even_for_html(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    expired = dev_provider.access_token("alice", audience=CLIENT_ID, ttl=-300)
    for token in (expired, "not-a-jwt"):
        async with app_client(app) as client:
            response = await client.get(
                "/page", headers={**bearer(token, HTML), "sec-fetch-mode": "navigate"}
            )
        assert response.status_code == 401
        assert "location" not in response.headers
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_valid_bearer_token_with_html_accept_is_served(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    token = dev_provider.access_token("alice", audience=CLIENT_ID)
    response = await call(app, token, accept=HTML)
    assert response.status_code == 200
    assert response.json()["sub"] == "alice"


async def test_bearer_token_not_yet_valid_is_401(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    later = int(time.time()) + 3600
    token = dev_provider.access_token("alice", audience=CLIENT_ID, iat=later, nbf=later)
    response = await call(app, token)
    assert refused(response)


async def test_id_token_presented_as_a_bearer_token_is_401(
    instance: Factory, dev_provider: DevProvider
) -> None:
    # Its aud is the client, the default API audience: only its kind tells.
    id_token = dev_provider.id_token("alice", audience=CLIENT_ID, nonce="n-123")
    assert refused(await call(instance(), id_token))


async def test_logout_token_presented_as_a_bearer_token_is_401(
    instance: Factory, dev_provider: DevProvider
) -> None:
    token = dev_provider.logout_token(audience=CLIENT_ID, sub="alice")
    assert refused(await call(instance(), token))


async def test_refreshed_id_token_without_nonce_is_not_a_bearer_token(
    instance: Factory, dev_provider: DevProvider
) -> None:
    id_token = dev_provider.id_token("alice", audience=CLIENT_ID)
    assert refused(await call(instance(), id_token))


async def test_untyped_token_for_a_configured_api_audience_is_accepted(
    instance: Factory, dev_provider: DevProvider
) -> None:
    claims = access_claims(dev_provider, "alice")
    claims["aud"] = "https://api.corp.test"
    token = dev_provider.sign(claims, headers={"typ": "JWT"})
    app = instance(audience="https://api.corp.test")
    response = await call(app, token)
    assert response.status_code == 200
    assert response.json()["sub"] == "alice"
