"""Our middleware against a certified OpenID Provider (panva's oidc-provider).

The app is called in-process (httpx's ASGI transport, mounted at its origin on
127.0.0.1) while everything the provider serves goes over the network, through
one cookie jar, as in a browser. The middleware's own outbound HTTP is real too,
recorded on the way (``RecordingTransport``) so that the tests can say what it
asked the provider.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import httpx
import jwt
import pytest

from tests.interop.conftest import (
    APP_A,
    APP_B,
    BASIC_CLIENT,
    CLIENTS,
    HTML,
    JSON,
    POST_CLIENT,
    SCOPES,
    SECURE_APP,
    USERINFO_IMPOSTOR,
    MiddlewareFactory,
    RegisteredClient,
    callback_uri,
    login,
    post_logout_uri,
    session_id,
    session_record,
    set_cookies,
    user_agent,
    whoami,
)
from tests.support.oidc_provider import (
    OidcProviderProcess,
    callback_params,
    drive_logout,
    parse_page,
)

ALICE = {
    "sub": "alice",
    "email": "alice@corp.example",
    "groups": ["admins", "staff"],
    "claims": {"department": "engineering", "roles": ["deployer", "reviewer"]},
    "display_name": "Alice Liddell",
}


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _principal(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ALICE}


@pytest.mark.parametrize("client", CLIENTS, ids=[c.auth_method for c in CLIENTS])
async def test_login_and_logout(
    op: OidcProviderProcess, make_middleware: MiddlewareFactory, client: RegisteredClient
) -> None:
    built = make_middleware(op, client=client)
    async with user_agent({APP_A: built.app}) as ua:
        done = await login(ua, APP_A, path="/reports/q1?x=1")

        # The authorization request, as the provider got it.
        location = done.authorize.headers["location"]
        assert _endpoint(location) == op.authorization_endpoint
        asked = _query(location)
        assert asked["response_type"] == "code"
        assert asked["client_id"] == client.client_id
        assert asked["redirect_uri"] == callback_uri(APP_A)
        assert asked["scope"] == SCOPES
        assert asked["code_challenge_method"] == "S256"
        assert asked["nonce"] and asked["state"] and asked["code_challenge"]
        # The provider's answer: iss (RFC 9207), our state, a code.
        answer = _query(done.callback_url)
        assert answer["iss"] == op.issuer
        assert answer["state"] == asked["state"]
        assert answer["code"]

        # Signed in, and back on the page first asked for.
        assert done.callback.status_code == 302, done.callback.text
        assert done.callback.headers["location"] == f"{APP_A}/reports/q1?x=1"
        assert _principal(await whoami(ua, f"{APP_A}/reports/q1?x=1")) == ALICE

        # The code exchange, with the client authentication asked for.
        [(request, response)] = built.outbound.to(op.token_endpoint)
        assert response.status_code == 200
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        assert form["grant_type"] == "authorization_code"
        assert form["code"] == answer["code"]
        assert form["redirect_uri"] == callback_uri(APP_A)
        assert form["code_verifier"]
        if client is BASIC_CLIENT:
            credentials = f"{quote_plus(client.client_id)}:{quote_plus(client.client_secret)}"
            assert request.headers["authorization"] == (
                "Basic " + base64.b64encode(credentials.encode()).decode()
            )
            assert "client_secret" not in form
        else:
            assert "authorization" not in request.headers
            assert form["client_id"] == client.client_id
            assert form["client_secret"] == client.client_secret

        # Logout: here at once, then at the provider's end_session_endpoint.
        out = await ua.get(f"{APP_A}/oauth2/logout", headers=HTML)
        assert out.status_code == 302, out.text
        assert set_cookies(out)["asgi_oidc"]["max-age"] == "0"
        end_session = out.headers["location"]
        assert _endpoint(end_session) == op.end_session_endpoint
        sent = _query(end_session)
        assert sent["client_id"] == client.client_id
        assert sent["post_logout_redirect_uri"] == post_logout_uri(APP_A)
        assert jwt.decode(sent["id_token_hint"], options={"verify_signature": False})["sub"] == (
            "alice"
        )
        assert (await ua.get(f"{APP_A}/reports/q1", headers=JSON)).status_code == 401

        back = await drive_logout(ua, end_session)  # answers the confirmation page
        assert back.status_code == 303, back.text
        assert back.headers["location"].startswith(post_logout_uri(APP_A) + "?")
        assert callback_params(back)["state"] == sent["state"]
        landed = await ua.get(back.headers["location"], headers=JSON)
        assert landed.status_code == 200
        assert landed.json() == {"user": "anonymous", "path": "/signed-out"}
        # The logout state is taken once.
        replay = await ua.get(back.headers["location"], headers=JSON)
        assert replay.status_code == 400

        # The provider's session ended too: the next login shows its login page.
        again = await ua.get(f"{APP_A}/reports/q1", headers=HTML)
        assert again.status_code == 302
        page = await ua.get(again.headers["location"], follow_redirects=True)
        forms, _ = parse_page(page.text)
        assert any(f.fields.get("prompt") == "login" for f in forms), page.text


@pytest.mark.parametrize("in_id_token", [False, True], ids=["at-userinfo", "in-id-token"])
async def test_claims_where_the_provider_puts_them(
    request: pytest.FixtureRequest, make_middleware: MiddlewareFactory, in_id_token: bool
) -> None:
    op: OidcProviderProcess = request.getfixturevalue(
        "op_claims_in_id_token" if in_id_token else "op"
    )
    built = make_middleware(op, client=BASIC_CLIENT)
    async with user_agent({APP_A: built.app}) as ua:
        done = await login(ua, APP_A)
        assert done.callback.status_code == 302, done.callback.text
        assert _principal(await whoami(ua, f"{APP_A}/")) == ALICE

    [(_, token)] = built.outbound.to(op.token_endpoint)
    id_token = jwt.decode(token.json()["id_token"], options={"verify_signature": False})
    userinfo = built.outbound.to(op.userinfo_endpoint)
    carried = ("email", "groups", "department", "roles")
    if in_id_token:
        assert {name: id_token[name] for name in carried} == {
            "email": "alice@corp.example",
            "groups": ["admins", "staff"],
            "department": "engineering",
            "roles": ["deployer", "reviewer"],
        }
        assert userinfo == []  # nothing was missing: no UserInfo call
    else:
        assert not set(carried) & set(id_token)
        [(info_request, info)] = userinfo
        assert info_request.headers["authorization"] == f"Bearer {token.json()['access_token']}"
        assert info.json()["sub"] == "alice"


async def test_userinfo_naming_another_subject_is_refused(
    op: OidcProviderProcess, make_middleware: MiddlewareFactory
) -> None:
    built = make_middleware(op)
    async with user_agent({APP_A: built.app}) as ua:
        done = await login(ua, APP_A, user=USERINFO_IMPOSTOR)
        [(_, info)] = built.outbound.to(op.userinfo_endpoint)
        assert info.json()["sub"] == "someone-else"  # the provider did lie
        assert done.callback.status_code == 401, done.callback.text
        assert "asgi_oidc" not in set_cookies(done.callback)
        assert (await ua.get(f"{APP_A}/", headers=JSON)).status_code == 401


async def test_consent_refused(op: OidcProviderProcess, make_middleware: MiddlewareFactory) -> None:
    built = make_middleware(op)
    async with user_agent({APP_A: built.app}) as ua:
        done = await login(ua, APP_A, consent=False)
        assert _query(done.callback_url)["error"] == "access_denied"
        assert done.callback.status_code == 403, done.callback.text
        assert "asgi_oidc" not in set_cookies(done.callback)
        assert built.outbound.to(op.token_endpoint) == []


async def test_default_cookies_are_secure_host_only_httponly_lax(
    op: OidcProviderProcess, make_middleware: MiddlewareFactory
) -> None:
    # The default config (cookie_secure left alone), the app as if on https.
    built = make_middleware(op, origin=SECURE_APP, drop=("cookie_secure",))
    # The same app also answers plain http on that host and port.
    async with user_agent({SECURE_APP: built.app, APP_A: built.app}) as ua:
        done = await login(ua, SECURE_APP, path="/inbox")
        [(state_name, state)] = set_cookies(done.authorize).items()
        assert state_name.startswith("__Host-asgi_oidc_state_")
        assert done.callback.status_code == 302, done.callback.text
        cookies = set_cookies(done.callback)
        session = cookies["__Host-asgi_oidc"]
        assert cookies[state_name]["max-age"] == "0"  # the state cookie is spent
        for attributes in (state, session):
            assert attributes["path"] == "/"
            assert "domain" not in attributes  # __Host-: host-only
            assert "secure" in attributes
            assert "httponly" in attributes
            assert attributes["samesite"] == "Lax"
        assert int(session["max-age"]) > 0
        # The jar sends them back over https only, and the login works.
        assert (await whoami(ua, f"{SECURE_APP}/inbox"))["sub"] == "alice"
        assert (await ua.get(f"{APP_A}/inbox", headers=JSON)).status_code == 401


async def test_refresh_at_the_providers_token_endpoint(
    op_short_tokens: OidcProviderProcess, make_middleware: MiddlewareFactory, redis_url: str
) -> None:
    op = op_short_tokens
    settings: dict[str, Any] = {
        "scopes": SCOPES + " offline_access",
        "extra_authorize_params": {"prompt": "consent"},
        "pass_access_token": True,
        "refresh_margin": 0,
    }
    # Two instances of one app (both with A's redirect_uri) on one Redis.
    first = make_middleware(op, **settings)
    second = make_middleware(op, **settings)
    async with user_agent({APP_A: first.app, APP_B: second.app}) as ua:
        done = await login(ua, APP_A)
        assert done.callback.status_code == 302, done.callback.text
        sid = session_id(set_cookies(done.callback)["asgi_oidc"][""])
        [(_, token)] = first.outbound.to(op.token_endpoint)
        issued = token.json()
        assert issued["refresh_token"] and issued["expires_in"] <= 2
        before = await session_record(redis_url, sid)
        assert before is not None
        assert before["refresh_token"] == issued["refresh_token"]
        assert (await whoami(ua, f"{APP_A}/"))["access_token"] == issued["access_token"]

        # Past the access token's expiry, eight requests at once on both
        # instances: one refresh, everyone sees its token.
        await asyncio.sleep(max(0.0, before["access_expires_at"] - time.time()) + 0.05)
        answers = await asyncio.gather(
            *(whoami(ua, f"{origin}/page/{i}") for i in range(4) for origin in (APP_A, APP_B))
        )
        access_tokens = {answer["access_token"] for answer in answers}
        assert len(access_tokens) == 1
        [new_access] = access_tokens
        assert new_access != issued["access_token"]
        assert all(answer["email"] == "alice@corp.example" for answer in answers)

        refreshes = [
            request
            for built in (first, second)
            for request, _ in built.outbound.to(op.token_endpoint)
            if b"grant_type=refresh_token" in request.content
        ]
        assert len(refreshes) == 1
        after = await session_record(redis_url, sid)
        assert after is not None
        assert after["access_token"] == new_access
        assert after["refresh_token"] not in (None, issued["refresh_token"])  # rotated, stored

        async with httpx.AsyncClient(trust_env=False) as http:
            info = await http.get(
                op.userinfo_endpoint, headers={"authorization": f"Bearer {new_access}"}
            )
            assert info.status_code == 200 and info.json()["sub"] == "alice"
            # The stored refresh token is the live one: the provider revokes the
            # grant when a consumed one is used, so this also says that no
            # refresh ran twice. Used here, it is consumed behind our back...
            stolen = await http.post(
                op.token_endpoint,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": after["refresh_token"],
                    "client_id": POST_CLIENT.client_id,
                    "client_secret": POST_CLIENT.client_secret,
                },
            )
            assert stolen.status_code == 200, stolen.text

        # ...so the next refresh is refused, and that ends the session everywhere.
        await asyncio.sleep(max(0.0, after["access_expires_at"] - time.time()) + 0.05)
        refused = await ua.get(f"{APP_B}/", headers=JSON)
        assert refused.status_code == 401, refused.text
        assert (await ua.get(f"{APP_A}/", headers=JSON)).status_code == 401
        assert await session_record(redis_url, sid) is None
