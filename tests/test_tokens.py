"""ID-token validation, OpenID Connect Core 3.1.3.7: one test per rejection,
against real tokens signed by the development provider."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from asgi_oidc import OIDCConfig
from asgi_oidc.client import ProviderClient
from asgi_oidc.errors import (
    DisallowedAlgorithm,
    InvalidAudience,
    InvalidAuthorizedParty,
    InvalidIssuer,
    InvalidNonce,
    InvalidSignature,
    MalformedToken,
    MissingClaim,
    TokenExpired,
    TokenNotYetValid,
    UnknownKey,
    UntrustedAudience,
)
from asgi_oidc.testing import DevClient, DevProvider, DevUser

ISSUER = "https://idp.test"
CLIENT = "app"
SECRET = "client-secret-for-hs-tests-0123456789"
NONCE = "n-0S6_WzA2Mj"


@pytest.fixture
def provider() -> DevProvider:
    return DevProvider(
        issuer=ISSUER,
        clients=[DevClient(CLIENT, SECRET, redirect_uris=("https://app.test/cb",))],
        users=[DevUser("alice", email="alice@corp.com", groups=("admins",))],
    )


@asynccontextmanager
async def provider_client(app: Any, **settings: Any) -> AsyncIterator[ProviderClient]:
    """A ProviderClient for our test client, talking to ``app`` in-process."""
    config = OIDCConfig(
        issuer=ISSUER,
        client_id=CLIENT,
        client_secret=SECRET,
        redirect_uri="https://app.test/cb",
        cookie_secret="x" * 32,
        **settings,
    )
    client = ProviderClient(config, transport=httpx.ASGITransport(app=app))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def client(provider: DevProvider) -> AsyncIterator[ProviderClient]:
    async with provider_client(
        provider, trusted_audiences=["https://api.corp.test"], jwks_refetch_cooldown=0
    ) as client:
        yield client


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": CLIENT,
        "exp": now + 300,
        "iat": now,
        "nonce": NONCE,
    }
    for name, value in changes.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


async def validate(client: ProviderClient, token: str) -> dict[str, Any]:
    return await client.validator.validate_id_token(token, nonce=NONCE)


async def test_valid_token_is_accepted(client: ProviderClient, provider: DevProvider) -> None:
    result = await validate(client, provider.sign(claims()))
    assert result["sub"] == "alice"


async def test_ec_signed_token_is_accepted(client: ProviderClient, provider: DevProvider) -> None:
    result = await validate(client, provider.sign(claims(), alg="ES256"))
    assert result["sub"] == "alice"


async def test_bad_signature(client: ProviderClient, provider: DevProvider) -> None:
    token = provider.sign(claims())
    head, body, signature = token.split(".")
    forged = jwt.utils.base64url_encode(b"\x00" * 256).decode()
    with pytest.raises(InvalidSignature):
        await validate(client, f"{head}.{body}.{forged}")
    assert signature != forged


async def test_token_signed_by_a_foreign_key_with_a_known_kid(
    client: ProviderClient, provider: DevProvider
) -> None:
    kid = jwt.get_unverified_header(provider.sign(claims()))["kid"]
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), foreign, algorithm="RS256", headers={"kid": kid})
    with pytest.raises(InvalidSignature):
        await validate(client, token)


async def test_wrong_iss(client: ProviderClient, provider: DevProvider) -> None:
    with pytest.raises(InvalidIssuer):
        await validate(client, provider.sign(claims(iss="https://evil.test")))


async def test_wrong_aud(client: ProviderClient, provider: DevProvider) -> None:
    with pytest.raises(InvalidAudience):
        await validate(client, provider.sign(claims(aud="someone-else")))


async def test_untrusted_extra_audience(client: ProviderClient, provider: DevProvider) -> None:
    token = provider.sign(claims(aud=[CLIENT, "https://untrusted.test"], azp=CLIENT))
    with pytest.raises(UntrustedAudience):
        await validate(client, token)


async def test_trusted_extra_audience_with_azp_is_accepted(
    client: ProviderClient, provider: DevProvider
) -> None:
    token = provider.sign(claims(aud=[CLIENT, "https://api.corp.test"], azp=CLIENT))
    assert (await validate(client, token))["azp"] == CLIENT


async def test_several_audiences_without_azp(client: ProviderClient, provider: DevProvider) -> None:
    token = provider.sign(claims(aud=[CLIENT, "https://api.corp.test"]))
    with pytest.raises(InvalidAuthorizedParty):
        await validate(client, token)


async def test_wrong_azp(client: ProviderClient, provider: DevProvider) -> None:
    with pytest.raises(InvalidAuthorizedParty):
        await validate(client, provider.sign(claims(azp="other-client")))


async def test_expired(client: ProviderClient, provider: DevProvider) -> None:
    with pytest.raises(TokenExpired):
        await validate(client, provider.sign(claims(exp=int(time.time()) - 120)))


async def test_issued_in_the_future(client: ProviderClient, provider: DevProvider) -> None:
    with pytest.raises(TokenNotYetValid):
        await validate(client, provider.sign(claims(iat=int(time.time()) + 3600)))


async def test_missing_iat(client: ProviderClient, provider: DevProvider) -> None:
    with pytest.raises(MissingClaim) as caught:
        await validate(client, provider.sign(claims(iat=None)))
    assert caught.value.claim == "iat"


async def test_missing_exp(client: ProviderClient, provider: DevProvider) -> None:
    with pytest.raises(MissingClaim) as caught:
        await validate(client, provider.sign(claims(exp=None)))
    assert caught.value.claim == "exp"


async def test_missing_sub(client: ProviderClient, provider: DevProvider) -> None:
    with pytest.raises(MissingClaim) as caught:
        await validate(client, provider.sign(claims(sub=None)))
    assert caught.value.claim == "sub"


async def test_empty_sub(client: ProviderClient, provider: DevProvider) -> None:
    with pytest.raises(MissingClaim):
        await validate(client, provider.sign(claims(sub="")))


async def test_wrong_nonce(client: ProviderClient, provider: DevProvider) -> None:
    with pytest.raises(InvalidNonce):
        await validate(client, provider.sign(claims(nonce="another-nonce")))


async def test_missing_nonce(client: ProviderClient, provider: DevProvider) -> None:
    with pytest.raises(InvalidNonce):
        await validate(client, provider.sign(claims(nonce=None)))


async def test_alg_none(client: ProviderClient) -> None:
    token = jwt.encode(claims(), key="", algorithm="none")
    with pytest.raises(DisallowedAlgorithm):
        await validate(client, token)


async def test_hs256_signed_with_the_rsa_public_key(
    client: ProviderClient, provider: DevProvider
) -> None:
    # The classic alg-confusion attack: HMAC keyed with the public key text.
    public_pem = provider._rsa_public_pem()
    token = provider.sign(claims(), alg="HS256", key=public_pem)
    with pytest.raises(DisallowedAlgorithm):
        await validate(client, token)


async def test_hs256_refused_unless_configured(
    client: ProviderClient, provider: DevProvider
) -> None:
    token = provider.sign(claims(), alg="HS256", key=SECRET.encode())
    with pytest.raises(DisallowedAlgorithm):
        await validate(client, token)


async def test_hs256_accepted_with_client_secret_when_configured(provider: DevProvider) -> None:
    async with provider_client(provider, id_token_algorithms=["HS256"]) as hs_client:
        good = provider.sign(claims(), alg="HS256", key=SECRET.encode())
        assert (await hs_client.validator.validate_id_token(good, nonce=NONCE))["sub"] == "alice"
        public_pem = provider._rsa_public_pem()
        bad = provider.sign(claims(), alg="HS256", key=public_pem)
        with pytest.raises(InvalidSignature):
            await hs_client.validator.validate_id_token(bad, nonce=NONCE)


async def test_rs256_token_with_the_ec_key_kid(
    client: ProviderClient, provider: DevProvider
) -> None:
    ec_kid = jwt.get_unverified_header(provider.sign(claims(), alg="ES256"))["kid"]
    token = provider.sign(claims(), alg="RS256", kid=ec_kid)
    with pytest.raises((DisallowedAlgorithm, UnknownKey)):
        await validate(client, token)


async def test_unknown_kid(client: ProviderClient, provider: DevProvider) -> None:
    with pytest.raises(UnknownKey):
        await validate(client, provider.sign(claims(), kid="no-such-key"))


async def test_key_rotation_refetches_the_key_set_once(
    client: ProviderClient, provider: DevProvider
) -> None:
    await validate(client, provider.sign(claims()))
    fetches = provider.jwks_fetches
    provider.rotate_keys()
    result = await validate(client, provider.sign(claims()))
    assert result["sub"] == "alice"
    assert provider.jwks_fetches == fetches + 1


async def test_unknown_kid_refetch_is_rate_limited(provider: DevProvider) -> None:
    async with provider_client(provider, jwks_refetch_cooldown=60) as limited:
        await limited.validator.validate_id_token(provider.sign(claims()), nonce=NONCE)
        fetches = provider.jwks_fetches
        for _ in range(5):
            with pytest.raises(UnknownKey):
                await limited.validator.validate_id_token(
                    provider.sign(claims(), kid="attacker-chosen"), nonce=NONCE
                )
        assert provider.jwks_fetches <= fetches + 1


async def test_last_good_key_set_is_kept_while_the_provider_is_down(provider: DevProvider) -> None:
    async with provider_client(provider, jwks_cache_ttl=0.01) as flaky:
        await flaky.validator.validate_id_token(provider.sign(claims()), nonce=NONCE)
        provider.down = True
        time.sleep(0.02)
        result = await flaky.validator.validate_id_token(provider.sign(claims()), nonce=NONCE)
        assert result["sub"] == "alice"


@pytest.mark.parametrize("garbage", ["", "a.b", "a.b.c", "x" * 20000, "..", "e30.e30.e30"])
async def test_malformed_tokens(client: ProviderClient, garbage: str) -> None:
    with pytest.raises((MalformedToken, DisallowedAlgorithm)):
        await validate(client, garbage)


def test_private_key_never_in_jwks(provider: DevProvider) -> None:
    for key in provider.jwks()["keys"]:
        assert "d" not in key
    pem = provider._rsa_public_pem()
    serialization.load_pem_public_key(pem)


async def test_a_provider_down_is_not_asked_again_on_every_token(provider: DevProvider) -> None:
    asked: list[str] = []

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/jwks":
            asked.append(scope["path"])
        await provider(scope, receive, send)

    async with provider_client(counting, jwks_cache_ttl=0.01, jwks_refetch_cooldown=60) as client:
        await client.validator.validate_id_token(provider.sign(claims()), nonce=NONCE)
        provider.down = True
        time.sleep(0.02)
        for _ in range(5):
            result = await client.validator.validate_id_token(provider.sign(claims()), nonce=NONCE)
            assert result["sub"] == "alice"
        assert len(asked) == 2  # the first fetch, and one failed refetch
