"""The interop harness against the real oidc-provider and Chromium, without our middleware.

These prove the parts the interop tests stand on: the provider starts and is
configured as asked, ``drive_login``/``drive_logout`` walk its pages, and a real
browser reaches it with every request leaving loopback blocked.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from playwright.async_api import Error as PlaywrightError

from tests.support.browser import chromium_page
from tests.support.oidc_provider import (
    OidcProviderProcess,
    callback_params,
    client_metadata,
    drive_login,
    drive_logout,
    free_port,
    run_oidc_provider,
)

with warnings.catch_warnings():
    # Authlib 1.9.9 warns about httpx vs httpx2 at import; pytest makes it an error.
    # Importing authlib.deprecate installs an "always" filter for its warning in
    # front of the list, so import it first and put "ignore" in front of that.
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import AsyncOAuth2Client

CLIENT_ID = "web"
CLIENT_SECRET = "harness-secret"
# The relying party is never there: drive_login stops at the redirect to it, and
# the browser test only watches the request. (Not a port Chromium refuses, like 9.)
RP = f"http://127.0.0.1:{free_port()}"
REDIRECT_URI = f"{RP}/oauth2/callback"
POST_LOGOUT_URI = f"{RP}/signed-out"
ACCESS_TOKEN_TTL = 120  # not the default 3600; above Authlib's 60 s expiry leeway
ACCOUNTS: dict[str, dict[str, Any]] = {
    "alice": {
        "email": "alice@corp.example",
        "email_verified": True,
        "name": "Alice Liddell",
        "groups": ["admins", "staff"],
        "department": "engineering",
        "roles": ["deployer", "reviewer"],
    },
}
FULL_SCOPE = "openid email profile groups department roles"


def _client(**extra: Any) -> dict[str, Any]:
    return client_metadata(
        CLIENT_ID,
        CLIENT_SECRET,
        [REDIRECT_URI],
        post_logout_redirect_uris=[POST_LOGOUT_URI],
        token_endpoint_auth_method="client_secret_post",
        **extra,
    )


@pytest.fixture(scope="session")
def provider() -> Iterator[OidcProviderProcess]:
    """oidc-provider in its default mode: extra claims only at UserInfo."""
    with run_oidc_provider(
        clients=[_client()], accounts=ACCOUNTS, access_token_ttl=ACCESS_TOKEN_TTL
    ) as op:
        yield op


@pytest.fixture(scope="session")
def provider_claims_in_id_token() -> Iterator[OidcProviderProcess]:
    """oidc-provider with ``conformIdTokenClaims: false``."""
    with run_oidc_provider(
        clients=[_client()], accounts=ACCOUNTS, conform_id_token_claims=False
    ) as op:
        yield op


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """The user agent: keeps the provider's cookies, follows no redirect by itself."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
async def oauth() -> AsyncIterator[Any]:
    """The relying party's Authlib client: builds the request, exchanges the code."""
    client = AsyncOAuth2Client(
        CLIENT_ID,
        CLIENT_SECRET,
        token_endpoint_auth_method="client_secret_post",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        timeout=10,
    )
    async with client:
        yield client


async def _code_flow(
    client: Any,
    browser: httpx.AsyncClient,
    op: OidcProviderProcess,
    *,
    scope: str = FULL_SCOPE,
    login: str = "alice",
    **params: str,
) -> tuple[dict[str, Any], dict[str, str], str]:
    """Authorization (driven through the dev pages) and code exchange.

    Returns the token response, the callback's parameters and the nonce sent.
    """
    verifier = generate_token(48)
    nonce = generate_token(20)
    url, state = client.create_authorization_url(
        op.authorization_endpoint, code_verifier=verifier, nonce=nonce, scope=scope, **params
    )
    callback = await drive_login(browser, url, login=login)
    assert callback.status_code == 303
    location = callback.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    got = callback_params(callback)
    assert got["state"] == state
    assert got["iss"] == op.issuer
    assert "code" in got, got
    token: dict[str, Any] = await client.fetch_token(
        op.token_endpoint, authorization_response=location, code_verifier=verifier
    )
    return token, got, nonce


async def _id_token_claims(op: OidcProviderProcess, id_token: str, nonce: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        jwks = (await http.get(op.jwks_uri)).raise_for_status().json()
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    claims: dict[str, Any] = jwt.decode(
        id_token, key, algorithms=["RS256"], audience=CLIENT_ID, issuer=op.issuer
    )
    assert claims["nonce"] == nonce
    return claims


async def test_discovery(provider: OidcProviderProcess) -> None:
    assert provider.issuer == f"http://127.0.0.1:{provider.port}"
    async with httpx.AsyncClient() as http:
        meta = (await http.get(provider.discovery_url)).raise_for_status().json()
    assert meta["issuer"] == provider.issuer
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_endpoint"] == provider.authorization_endpoint
    assert meta["token_endpoint"] == provider.token_endpoint
    assert meta["userinfo_endpoint"] == provider.userinfo_endpoint
    assert meta["jwks_uri"] == provider.jwks_uri
    assert meta["end_session_endpoint"] == provider.end_session_endpoint
    assert meta["backchannel_logout_supported"] is True
    assert {"openid", "offline_access", "email", "profile", "groups", "department", "roles"} <= set(
        meta["scopes_supported"]
    )


async def test_code_flow_with_pkce(
    provider: OidcProviderProcess, oauth: Any, browser: httpx.AsyncClient
) -> None:
    started = time.perf_counter()
    token, _, nonce = await _code_flow(oauth, browser, provider, scope="openid email")
    elapsed = time.perf_counter() - started
    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] == ACCESS_TOKEN_TTL
    assert "refresh_token" not in token
    claims = await _id_token_claims(provider, token["id_token"], nonce)
    assert claims["sub"] == "alice"
    assert elapsed < 5, f"a code flow took {elapsed:.2f} s"

    # The provider's session cookie is in the client: a second authorization
    # skips the login page (single sign-on) and the consent already given.
    token2, _, _ = await _code_flow(oauth, browser, provider, scope="openid email", login="ignored")
    assert jwt.decode(token2["id_token"], options={"verify_signature": False})["sub"] == "alice"


async def test_pkce_is_required(provider: OidcProviderProcess, browser: httpx.AsyncClient) -> None:
    query = urlencode(
        {
            "client_id": CLIENT_ID,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "state": "s1",
        }
    )
    callback = await drive_login(browser, f"{provider.authorization_endpoint}?{query}", login="a")
    got = callback_params(callback)
    assert got["error"] == "invalid_request"
    assert "PKCE" in got["error_description"]
    assert got["state"] == "s1"
    assert got["iss"] == provider.issuer


async def test_consent_refused(provider: OidcProviderProcess, browser: httpx.AsyncClient) -> None:
    query = urlencode(
        {
            "client_id": CLIENT_ID,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "state": "s2",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
    )
    url = f"{provider.authorization_endpoint}?{query}"
    callback = await drive_login(browser, url, login="bob", consent=False)
    got = callback_params(callback)
    assert got["error"] == "access_denied"
    assert got["state"] == "s2"
    assert got["iss"] == provider.issuer


async def test_claims_at_userinfo_by_default(
    provider: OidcProviderProcess, oauth: Any, browser: httpx.AsyncClient
) -> None:
    token, _, nonce = await _code_flow(oauth, browser, provider)
    claims = await _id_token_claims(provider, token["id_token"], nonce)
    assert claims["sub"] == "alice"
    for name in ("email", "groups", "department", "roles", "name"):
        assert name not in claims
    userinfo = (await oauth.get(provider.userinfo_endpoint)).raise_for_status().json()
    assert userinfo == {"sub": "alice", **ACCOUNTS["alice"]}


async def test_claims_in_id_token_when_not_conforming(
    provider_claims_in_id_token: OidcProviderProcess, oauth: Any, browser: httpx.AsyncClient
) -> None:
    op = provider_claims_in_id_token
    token, _, nonce = await _code_flow(oauth, browser, op)
    claims = await _id_token_claims(op, token["id_token"], nonce)
    assert claims["email"] == "alice@corp.example"
    assert claims["groups"] == ["admins", "staff"]
    assert claims["department"] == "engineering"
    assert claims["roles"] == ["deployer", "reviewer"]

    # Unknown logins are accepted and get only an email; scopes gate claims.
    browser.cookies.clear()
    token, _, nonce = await _code_flow(oauth, browser, op, scope="openid email groups", login="zed")
    claims = await _id_token_claims(op, token["id_token"], nonce)
    assert claims["sub"] == "zed"
    assert claims["email"] == "zed@example.com"
    assert "groups" not in claims and "name" not in claims


async def test_offline_access_refresh(
    provider: OidcProviderProcess, oauth: Any, browser: httpx.AsyncClient
) -> None:
    # Without prompt=consent the provider drops offline_access silently.
    token, _, _ = await _code_flow(oauth, browser, provider, scope="openid email offline_access")
    assert "refresh_token" not in token

    token, _, _ = await _code_flow(
        oauth, browser, provider, scope="openid email offline_access", prompt="consent"
    )
    assert token["refresh_token"]
    assert "offline_access" in token["scope"].split()
    refreshed: dict[str, Any] = await oauth.refresh_token(
        provider.token_endpoint, refresh_token=token["refresh_token"]
    )
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["expires_in"] == ACCESS_TOKEN_TTL
    assert refreshed["id_token"]
    userinfo = (await oauth.get(provider.userinfo_endpoint)).raise_for_status().json()
    assert userinfo["sub"] == "alice"


async def _serve_backchannel(received: list[bytes]) -> asyncio.Server:
    """A minimal HTTP endpoint that records each request body and answers 200."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        received.append(await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _serve_redirect(location: str) -> asyncio.Server:
    """A minimal HTTP endpoint that answers every request with a 302 to ``location``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 302 Found\r\nlocation: "
            + location.encode()
            + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_rp_initiated_and_backchannel_logout(oauth: Any, browser: httpx.AsyncClient) -> None:
    received: list[bytes] = []
    server = await _serve_backchannel(received)
    port = server.sockets[0].getsockname()[1]
    try:
        client = _client(
            backchannel_logout_uri=f"http://127.0.0.1:{port}/backchannel",
            backchannel_logout_session_required=True,
        )
        with run_oidc_provider(clients=[client], accounts=ACCOUNTS) as op:
            token, _, nonce = await _code_flow(oauth, browser, op, scope="openid")
            sid = (await _id_token_claims(op, token["id_token"], nonce))["sid"]
            query = urlencode(
                {
                    "id_token_hint": token["id_token"],
                    "post_logout_redirect_uri": POST_LOGOUT_URI,
                    "state": "bye",
                }
            )
            response = await drive_logout(browser, f"{op.end_session_endpoint}?{query}")
            assert response.is_redirect
            location = response.headers["location"]
            assert location.startswith(POST_LOGOUT_URI)
            assert callback_params(response)["state"] == "bye"
            for _ in range(100):
                if received:
                    break
                await asyncio.sleep(0.02)
            assert len(received) == 1
            logout_token = parse_qs(received[0].decode())["logout_token"][0]
            claims = jwt.decode(logout_token, options={"verify_signature": False})
            assert claims["sub"] == "alice"
            assert claims["sid"] == sid
            assert claims["aud"] == CLIENT_ID
            assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]
    finally:
        server.close()
        await server.wait_closed()


async def test_chromium_login_with_outside_requests_blocked(
    provider: OidcProviderProcess, oauth: Any
) -> None:
    verifier = generate_token(48)
    url, state = oauth.create_authorization_url(
        provider.authorization_endpoint,
        code_verifier=verifier,
        nonce=secrets.token_urlsafe(16),
        scope="openid email",
    )
    blocked: list[str] = []
    started = time.perf_counter()
    async with chromium_page(blocked=blocked) as page:
        launched = time.perf_counter()
        await page.goto(url)
        assert urlsplit(page.url).path.startswith("/interaction/")
        assert await page.title() == "Sign-in"
        await page.fill("input[name=login]", "carol")
        await page.fill("input[name=password]", "pw")
        await page.click("button[type=submit]")
        await page.wait_for_selector("input[name=prompt][value=consent]", state="attached")
        # The provider's 303 to the callback (routes do not see redirect legs;
        # nothing listens there, the request is all we need).
        async with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI)) as seen:
            await page.click("button[type=submit]")
        callback_url = (await seen.value).url
        done = time.perf_counter()

        # A redirect leg is not routed, but it cannot leave loopback either.
        server = await _serve_redirect("http://fonts.googleapis.com/css")
        try:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(PlaywrightError, match="ERR_NAME_NOT_RESOLVED"):
                await page.goto(f"http://localhost:{port}/leave")
        finally:
            server.close()
            await server.wait_closed()
    got = {k: v[0] for k, v in parse_qs(urlsplit(callback_url).query).items()}
    assert got["state"] == state
    assert got["iss"] == provider.issuer
    token = await oauth.fetch_token(
        provider.token_endpoint, authorization_response=callback_url, code_verifier=verifier
    )
    assert jwt.decode(token["id_token"], options={"verify_signature": False})["sub"] == "carol"
    # The provider's pages @import a web font; the route aborted it.
    assert any(urlsplit(u).hostname == "fonts.googleapis.com" for u in blocked), blocked
    assert all(urlsplit(u).hostname not in {"127.0.0.1", "localhost"} for u in blocked)
    assert launched - started < 10 and done - launched < 10
