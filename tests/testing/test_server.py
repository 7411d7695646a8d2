"""The development provider on a real port, driven by httpx and by Authlib's client."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import httpx
import jwt
import pytest

from asgi_oidc.testing import DevProvider, free_port, serve_dev_provider, serve_in_thread
from asgi_oidc.testing.__main__ import build_parser, build_provider, parse_user
from tests.support.idp_fixtures import (
    ALICE,
    BOB,
    CLIENT_ID,
    CLIENT_SECRET,
    MALLORY,
    REDIRECT_URI,
)

with warnings.catch_warnings():
    # Authlib 1.9 warns at import that its httpx integration is moving to httpx2.
    # authlib.deprecate installs an "always" filter for that warning when imported,
    # so it is imported first and our "ignore" goes in front of it.
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def encode_client_secret_basic_rfc6749(
    client: Any, method: str, uri: str, headers: dict[str, str], body: str
) -> tuple[str, dict[str, str], str]:
    """client_secret_basic as RFC 6749 §2.3.1 says: form-urlencode each half first.

    Authlib's built-in method skips that step, so secrets with ``+``, ``%``,
    ``:`` or ``/`` fail against a provider that decodes correctly.
    """
    raw = f"{quote_plus(client.client_id)}:{quote_plus(client.client_secret)}"
    headers["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
    return uri, headers, body


@pytest.fixture
async def oauth(dev_provider: DevProvider) -> AsyncIterator[AsyncOAuth2Client]:
    client = AsyncOAuth2Client(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        scope="openid email profile",
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    client.register_client_auth_method(("client_secret_basic", encode_client_secret_basic_rfc6749))
    async with client:
        yield client


async def authlib_login(
    client: AsyncOAuth2Client, provider: DevProvider, *, user: str = "alice"
) -> dict[str, Any]:
    """Authorization code + PKCE through Authlib, the way the middleware does it."""
    async with httpx.AsyncClient() as browser:
        discovery_url = f"{provider.issuer}/.well-known/openid-configuration"
        discovery = (await browser.get(discovery_url)).json()
        verifier = os.urandom(32).hex() + "-" * 10
        url, state = client.create_authorization_url(
            discovery["authorization_endpoint"],
            code_verifier=verifier,
            nonce="n-0",
            login_hint=user,
        )
        callback = await browser.get(url)
    assert callback.status_code == 302
    location = callback.headers["location"]
    assert query_of(location)["state"] == state
    assert query_of(location)["iss"] == provider.issuer
    token: dict[str, Any] = await client.fetch_token(
        discovery["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    return token


async def test_served_provider_answers_discovery_over_the_network(
    dev_provider: DevProvider,
) -> None:
    assert dev_provider.issuer.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{dev_provider.issuer}/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.json()["issuer"] == dev_provider.issuer
    assert response.json()["jwks_uri"] == f"{dev_provider.issuer}/jwks"


async def test_full_code_flow_with_authlib(
    oauth: AsyncOAuth2Client, dev_provider: DevProvider
) -> None:
    token = await authlib_login(oauth, dev_provider)
    async with httpx.AsyncClient() as client:
        key_set = jwt.PyJWKSet.from_dict((await client.get(f"{dev_provider.issuer}/jwks")).json())
    kid = jwt.get_unverified_header(token["id_token"])["kid"]
    claims = jwt.decode(
        token["id_token"],
        key_set[kid],
        algorithms=["RS256"],
        audience=CLIENT_ID,
        issuer=dev_provider.issuer,
    )
    assert claims["sub"] == "alice"
    assert claims["nonce"] == "n-0"
    assert claims["department"] == "finance"
    assert dev_provider.session_ids("alice") == [claims["sid"]]

    userinfo = await oauth.get(f"{dev_provider.issuer}/userinfo")
    assert userinfo.json()["email"] == "alice@corp.com"
    assert dev_provider.userinfo_calls == 1

    old_refresh = token["refresh_token"]
    refreshed = await oauth.refresh_token(f"{dev_provider.issuer}/token")
    assert refreshed["refresh_token"] != old_refresh
    assert "id_token" in refreshed
    with pytest.raises(Exception, match="invalid_grant"):
        await oauth.refresh_token(f"{dev_provider.issuer}/token", refresh_token=old_refresh)
    assert dev_provider.grant_counts == {"authorization_code": 1, "refresh_token": 2}


async def test_authlib_client_secret_post(dev_provider: DevProvider) -> None:
    async with AsyncOAuth2Client(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        scope="openid",
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",
    ) as client:
        token = await authlib_login(client, dev_provider, user="bob")
    assert jwt.decode(token["id_token"], options={"verify_signature": False})["sub"] == "bob"


async def test_authlib_builtin_basic_auth_fails_with_special_characters(
    dev_provider: DevProvider,
) -> None:
    """Authlib does not form-urlencode Basic credentials; the middleware must not rely on it."""
    async with AsyncOAuth2Client(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        scope="openid",
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    ) as client:
        with pytest.raises(Exception, match="invalid_client"):
            await authlib_login(client, dev_provider)


async def test_wrong_redirect_uri_over_the_network_is_a_page(
    oauth: AsyncOAuth2Client, dev_provider: DevProvider
) -> None:
    url, _ = oauth.create_authorization_url(
        f"{dev_provider.issuer}/authorize",
        redirect_uri="http://127.0.0.1:1/oauth2/callback",
        code_verifier="v" * 43,
        login_hint="alice",
    )
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_added_redirect_uri_is_accepted(
    oauth: AsyncOAuth2Client, dev_provider: DevProvider
) -> None:
    callback = "http://127.0.0.1:9/oauth2/callback"
    dev_provider.add_redirect_uri(CLIENT_ID, callback)
    url, _ = oauth.create_authorization_url(
        f"{dev_provider.issuer}/authorize",
        redirect_uri=callback,
        code_verifier="v" * 43,
        login_hint="alice",
    )
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    assert response.headers["location"].startswith(callback + "?code=")


async def test_token_delay_does_not_block_other_requests(
    oauth: AsyncOAuth2Client, dev_provider: DevProvider
) -> None:
    dev_provider.token_delay = 0.5
    async with httpx.AsyncClient() as client:
        slow = asyncio.ensure_future(
            client.post(f"{dev_provider.issuer}/token", data={"grant_type": "refresh_token"})
        )
        await asyncio.sleep(0.05)
        started = time.monotonic()
        fast = await client.get(f"{dev_provider.issuer}/jwks")
        assert fast.status_code == 200
        assert time.monotonic() - started < 0.4
        assert (await slow).status_code == 401


async def test_down_over_the_network(dev_provider: DevProvider) -> None:
    dev_provider.down = True
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{dev_provider.issuer}/.well-known/openid-configuration")
    assert response.status_code == 503


def test_dev_provider_fixture_has_the_standard_users(dev_provider: DevProvider) -> None:
    assert dev_provider.users == {"alice": ALICE, "bob": BOB, "mallory": MALLORY}
    assert ALICE.claims["realm_access"] == {"roles": ["realm-admin"]}
    assert dev_provider.clients[CLIENT_ID].client_secret == CLIENT_SECRET


# -- server helpers -----------------------------------------------------------------


async def hello_app(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_serve_in_thread_serves_and_stops() -> None:
    with serve_in_thread(hello_app) as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url).text == "hello"
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)


def test_serve_in_thread_on_a_taken_port_fails_clearly() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError), serve_in_thread(hello_app, port=port):
            pass


def test_serve_dev_provider_on_a_chosen_port() -> None:
    port = free_port()
    with serve_dev_provider(port=port, clients=[], users=[]) as provider:
        assert provider.issuer == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{provider.issuer}/jwks").status_code == 200


def test_missing_uvicorn_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(ImportError, match="pip install uvicorn"), serve_in_thread(hello_app):
        pass


# -- python -m asgi_oidc.testing ----------------------------------------------------


def test_command_line_defaults() -> None:
    provider = build_provider(build_parser().parse_args([]))
    assert provider.issuer == "http://127.0.0.1:9000"
    assert set(provider.users) == {"alice", "bob"}
    assert provider.users["alice"].groups == ("admins",)
    assert provider.clients["demo"].client_secret is None


def test_command_line_options() -> None:
    args = build_parser().parse_args(
        [
            "--port",
            "9100",
            "--client-id",
            "web",
            "--client-secret",
            "pw",
            "--redirect-uri",
            "http://a/cb",
            "--redirect-uri",
            "http://b/cb",
            "--user",
            "carol@corp.com:admins,staff",
            "--user",
            "dave",
            "--auto-login",
            "carol",
            "--claims-in-userinfo-only",
        ]
    )
    provider = build_provider(args)
    assert provider.issuer == "http://127.0.0.1:9100"
    assert provider.clients["web"].redirect_uris == ("http://a/cb", "http://b/cb")
    assert provider.users["carol"].email == "carol@corp.com"
    assert provider.users["carol"].groups == ("admins", "staff")
    assert provider.users["dave"].email is None
    assert provider.auto_login == "carol"
    assert provider.claims_in_id_token is False


def test_parse_user_rejects_empty_names() -> None:
    assert parse_user("erin@x.io").sub == "erin"
    for bad in ("", ":admins", "@corp.com"):
        with pytest.raises(Exception, match="user"):
            parse_user(bad)


def test_module_runs_until_interrupted() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "asgi_oidc.testing", "--port", str(port), "--user", "zoe"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
                break
            except httpx.ConnectError:
                assert process.poll() is None, process.stdout and process.stdout.read()
                assert time.monotonic() < deadline, "the provider did not start"
                time.sleep(0.05)
        assert response.json()["issuer"] == f"http://127.0.0.1:{port}"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stdout is not None
    with process.stdout:
        assert b"zoe" in process.stdout.read()
