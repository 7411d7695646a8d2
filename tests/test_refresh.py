"""Transparent token refresh (issue 5): one refresh call across every instance,
the rotated refresh token kept, a refusal or a changed subject ending the
session, and a provider that is down leaving it alone.

Sessions are made due for refresh by moving their access token's expiry into
the past in the store, as if its lifetime had run out: no test waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import jwt
import pytest

from asgi_oidc import OIDCMiddleware, Principal
from asgi_oidc.sessions import SessionRecord
from asgi_oidc.testing import DevProvider
from tests.support.app_fixtures import Factory
from tests.support.flow import HTML, JSON, app_client, login

COOKIE = "__Host-asgi_oidc"


def sid_of(app: OIDCMiddleware, client: httpx.AsyncClient) -> str:
    """The session id in the client's session cookie."""
    cookie = client.cookies.get(COOKIE)
    assert cookie
    sid = app.sessions.sid_from_cookie(cookie)
    assert sid is not None
    return sid


async def stored(app: OIDCMiddleware, client: httpx.AsyncClient) -> SessionRecord | None:
    """The session record the store holds for the client's cookie."""
    return await app.sessions.fetch(sid_of(app, client))


async def expire_access_token(app: OIDCMiddleware, client: httpx.AsyncClient) -> SessionRecord:
    """Make the session's access token count as expired (on every instance)."""
    record = await stored(app, client)
    assert record is not None and record.refresh_token
    updated = await app.sessions.replace(record, access_expires_at=time.time() - 1)
    assert updated is not None
    return updated


def is_login_redirect(response: httpx.Response, provider: DevProvider) -> bool:
    """A redirect to the provider's authorization endpoint."""
    return response.status_code == 302 and response.headers["location"].startswith(
        f"{provider.issuer}/authorize?"
    )


async def test_refresh_stampede_across_two_instances_makes_one_refresh_call(
    instance: Factory, dev_provider: DevProvider
) -> None:
    first = instance(pass_access_token=True)
    second = instance(pass_access_token=True)
    async with app_client(first) as on_first, app_client(second) as on_second:
        await login(on_first, "alice")
        on_second.cookies = on_first.cookies
        before = await expire_access_token(first, on_first)
        # A slow token endpoint: all 50 requests arrive while the refresh runs.
        dev_provider.token_delay = 0.2
        responses = await asyncio.gather(
            *((on_first, on_second)[i % 2].get(f"/api/{i}", headers=JSON) for i in range(50))
        )
        dev_provider.token_delay = 0.0
        calls = dev_provider.grant_counts["refresh_token"]
        after = await stored(second, on_second)
        assert after is not None
        # Only the rotated refresh token works now (the provider revoked the
        # old one), so a second refresh proves it is what was stored.
        await expire_access_token(second, on_second)
        again = await on_second.get("/api", headers=JSON)
        latest = await stored(first, on_first)
    assert [r.status_code for r in responses] == [200] * 50
    assert {r.json()["sub"] for r in responses} == {"alice"}
    assert calls == 1
    assert after.refresh_token and after.refresh_token != before.refresh_token
    assert after.access_token != before.access_token
    # Every waiter, on either instance, reused the winner's result.
    assert {r.json()["access_token"] for r in responses} == {after.access_token}
    assert again.status_code == 200
    assert dev_provider.grant_counts["refresh_token"] == 2
    assert latest is not None and latest.refresh_token not in (
        before.refresh_token,
        after.refresh_token,
    )


async def test_refresh_stampede_on_one_instance_makes_one_refresh_call(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    async with app_client(app) as client:
        await login(client, "bob")
        await expire_access_token(app, client)
        dev_provider.token_delay = 0.1
        responses = await asyncio.gather(*(client.get("/", headers=JSON) for _ in range(20)))
    assert {r.status_code for r in responses} == {200}
    assert dev_provider.grant_counts["refresh_token"] == 1


async def test_refresh_is_not_repeated_when_new_tokens_are_short_lived(
    instance: Factory, dev_provider: DevProvider
) -> None:
    # The provider's tokens live less than the refresh margin: the new token
    # is "due" at once, and still a burst must make one call, not one per
    # instance that waited.
    first, second = instance(refresh_margin=60), instance(refresh_margin=60)
    async with app_client(first) as on_first, app_client(second) as on_second:
        await login(on_first, "alice")
        on_second.cookies = on_first.cookies
        await expire_access_token(first, on_first)
        dev_provider.access_token_ttl = 30
        dev_provider.token_delay = 0.2
        responses = await asyncio.gather(
            *((on_first, on_second)[i % 2].get("/", headers=JSON) for i in range(10))
        )
    assert {r.status_code for r in responses} == {200}
    assert dev_provider.grant_counts["refresh_token"] == 1


async def test_refresh_refused_api_request_gets_401_and_the_session_is_gone(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    async with app_client(app) as client:
        await login(client, "alice")
        await expire_access_token(app, client)
        dev_provider.refresh_refused = True
        refused = await client.get("/api", headers=JSON)
        gone = await stored(app, client)
        dev_provider.refresh_refused = False
        # The ended session stays ended: the next navigation logs in again.
        page = await client.get("/page", headers=HTML)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert "location" not in refused.headers
    assert gone is None
    assert is_login_redirect(page, dev_provider)
    assert dev_provider.grant_counts["refresh_token"] == 1


async def test_refresh_refused_on_navigation_redirects_to_login(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    async with app_client(app) as client:
        await login(client, "alice")
        await expire_access_token(app, client)
        dev_provider.refresh_refused = True
        page = await client.get("/reports?year=2026", headers=HTML)
        gone = await stored(app, client)
    assert is_login_redirect(page, dev_provider)
    assert gone is None
    assert dev_provider.grant_counts["refresh_token"] == 1


async def test_refresh_refused_during_a_stampede_ends_the_session_on_both_instances(
    instance: Factory, dev_provider: DevProvider
) -> None:
    first, second = instance(), instance()
    async with app_client(first) as on_first, app_client(second) as on_second:
        await login(on_first, "bob")
        on_second.cookies = on_first.cookies
        await expire_access_token(first, on_first)
        dev_provider.refresh_refused = True
        dev_provider.token_delay = 0.1
        responses = await asyncio.gather(
            *((on_first, on_second)[i % 2].get("/", headers=JSON) for i in range(20))
        )
    assert {r.status_code for r in responses} == {401}
    assert dev_provider.grant_counts["refresh_token"] == 1


async def test_refreshed_id_token_with_another_sub_ends_the_session(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    async with app_client(app) as client:
        await login(client, "alice")
        await expire_access_token(app, client)
        # Core 12.2: a refreshed ID token must name the same subject.
        dev_provider.id_token_overrides = {"sub": "bob"}
        response = await client.get("/", headers=JSON)
        gone = await stored(app, client)
        dev_provider.id_token_overrides = {}
        later = await client.get("/", headers=JSON)
    assert response.status_code == 401
    assert gone is None
    assert later.status_code == 401
    assert dev_provider.grant_counts["refresh_token"] == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"iss": "https://evil.example"},
        {"aud": "another-client"},
        {"nonce": "not-the-login-nonce"},
    ],
    ids=["iss", "aud", "nonce"],
)
async def test_refreshed_id_token_with_changed_protocol_claims_ends_the_session(
    instance: Factory, dev_provider: DevProvider, changed: dict[str, str]
) -> None:
    app = instance()
    async with app_client(app) as client:
        await login(client, "alice")
        await expire_access_token(app, client)
        dev_provider.id_token_overrides = changed
        response = await client.get("/", headers=JSON)
        gone = await stored(app, client)
    assert response.status_code == 401
    assert gone is None


async def test_refreshed_id_token_with_aud_as_a_list_keeps_the_session(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    async with app_client(app) as client:
        await login(client, "alice")
        before = await expire_access_token(app, client)
        # The same single audience, spelled as a list (RFC 7519 4.1.3).
        dev_provider.id_token_overrides = {"aud": [before.claims["aud"]]}
        response = await client.get("/", headers=JSON)
        after = await stored(app, client)
    assert response.status_code == 200
    assert after is not None and after.access_token != before.access_token


async def test_refreshed_id_token_updates_the_principal_claims(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    async with app_client(app) as client:
        await login(client, "alice")
        await expire_access_token(app, client)
        dev_provider.id_token_overrides = {"department": "exec"}
        response = await client.get("/", headers=JSON)
    assert response.status_code == 200
    assert response.json()["claims"]["department"] == "exec"


async def test_provider_down_during_refresh_is_503_and_the_session_stays(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    async with app_client(app) as client:
        await login(client, "alice")
        before = await expire_access_token(app, client)
        dev_provider.down = True
        api = await client.get("/api", headers=JSON)
        page = await client.get("/page", headers=HTML)
        during = await stored(app, client)
        dev_provider.down = False
        back = await client.get("/api", headers=JSON)
        after = await stored(app, client)
    assert api.status_code == 503
    assert api.json()["error"] == "provider_unavailable"
    assert "retry-after" in api.headers
    # Not a refusal: no redirect to a login the provider cannot serve.
    assert page.status_code == 503
    assert "location" not in page.headers
    assert during is not None and during.refresh_token == before.refresh_token
    assert back.status_code == 200 and back.json()["sub"] == "alice"
    assert after is not None and after.refresh_token != before.refresh_token
    assert dev_provider.grant_counts["refresh_token"] == 1


async def test_logout_does_not_wait_for_a_refresh(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    async with app_client(app) as client:
        await login(client, "alice")
        await expire_access_token(app, client)
        dev_provider.down = True
        sid = sid_of(app, client)
        out = await client.get("/oauth2/logout", headers=HTML)
        dev_provider.down = False
        gone = await app.sessions.fetch(sid)
    assert out.status_code == 302
    assert gone is None
    assert dev_provider.grant_counts["refresh_token"] == 0


async def test_transparent_refresh_shows_the_new_access_token_to_the_app(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance(pass_access_token=True)
    async with app_client(app) as client:
        await login(client, "alice")
        first = (await client.get("/", headers=JSON)).json()["access_token"]
        before = await expire_access_token(app, client)
        second = (await client.get("/", headers=JSON)).json()["access_token"]
        after = await stored(app, client)
    assert first == before.access_token
    assert after is not None
    assert second == after.access_token != first
    claims = jwt.decode(second, options={"verify_signature": False})
    assert claims["sub"] == "alice"


async def test_without_pass_access_token_the_app_sees_no_token(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    async with app_client(app) as client:
        await login(client, "alice")
        await expire_access_token(app, client)
        response = await client.get("/", headers=JSON)
    assert response.status_code == 200
    assert response.json()["access_token"] is None
    assert dev_provider.grant_counts["refresh_token"] == 1


async def test_access_token_is_never_in_repr_or_logs(
    instance: Factory, dev_provider: DevProvider, caplog: pytest.LogCaptureFixture
) -> None:
    app = instance(pass_access_token=True)
    seen: list[Principal] = []
    inner = app.app

    async def capture(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["user"])
        await inner(scope, receive, send)

    app.app = capture
    caplog.set_level(logging.DEBUG)
    async with app_client(app) as client:
        await login(client, "alice")
        await expire_access_token(app, client)
        await client.get("/", headers=JSON)
        record = await stored(app, client)
    assert record is not None and record.access_token and record.refresh_token
    principal = seen[-1]
    assert principal.access_token == record.access_token
    for text in (repr(principal), str(principal), repr(record), caplog.text):
        assert record.access_token not in text
        assert record.refresh_token not in text


async def test_session_ended_while_its_refresh_is_in_flight_stays_ended(
    instance: Factory, dev_provider: DevProvider
) -> None:
    app = instance()
    async with app_client(app) as client:
        await login(client, "alice")
        await expire_access_token(app, client)
        dev_provider.token_delay = 0.3
        pending = asyncio.create_task(client.get("/", headers=JSON))
        while dev_provider.grant_counts["refresh_token"] == 0:
            await asyncio.sleep(0.01)  # the refresh now waits on the provider
        # Revoked (or logged out by the provider) meanwhile: the refresh that
        # finishes afterwards must not write the session back.
        assert await app.revoke(sub="alice") == 1
        during = await pending
        after = await client.get("/", headers=JSON)
        gone = await stored(app, client)
    assert during.status_code == 401
    assert after.status_code == 401
    assert gone is None


async def test_a_changed_record_is_never_written_back_after_the_session_ended(
    instance: Factory,
) -> None:
    app = instance()
    async with app_client(app) as client:
        await login(client, "alice")
        record = await stored(app, client)
        assert record is not None
        await app.revoke(session_id=record.sid)
        # What a refresh finishing just after the revocation would write:
        assert await app.sessions.replace(record, access_token="late") is None
        assert await app.sessions.fetch(record.sid) is None
