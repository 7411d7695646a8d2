"""The whole flow through the middleware, with the development provider on a
real loopback port and the app called in-process."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from asgi_oidc import MemoryStore, OIDCMiddleware, Principal
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
from tests.support.idp_fixtures import CLIENT_ID


@pytest.fixture
async def middleware(dev_provider: DevProvider) -> AsyncIterator[OIDCMiddleware]:
    app = OIDCMiddleware(echo_app, **settings_for(dev_provider, store=MemoryStore()))
    yield app
    await app.aclose()


def make(dev_provider: DevProvider, **overrides: Any) -> OIDCMiddleware:
    settings = settings_for(dev_provider, **overrides)
    settings.setdefault("store", MemoryStore())
    return OIDCMiddleware(echo_app, **settings)


async def test_navigation_redirects_to_the_provider(
    middleware: OIDCMiddleware, dev_provider: DevProvider
) -> None:
    async with app_client(middleware) as client:
        location = await begin_login(client, "/reports?page=2")
    parts = urlsplit(location)
    assert location.startswith(dev_provider.issuer + "/authorize")
    params = query_of(location)
    assert params["client_id"] == CLIENT_ID
    assert params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
    assert params["scope"] == "openid email profile"
    assert parts.scheme == "http"


async def test_full_login_gives_the_principal(middleware: OIDCMiddleware) -> None:
    async with app_client(middleware) as client:
        done = await login(client, "alice", "/reports?page=2")
        assert done.headers["location"] == "https://testserver/reports?page=2"
        response = await client.get("/reports?page=2", headers=JSON)
    assert response.status_code == 200
    body = response.json()
    assert body["sub"] == "alice"
    assert body["email"] == "alice@corp.com"
    assert body["groups"] == ["admins", "staff"]
    assert body["claims"] == {"department": "finance", "roles": ["reader", "writer"]}
    assert body["display_name"] == "Alice Admin"
    assert body["access_token"] is None


async def test_session_cookie_attributes(middleware: OIDCMiddleware) -> None:
    async with app_client(middleware) as client:
        done = await login(client)
    cookies = done.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("__Host-asgi_oidc="))
    assert "HttpOnly" in session and "Secure" in session and "SameSite=Lax" in session
    assert "Path=/" in session and "Domain" not in session
    state_clear = [c for c in cookies if "_state_" in c]
    assert state_clear and all("Max-Age=0" in c for c in state_clear)


async def test_api_call_without_session_gets_401(middleware: OIDCMiddleware) -> None:
    async with app_client(middleware) as client:
        response = await client.get("/api/data", headers=JSON)
        post = await client.post("/form", headers=HTML)
        xhr = await client.get("/page", headers={**HTML, "x-requested-with": "XMLHttpRequest"})
        fetch = await client.get("/page", headers={**HTML, "sec-fetch-mode": "cors"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert post.status_code == 401 and xhr.status_code == 401 and fetch.status_code == 401
    assert "location" not in post.headers


async def test_public_paths_pass_without_login(dev_provider: DevProvider) -> None:
    app = make(dev_provider, public_paths=["/", "/static/*"])
    async with app_client(app) as client:
        home = await client.get("/", headers=HTML)
        asset = await client.get("/static/app.css", headers=HTML)
        private = await client.get("/private", headers=JSON)
        await login(client, "bob", "/private")
        home_again = await client.get("/", headers=JSON)
    await app.aclose()
    assert home.json()["user"] == "anonymous"
    assert asset.status_code == 200
    assert private.status_code == 401
    assert home_again.json()["sub"] == "bob"


async def test_two_tabs_logging_in_at_once_both_complete(middleware: OIDCMiddleware) -> None:
    async with app_client(middleware) as client:
        first = await begin_login(client, "/tab-one")
        second = await begin_login(client, "/tab-two")
        callback_one = await authorize(first, "alice")
        callback_two = await authorize(second, "alice")
        done_two = await finish_login(client, callback_two)
        done_one = await finish_login(client, callback_one)
    assert done_two.status_code == 302 and done_two.headers["location"].endswith("/tab-two")
    assert done_one.status_code == 302 and done_one.headers["location"].endswith("/tab-one")


async def test_userinfo_fills_claims_missing_from_the_id_token(dev_provider: DevProvider) -> None:
    dev_provider.claims_in_id_token = False
    app = make(dev_provider)
    async with app_client(app) as client:
        await login(client, "alice")
        body = (await client.get("/", headers=JSON)).json()
    await app.aclose()
    assert dev_provider.userinfo_calls == 1
    assert body["email"] == "alice@corp.com"
    assert body["groups"] == ["admins", "staff"]


async def test_userinfo_with_another_sub_is_refused(dev_provider: DevProvider) -> None:
    dev_provider.claims_in_id_token = False
    dev_provider.userinfo_overrides = {"sub": "mallory"}
    app = make(dev_provider)
    async with app_client(app) as client:
        callback = await authorize(await begin_login(client), "alice")
        response = await finish_login(client, callback)
        after = await client.get("/", headers=JSON)
    await app.aclose()
    assert response.status_code == 401
    assert after.status_code == 401


async def test_userinfo_not_called_when_the_id_token_has_everything(
    middleware: OIDCMiddleware, dev_provider: DevProvider
) -> None:
    async with app_client(middleware) as client:
        await login(client)
    assert dev_provider.userinfo_calls == 0


async def test_custom_email_and_dotted_groups_claims(dev_provider: DevProvider) -> None:
    app = make(dev_provider, groups_claim="realm_access.roles", claims=["realm_access.roles"])
    async with app_client(app) as client:
        await login(client, "alice")
        body = (await client.get("/", headers=JSON)).json()
    await app.aclose()
    assert body["groups"] == ["realm-admin"]
    assert body["claims"] == {"realm_access.roles": ["realm-admin"]}


async def test_client_secret_post(dev_provider: DevProvider) -> None:
    app = make(dev_provider, token_endpoint_auth_method="client_secret_post")
    async with app_client(app) as client:
        await login(client, "bob")
        assert (await client.get("/", headers=JSON)).json()["sub"] == "bob"
    await app.aclose()


async def test_explicit_endpoints_without_discovery(dev_provider: DevProvider) -> None:
    base = dev_provider.issuer
    app = make(
        dev_provider,
        authorization_endpoint=base + "/authorize",
        token_endpoint=base + "/token",
        jwks_uri=base + "/jwks",
    )
    dev_provider.discovery_overrides = {"issuer": "https://must-not-be-read.example"}
    async with app_client(app) as client:
        await login(client, "bob")
        assert (await client.get("/", headers=JSON)).json()["sub"] == "bob"
    await app.aclose()


async def test_pass_access_token(dev_provider: DevProvider) -> None:
    app = make(dev_provider, pass_access_token=True)
    async with app_client(app) as client:
        await login(client)
        body = (await client.get("/", headers=JSON)).json()
    await app.aclose()
    assert body["access_token"] and body["access_token"].count(".") == 2


async def test_logout_ends_the_session_and_the_old_cookie_stays_dead(
    middleware: OIDCMiddleware, dev_provider: DevProvider
) -> None:
    async with app_client(middleware) as client:
        await login(client)
        cookie = client.cookies.get("__Host-asgi_oidc")
        response = await client.get("/oauth2/logout", headers=HTML)
        assert response.status_code == 302
        location = response.headers["location"]
        assert location.startswith(dev_provider.issuer + "/logout")
        assert "id_token_hint" in query_of(location)
        assert any("Max-Age=0" in c for c in response.headers.get_list("set-cookie"))
    async with app_client(middleware) as replay:
        replay.cookies.set("__Host-asgi_oidc", cookie or "")
        after = await replay.get("/", headers=JSON)
    assert after.status_code == 401


async def test_logout_with_post_logout_redirect_and_state(dev_provider: DevProvider) -> None:
    dev_provider.add_post_logout_redirect_uri(CLIENT_ID, "https://testserver/signed-out")
    app = make(dev_provider, post_logout_redirect_uri="https://testserver/signed-out")
    async with app_client(app) as client:
        await login(client)
        response = await client.get("/oauth2/logout", headers=HTML)
        params = query_of(response.headers["location"])
        assert params["post_logout_redirect_uri"] == "https://testserver/signed-out"
        back = await client.get(f"/signed-out?state={params['state']}", headers=JSON)
        replay = await client.get(f"/signed-out?state={params['state']}", headers=JSON)
        forged = await client.get("/signed-out?state=forged", headers=JSON)
    await app.aclose()
    assert back.status_code == 200 and back.json()["user"] == "anonymous"
    assert replay.status_code == 400
    assert forged.status_code == 400


async def test_email_domains_only_lets_those_domains_in(dev_provider: DevProvider) -> None:
    app = make(dev_provider, email_domains=["corp.com"])
    async with app_client(app) as client:
        callback = await authorize(await begin_login(client), "mallory")
        refused = await finish_login(client, callback)
        await login(client, "alice")
        allowed = await client.get("/", headers=JSON)
    await app.aclose()
    assert refused.status_code == 403
    assert allowed.json()["sub"] == "alice"


async def test_provider_error_is_a_clear_page(middleware: OIDCMiddleware) -> None:
    async with app_client(middleware) as client:
        location = await begin_login(client)
        state = query_of(location)["state"]
        response = await client.get(
            f"/oauth2/callback?error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E"
            f"&state={state}&iss=http://127.0.0.1",
            headers=HTML,
        )
    assert response.status_code in (400, 403)
    assert "text/html" in response.headers["content-type"]
    assert "<b>no</b>" not in response.text


async def test_provider_down_at_login_is_503(dev_provider: DevProvider) -> None:
    app = make(dev_provider)
    dev_provider.down = True
    async with app_client(app) as client:
        response = await client.get("/", headers=HTML)
    await app.aclose()
    assert response.status_code == 503
    assert "Traceback" not in response.text


async def test_websocket_without_session_is_closed_before_accept(
    middleware: OIDCMiddleware,
) -> None:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "websocket.connect"}]

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "headers": [],
        "scheme": "wss",
        "server": ("testserver", 443),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
        "subprotocols": [],
    }
    await middleware(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": ""}]


async def test_websocket_with_session_reaches_the_app(middleware: OIDCMiddleware) -> None:
    async with app_client(middleware) as client:
        await login(client)
        cookie = client.cookies.get("__Host-asgi_oidc")
    sent: list[dict[str, Any]] = []
    messages = [{"type": "websocket.connect"}]

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "query_string": b"",
        "headers": [(b"cookie", f"__Host-asgi_oidc={cookie}".encode())],
    }
    await middleware(scope, receive, send)
    assert sent[0]["type"] == "websocket.accept"
    assert json.loads(sent[1]["text"])["sub"] == "alice"


async def test_lifespan_passes_through(middleware: OIDCMiddleware) -> None:
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


async def test_principal_is_a_principal(middleware: OIDCMiddleware) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["user"], scope["auth"]))
        await echo_app(scope, receive, send)

    middleware.app = app
    async with app_client(middleware) as client:
        await login(client)
        await client.get("/", headers=JSON)
    user, auth = seen[-1]
    assert isinstance(user, Principal)
    assert user.is_authenticated
    assert auth.scopes == ("admins", "staff")
    assert "access_token" not in repr(user)


async def test_nothing_secret_in_logs(
    dev_provider: DevProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make(dev_provider, pass_access_token=True)
    async with app_client(app) as client:
        await login(client)
        body = (await client.get("/", headers=JSON)).json()
        cookie = client.cookies.get("__Host-asgi_oidc") or ""
        await client.get("/oauth2/logout", headers=HTML)
    await app.aclose()
    text = caplog.text
    assert body["access_token"] not in text
    assert cookie.split(".")[0] not in text
    assert "s3cret" not in text


class _BrokenStore(MemoryStore):
    """A store with a bug: not a StoreUnavailable, just an exception."""

    async def get_and_expire(self, key: str, ttl: float) -> bytes | None:
        raise RuntimeError("secret-detail-from-a-bug")


async def test_a_bug_of_ours_fails_closed_without_detail(dev_provider: DevProvider) -> None:
    called: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(True)
        await echo_app(scope, receive, send)

    middleware = OIDCMiddleware(app, **settings_for(dev_provider, store=_BrokenStore()))
    async with app_client(middleware) as client:
        client.cookies.set("__Host-asgi_oidc", middleware.sessions.cookie_value("a-session-id"))
        response = await client.get("/", headers=JSON)
    await middleware.aclose()
    assert response.status_code == 500
    assert "secret-detail" not in response.text
    assert called == []


async def test_cached_fast_path_still_judges_each_principal(dev_provider: DevProvider) -> None:
    rules = {"rules": [{"path": "/admin/*", "require": [{"group": "admins"}]}]}
    app = make(dev_provider, rules=rules)
    async with app_client(app) as alice, app_client(app) as bob:
        await login(alice, "alice")
        await login(bob, "bob")
        # Warm the path memo and the session cache, then ask again.
        for _ in range(3):
            assert (await alice.get("/admin/x", headers=JSON)).status_code == 200
            assert (await bob.get("/admin/x", headers=JSON)).status_code == 403
        await alice.get("/oauth2/logout", headers=JSON)
        assert (await alice.get("/admin/x", headers=JSON)).status_code == 401
    await app.aclose()


async def test_bearer_token_wins_over_a_cached_session(dev_provider: DevProvider) -> None:
    app = make(dev_provider)
    async with app_client(app) as client:
        await login(client, "alice")
        assert (await client.get("/", headers=JSON)).json()["sub"] == "alice"
        token = dev_provider.access_token("bob", audience=CLIENT_ID)
        response = await client.get("/", headers={**JSON, "authorization": f"Bearer {token}"})
        forged = await client.get("/", headers={**JSON, "authorization": "Bearer x.y.z"})
    await app.aclose()
    assert response.json()["sub"] == "bob"
    assert forged.status_code == 401


async def test_email_domains_refuse_an_unverified_address(dev_provider: DevProvider) -> None:
    dev_provider.id_token_overrides = {"email_verified": False}
    app = make(dev_provider, email_domains=["corp.com"])
    async with app_client(app) as client:
        callback = await authorize(await begin_login(client), "alice")
        refused = await finish_login(client, callback)
        after = await client.get("/", headers=JSON)
    await app.aclose()
    assert refused.status_code == 403
    assert after.status_code == 401


async def test_a_non_ascii_return_path_survives_login(middleware: OIDCMiddleware) -> None:
    async with app_client(middleware) as client:
        start = await client.get("/oauth2/login?rd=/%E2%82%AC/report", headers=HTML)
        done = await finish_login(client, await authorize(start.headers["location"], "alice"))
    assert done.status_code == 302
    assert done.headers["location"] == "https://testserver/%E2%82%AC/report"
