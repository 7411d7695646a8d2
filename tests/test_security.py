"""One named regression test per attack on the flow."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from asgi_oidc import MemoryStore, OIDCMiddleware
from asgi_oidc.testing import DevProvider
from tests.support.apps import echo_app
from tests.support.flow import (
    HTML,
    JSON,
    app_client,
    authorize,
    begin_login,
    finish_login,
    login,
    query_of,
    settings_for,
)
from tests.test_redirects import browser_host, payloads

COOKIE = "__Host-asgi_oidc"


Factory = Callable[..., OIDCMiddleware]


@pytest.fixture
async def make(dev_provider: DevProvider) -> AsyncIterator[Factory]:
    """Builds middlewares in front of the echo app; closes them afterwards."""
    made: list[OIDCMiddleware] = []

    def factory(_provider: DevProvider, **overrides: object) -> OIDCMiddleware:
        settings = settings_for(_provider, **overrides)
        settings.setdefault("store", MemoryStore())
        app = OIDCMiddleware(echo_app, **settings)
        made.append(app)
        return app

    yield factory
    for app in made:
        await app.aclose()


async def test_replayed_state_is_refused(dev_provider: DevProvider, make: Factory) -> None:
    app = make(dev_provider)
    async with app_client(app) as client:
        callback = await authorize(await begin_login(client), "alice")
        first = await finish_login(client, callback)
        replay = await finish_login(client, callback)
    assert first.status_code == 302
    assert replay.status_code == 400
    assert "expired or was already used" in replay.text


async def test_state_from_another_browser_is_refused(
    dev_provider: DevProvider, make: Factory
) -> None:
    app = make(dev_provider)
    async with app_client(app) as attacker, app_client(app) as victim:
        callback = await authorize(await begin_login(attacker), "mallory")
        # Login CSRF: the attacker's callback URL, opened in the victim's browser.
        response = await finish_login(victim, callback)
        after = await victim.get("/", headers=JSON)
    assert response.status_code == 400
    assert "another browser" in response.text
    assert after.status_code == 401


async def test_missing_state_is_refused(dev_provider: DevProvider, make: Factory) -> None:
    app = make(dev_provider)
    async with app_client(app) as client:
        response = await client.get("/oauth2/callback?code=abc", headers=HTML)
    assert response.status_code == 400


async def test_unknown_state_is_refused(dev_provider: DevProvider, make: Factory) -> None:
    app = make(dev_provider)
    async with app_client(app) as client:
        response = await client.get("/oauth2/callback?code=abc&state=made-up", headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"] == "state_unknown"


async def test_repeated_parameters_are_refused(dev_provider: DevProvider, make: Factory) -> None:
    app = make(dev_provider)
    async with app_client(app) as client:
        response = await client.get("/oauth2/callback?state=a&state=b&code=c", headers=JSON)
    assert response.status_code == 400


async def test_mix_up_wrong_iss_parameter_is_refused(
    dev_provider: DevProvider, make: Factory
) -> None:
    dev_provider.callback_overrides = {"iss": "https://evil.example"}
    app = make(dev_provider)
    async with app_client(app) as client:
        response = await finish_login(client, await authorize(await begin_login(client), "alice"))
    assert response.status_code == 400
    assert dev_provider.grant_counts["authorization_code"] == 0


async def test_mix_up_missing_iss_when_advertised_is_refused(
    dev_provider: DevProvider, make: Factory
) -> None:
    from asgi_oidc.testing import REMOVE

    dev_provider.callback_overrides = {"iss": REMOVE}
    app = make(dev_provider)
    async with app_client(app) as client:
        response = await finish_login(client, await authorize(await begin_login(client), "alice"))
    assert response.status_code == 400
    assert dev_provider.grant_counts["authorization_code"] == 0


async def test_discovery_issuer_mismatch_is_refused(
    dev_provider: DevProvider, make: Factory
) -> None:
    dev_provider.discovery_overrides = {"issuer": "https://evil.example"}
    app = make(dev_provider)
    async with app_client(app) as client:
        response = await client.get("/", headers=HTML)
    assert response.status_code == 502
    assert "different issuer" in response.text


async def test_tampered_session_cookie_is_unauthenticated(
    dev_provider: DevProvider, make: Factory
) -> None:
    app = make(dev_provider)
    async with app_client(app) as client:
        await login(client)
        good = client.cookies.get(COOKIE) or ""
    sid, _, mac = good.partition(".")
    for forged in (
        sid[:-1] + ("A" if sid[-1] != "A" else "B") + "." + mac,
        sid + "." + mac[:-1] + ("A" if mac[-1] != "A" else "B"),
        sid,
        "." + mac,
        "garbage",
        "x" * 5000,
        "%00%ff",
        '"quoted"',
    ):
        async with app_client(app) as client:
            client.cookies.set(COOKIE, forged)
            response = await client.get("/", headers=JSON)
        assert response.status_code == 401, forged


async def test_session_signed_with_another_secret_is_unauthenticated(
    dev_provider: DevProvider, make: Factory
) -> None:
    store = MemoryStore()
    app = make(dev_provider, store=store)
    other = make(dev_provider, store=store, cookie_secret="another-cookie-secret-987654321")
    async with app_client(app) as client:
        await login(client)
        cookie = client.cookies.get(COOKIE) or ""
    async with app_client(other) as client:
        client.cookies.set(COOKIE, cookie)
        response = await client.get("/", headers=JSON)
    assert response.status_code == 401


async def test_session_fixation_gets_a_fresh_session_id(
    dev_provider: DevProvider, make: Factory
) -> None:
    app = make(dev_provider)
    async with app_client(app) as client:
        await login(client, "alice")
        first = client.cookies.get(COOKIE)
        # Signed in already, the user starts another login explicitly.
        start = await client.get("/oauth2/login", headers=HTML)
        await finish_login(client, await authorize(start.headers["location"], "alice"))
        second = client.cookies.get(COOKIE)
    assert first and second and first != second
    async with app_client(app) as client:
        client.cookies.set(COOKIE, first)
        assert (await client.get("/", headers=JSON)).status_code == 401


async def test_code_from_another_flow_fails_pkce(dev_provider: DevProvider, make: Factory) -> None:
    app = make(dev_provider)
    async with app_client(app) as client:
        victim_callback = await authorize(await begin_login(client), "alice")
        own = query_of(await begin_login(client))
        stolen_code = query_of(victim_callback)["code"]
        # The attacker's own state, with the victim's code injected.
        cookie_binding_kept = await client.get(
            f"/oauth2/callback?code={stolen_code}&state={own['state']}&iss={dev_provider.issuer}",
            headers=JSON,
        )
    assert cookie_binding_kept.status_code in (400, 401, 502)
    assert dev_provider.grant_counts["authorization_code"] == 1


@pytest.mark.parametrize("payload", payloads()[:120])
async def test_open_redirect_through_the_login_path(
    dev_provider: DevProvider, make: Factory, payload: str
) -> None:
    app = make(dev_provider)
    async with app_client(app) as client:
        start = await client.get("/oauth2/login", params={"rd": payload}, headers=HTML)
        callback = await authorize(start.headers["location"], "alice")
        done = await finish_login(client, callback)
    assert done.status_code == 302
    assert browser_host(done.headers["location"]) == "testserver"


@pytest.mark.parametrize(
    "path", ["//evil.example/", "/\\evil.example", "/%2F%2Fevil.example", "/%09/evil.example"]
)
async def test_open_redirect_through_the_requested_path(
    dev_provider: DevProvider, make: Factory, path: str
) -> None:
    app = make(dev_provider)
    async with app_client(app) as client:
        start = await client.get(path, headers=HTML)
        if start.status_code != 302:
            assert start.status_code == 400
            return
        callback = await authorize(start.headers["location"], "alice")
        done = await finish_login(client, callback)
    assert browser_host(done.headers["location"]) == "testserver"


async def test_error_pages_never_echo_attacker_text(
    dev_provider: DevProvider, make: Factory
) -> None:
    app = make(dev_provider)
    async with app_client(app) as client:
        state = query_of(await begin_login(client))["state"]
        response = await client.get(
            "/oauth2/callback",
            params={
                "state": state,
                "error": "<script>alert(1)</script>",
                "error_description": "<img src=x onerror=alert(1)>",
                "iss": dev_provider.issuer,
            },
            headers=HTML,
        )
    assert response.status_code == 400
    assert "<script>" not in response.text and "onerror" not in response.text
