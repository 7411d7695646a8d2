"""OpenID Connect Back-Channel Logout 1.0 (issue 5): a valid logout token ends
the sessions it names on every instance at once; everything else is a 400,
and every answer carries ``Cache-Control: no-store``.

Two instances share one redis-server; the second keeps sessions in its
in-process cache for a minute, so only the invalidation it hears through
Redis can end them there in time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from asgi_oidc import OIDCMiddleware
from asgi_oidc.testing import REMOVE, DevProvider
from tests.support.app_fixtures import Factory
from tests.support.flow import JSON, app_client, login
from tests.support.idp_fixtures import CLIENT_ID

COOKIE = "__Host-asgi_oidc"
PATH = "/oauth2/backchannel-logout"
FORM = {"content-type": "application/x-www-form-urlencoded"}
EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def instance(instance: Factory) -> Factory:
    """Instances whose cache outlives the test: only invalidation can end a session."""

    def factory(**overrides: Any) -> OIDCMiddleware:
        overrides.setdefault("session_cache_ttl", 60)
        return instance(**overrides)

    return factory


@dataclass
class Browser:
    """One browser's session, as seen through each instance."""

    on_first: httpx.AsyncClient
    on_second: httpx.AsyncClient
    provider_sid: str

    async def statuses(self) -> tuple[int, int]:
        """The status of a request through each instance."""
        first = await self.on_first.get("/", headers=JSON)
        second = await self.on_second.get("/", headers=JSON)
        return first.status_code, second.status_code


@dataclass
class Deployment:
    """Two instances on one Redis, and a way to sign browsers in."""

    first: OIDCMiddleware
    second: OIDCMiddleware
    provider: DevProvider
    stack: AsyncExitStack

    async def browser(self, user: str = "alice") -> Browser:
        """A browser signed in on the first instance, its session warm in the
        second instance's cache."""
        on_first = await self.stack.enter_async_context(app_client(self.first))
        on_second = await self.stack.enter_async_context(app_client(self.second))
        await login(on_first, user)
        on_second.cookies = on_first.cookies
        browser = Browser(on_first, on_second, self.provider.session_ids(user)[-1])
        assert await browser.statuses() == (200, 200)
        return browser

    async def post(self, token: str) -> httpx.Response:
        """Deliver a logout token as the provider does."""
        return await self.post_body(urlencode({"logout_token": token}))

    async def post_body(self, body: str, headers: dict[str, str] = FORM) -> httpx.Response:
        """POST a raw body to the back-channel logout endpoint."""
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.first), base_url="https://testserver"
        ) as provider:
            return await provider.post(PATH, content=body, headers=headers)


@pytest.fixture
async def deployment(instance: Factory, dev_provider: DevProvider) -> AsyncIterator[Deployment]:
    """Two instances and the clients made for them, closed afterwards."""
    async with AsyncExitStack() as stack:
        yield Deployment(instance(), instance(), dev_provider, stack)


async def ended_everywhere(browser: Browser) -> tuple[int, int]:
    """Statuses once the invalidation has had its round trip through Redis."""
    statuses = await browser.statuses()
    for _ in range(100):
        if statuses == (401, 401):
            break
        await asyncio.sleep(0.01)
        statuses = await browser.statuses()
    return statuses


def logout_token(provider: DevProvider, **kwargs: Any) -> str:
    """A logout token for our client (``audience`` may be overridden)."""
    kwargs.setdefault("audience", CLIENT_ID)
    return provider.logout_token(**kwargs)


def assert_rejected(response: httpx.Response) -> None:
    """Back-Channel Logout 2.8: 400, and never cached."""
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"error": "invalid_request"}


async def assert_refused_and_nothing_ended(deployment: Deployment, token: str) -> None:
    """The token is refused and the signed-in browser keeps its session."""
    browser = await deployment.browser("alice")
    assert_rejected(await deployment.post(token))
    await asyncio.sleep(0.05)  # time enough for an invalidation to arrive
    assert await browser.statuses() == (200, 200)


# -- valid logout tokens -----------------------------------------------------


async def test_logout_by_sid_ends_that_session_on_both_instances(
    deployment: Deployment,
) -> None:
    target = await deployment.browser("alice")
    other = await deployment.browser("alice")
    response = await deployment.post(logout_token(deployment.provider, sid=target.provider_sid))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert await ended_everywhere(target) == (401, 401)
    # Another login of the same user is another provider session.
    assert await other.statuses() == (200, 200)


async def test_logout_by_sub_ends_every_session_of_the_user_on_both_instances(
    deployment: Deployment,
) -> None:
    first = await deployment.browser("alice")
    second = await deployment.browser("alice")
    bob = await deployment.browser("bob")
    response = await deployment.post(logout_token(deployment.provider, sub="alice"))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert await ended_everywhere(first) == (401, 401)
    assert await ended_everywhere(second) == (401, 401)
    assert await bob.statuses() == (200, 200)


async def test_logout_by_sub_and_sid_ends_that_session(deployment: Deployment) -> None:
    browser = await deployment.browser("alice")
    token = logout_token(deployment.provider, sub="alice", sid=browser.provider_sid)
    assert (await deployment.post(token)).status_code == 200
    assert await ended_everywhere(browser) == (401, 401)


async def test_logout_token_with_unknown_claims_is_accepted(deployment: Deployment) -> None:
    browser = await deployment.browser("alice")
    token = logout_token(
        deployment.provider, sub="alice", acr="urn:example:gold", extension={"a": [1, 2]}
    )
    assert (await deployment.post(token)).status_code == 200
    assert await ended_everywhere(browser) == (401, 401)


async def test_logout_token_without_exp_is_accepted(deployment: Deployment) -> None:
    browser = await deployment.browser("alice")
    token = logout_token(deployment.provider, sub="alice", exp=REMOVE)
    assert (await deployment.post(token)).status_code == 200
    assert await ended_everywhere(browser) == (401, 401)


async def test_form_content_type_with_parameters_is_accepted(deployment: Deployment) -> None:
    browser = await deployment.browser("alice")
    token = logout_token(deployment.provider, sub="alice")
    response = await deployment.post_body(
        urlencode({"logout_token": token}),
        {"content-type": "Application/X-WWW-Form-Urlencoded; charset=UTF-8"},
    )
    assert response.status_code == 200
    assert await ended_everywhere(browser) == (401, 401)


async def test_logout_token_for_no_current_session_is_accepted(deployment: Deployment) -> None:
    response = await deployment.post(logout_token(deployment.provider, sub="nobody"))
    assert response.status_code == 200


# -- rejections: the token ----------------------------------------------------


async def test_alg_none_is_rejected(deployment: Deployment) -> None:
    token = logout_token(deployment.provider, sub="alice", alg="none")
    await assert_refused_and_nothing_ended(deployment, token)


async def test_hs256_signed_with_the_public_key_is_rejected(deployment: Deployment) -> None:
    token = logout_token(deployment.provider, sub="alice", alg="HS256")
    await assert_refused_and_nothing_ended(deployment, token)


async def test_bad_signature_is_rejected(deployment: Deployment) -> None:
    provider = deployment.provider
    claims = jwt.decode(logout_token(provider, sub="alice"), options={"verify_signature": False})
    foreign = ec.generate_private_key(ec.SECP256R1())
    token = provider.sign(claims, alg="ES256", key=foreign, headers={"typ": "logout+jwt"})
    await assert_refused_and_nothing_ended(deployment, token)


async def test_wrong_issuer_is_rejected(deployment: Deployment) -> None:
    token = logout_token(deployment.provider, sub="alice", iss="https://evil.example")
    await assert_refused_and_nothing_ended(deployment, token)


async def test_wrong_audience_is_rejected(deployment: Deployment) -> None:
    token = logout_token(deployment.provider, sub="alice", audience="another-client")
    await assert_refused_and_nothing_ended(deployment, token)


async def test_extra_untrusted_audience_is_rejected(deployment: Deployment) -> None:
    token = logout_token(
        deployment.provider, sub="alice", aud=[CLIENT_ID, "another-client"], azp=CLIENT_ID
    )
    await assert_refused_and_nothing_ended(deployment, token)


async def test_expired_token_is_rejected(deployment: Deployment) -> None:
    long_ago = int(time.time()) - 3600
    token = logout_token(deployment.provider, sub="alice", iat=long_ago, exp=long_ago + 120)
    await assert_refused_and_nothing_ended(deployment, token)


async def test_token_issued_in_the_future_is_rejected(deployment: Deployment) -> None:
    later = int(time.time()) + 3600
    token = logout_token(deployment.provider, sub="alice", iat=later, exp=later + 120)
    await assert_refused_and_nothing_ended(deployment, token)


async def test_missing_iat_is_rejected(deployment: Deployment) -> None:
    token = logout_token(deployment.provider, sub="alice", iat=REMOVE)
    await assert_refused_and_nothing_ended(deployment, token)


async def test_missing_jti_is_rejected(deployment: Deployment) -> None:
    provider = deployment.provider
    claims = jwt.decode(logout_token(provider, sub="alice"), options={"verify_signature": False})
    del claims["jti"]
    token = provider.sign(claims, headers={"typ": "logout+jwt"})
    await assert_refused_and_nothing_ended(deployment, token)


async def test_no_events_claim_is_rejected(deployment: Deployment) -> None:
    token = logout_token(deployment.provider, sub="alice", events=None)
    await assert_refused_and_nothing_ended(deployment, token)


async def test_wrong_event_is_rejected(deployment: Deployment) -> None:
    token = logout_token(
        deployment.provider,
        sub="alice",
        events={"http://schemas.openid.net/event/some-other-event": {}},
    )
    await assert_refused_and_nothing_ended(deployment, token)


async def test_event_that_is_not_an_object_is_rejected(deployment: Deployment) -> None:
    token = logout_token(deployment.provider, sub="alice", events={EVENT: "logout"})
    await assert_refused_and_nothing_ended(deployment, token)


async def test_nonce_present_is_rejected(deployment: Deployment) -> None:
    token = logout_token(deployment.provider, sub="alice", nonce="n-0S6_WzA2Mj")
    await assert_refused_and_nothing_ended(deployment, token)


async def test_neither_sid_nor_sub_is_rejected(deployment: Deployment) -> None:
    token = logout_token(deployment.provider)
    await assert_refused_and_nothing_ended(deployment, token)


async def test_id_token_is_not_a_logout_token(deployment: Deployment) -> None:
    token = deployment.provider.id_token("alice", audience=CLIENT_ID)
    await assert_refused_and_nothing_ended(deployment, token)


async def test_replayed_jti_is_rejected(deployment: Deployment) -> None:
    earlier = await deployment.browser("alice")
    token = logout_token(deployment.provider, sub="alice")
    assert (await deployment.post(token)).status_code == 200
    assert await ended_everywhere(earlier) == (401, 401)
    # alice signs in again; the same token, replayed, must not end that.
    await assert_refused_and_nothing_ended(deployment, token)


async def test_reused_jti_in_another_token_is_rejected(deployment: Deployment) -> None:
    provider = deployment.provider
    assert (await deployment.post(logout_token(provider, sub="bob", jti="j-1"))).status_code == 200
    await assert_refused_and_nothing_ended(
        deployment, logout_token(provider, sub="alice", jti="j-1")
    )


# -- rejections: the request --------------------------------------------------


async def test_get_instead_of_post_is_rejected(deployment: Deployment) -> None:
    browser = await deployment.browser("alice")
    token = logout_token(deployment.provider, sub="alice")
    async with app_client(deployment.first) as provider:
        response = await provider.get(PATH, params={"logout_token": token})
    assert_rejected(response)
    assert await browser.statuses() == (200, 200)


async def test_wrong_content_type_is_rejected(deployment: Deployment) -> None:
    browser = await deployment.browser("alice")
    token = logout_token(deployment.provider, sub="alice")
    as_json = await deployment.post_body(
        f'{{"logout_token": "{token}"}}', {"content-type": "application/json"}
    )
    as_text = await deployment.post_body(
        urlencode({"logout_token": token}), {"content-type": "text/plain"}
    )
    assert_rejected(as_json)
    assert_rejected(as_text)
    assert await browser.statuses() == (200, 200)


async def test_two_logout_token_parameters_are_rejected(deployment: Deployment) -> None:
    browser = await deployment.browser("alice")
    token = logout_token(deployment.provider, sub="alice")
    response = await deployment.post_body(
        urlencode([("logout_token", token), ("logout_token", token)])
    )
    assert_rejected(response)
    assert await browser.statuses() == (200, 200)


@pytest.mark.parametrize(
    "body",
    ["", "logout_token=", "token=abc", "logout_token=not-a-jwt"],
    ids=["empty", "blank", "other-name", "not-a-jwt"],
)
async def test_missing_or_malformed_logout_token_is_rejected(
    deployment: Deployment, body: str
) -> None:
    assert_rejected(await deployment.post_body(body))


async def test_oversized_body_is_rejected(deployment: Deployment) -> None:
    body = urlencode({"logout_token": "x" * 70_000})
    assert_rejected(await deployment.post_body(body))


async def test_a_delivery_that_failed_midway_can_be_retried(dev_provider: DevProvider) -> None:
    from asgi_oidc import MemoryStore
    from asgi_oidc.errors import StoreUnavailable
    from tests.support.apps import echo_app
    from tests.support.flow import settings_for

    class FlakyStore(MemoryStore):
        failures = 1

        async def set_members(self, key: str) -> set[str]:
            if self.failures:
                self.failures -= 1
                raise StoreUnavailable("injected")
            return await super().set_members(key)

    app = OIDCMiddleware(echo_app, **settings_for(dev_provider, store=FlakyStore()))
    token = logout_token(dev_provider, sub="alice")
    async with app_client(app) as browser, app_client(app) as provider:
        await login(browser, "alice")
        form = {"content-type": "application/x-www-form-urlencoded"}
        body = urlencode({"logout_token": token})
        first = await provider.post("/oauth2/backchannel-logout", content=body, headers=form)
        retry = await provider.post("/oauth2/backchannel-logout", content=body, headers=form)
        after = await browser.get("/", headers=JSON)
    await app.aclose()
    assert first.status_code == 503
    assert retry.status_code == 200
    assert after.status_code == 401
