"""The development provider in process, through ``httpx.ASGITransport`` and raw ASGI."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asgi_oidc.testing.provider as provider_module
from asgi_oidc.testing import REMOVE, DevClient, DevProvider, DevUser
from tests.support.idp_fixtures import (
    ASGI_ISSUER,
    CLIENT,
    CLIENT_ID,
    CLIENT_SECRET,
    POST_LOGOUT_URI,
    REDIRECT_URI,
    USERS,
    new_dev_provider,
)

# -- helpers -----------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def basic(client_id: str, secret: str) -> str:
    """client_secret_basic done right: each half form-urlencoded first (RFC 6749 §2.3.1)."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize_params(challenge: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid email profile",
        "state": "state-1",
        "nonce": "nonce-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "login_hint": "alice",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


@pytest.fixture
async def idp(dev_provider_asgi: DevProvider) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=dev_provider_asgi)
    async with httpx.AsyncClient(transport=transport, base_url=ASGI_ISSUER) as client:
        yield client


async def login(
    client: httpx.AsyncClient, **overrides: str | None
) -> tuple[str, str, dict[str, str]]:
    """Run /authorize; return (code, verifier, callback query)."""
    verifier, challenge = pkce_pair()
    response = await client.get("/authorize", params=authorize_params(challenge, **overrides))
    assert response.status_code == 302, response.text
    callback = query_of(response.headers["location"])
    return callback["code"], verifier, callback


async def exchange(
    client: httpx.AsyncClient, code: str, verifier: str, **form: str
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        **form,
    }
    return await client.post(
        "/token", data=data, headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}
    )


async def tokens_for(client: httpx.AsyncClient, **overrides: str | None) -> dict[str, Any]:
    code, verifier, _ = await login(client, **overrides)
    response = await exchange(client, code, verifier)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def refresh(client: httpx.AsyncClient, refresh_token: str, **form: str) -> httpx.Response:
    return await client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, **form},
        headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)},
    )


def verify(provider: DevProvider, token: str, *, audience: str = CLIENT_ID) -> dict[str, Any]:
    """Verify a token as a relying party would: against the published JWKS only."""
    key_set = jwt.PyJWKSet.from_dict(provider.jwks())
    header = jwt.get_unverified_header(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key_set[header["kid"]],
        algorithms=["RS256", "PS256", "ES256"],
        audience=audience,
        issuer=provider.issuer,
    )
    return claims


# -- discovery and keys -----------------------------------------------------


async def test_discovery_document(idp: httpx.AsyncClient) -> None:
    response = await idp.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["issuer"] == ASGI_ISSUER
    assert document["authorization_endpoint"] == f"{ASGI_ISSUER}/authorize"
    assert document["token_endpoint"] == f"{ASGI_ISSUER}/token"
    assert document["jwks_uri"] == f"{ASGI_ISSUER}/jwks"
    assert document["userinfo_endpoint"] == f"{ASGI_ISSUER}/userinfo"
    assert document["end_session_endpoint"] == f"{ASGI_ISSUER}/logout"
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    assert set(document["grant_types_supported"]) == {"authorization_code", "refresh_token"}
    assert {"email", "groups", "department", "realm_access"} <= set(document["claims_supported"])
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["backchannel_logout_supported"] is True
    assert document["backchannel_logout_session_supported"] is True


async def test_issuer_with_a_path_serves_endpoints_under_it() -> None:
    provider = new_dev_provider(issuer="http://idp.test/realms/dev")
    transport = httpx.ASGITransport(app=provider)
    async with httpx.AsyncClient(transport=transport, base_url="http://idp.test") as client:
        document = (await client.get("/realms/dev/.well-known/openid-configuration")).json()
        assert document["issuer"] == "http://idp.test/realms/dev"
        assert document["token_endpoint"] == "http://idp.test/realms/dev/token"
        assert (await client.get("/realms/dev/jwks")).status_code == 200
        assert (await client.get("/jwks")).status_code == 404
        assert (await client.get("/realms/devjwks")).status_code == 404
        # The login page links stay under the issuer's path.
        _, challenge = pkce_pair()
        page = await client.get(
            "/realms/dev/authorize", params=authorize_params(challenge, login_hint=None)
        )
        assert 'href="/realms/dev/authorize?' in page.text


async def test_discovery_overrides_replace_and_remove(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    dev_provider_asgi.discovery_overrides = {"issuer": "https://evil", "jwks_uri": REMOVE}
    document = (await idp.get("/.well-known/openid-configuration")).json()
    assert document["issuer"] == "https://evil"
    assert "jwks_uri" not in document
    assert document["token_endpoint"] == f"{ASGI_ISSUER}/token"


async def test_jwks_has_one_rsa_and_one_ec_key_and_counts_fetches(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    assert dev_provider_asgi.jwks_fetches == 0
    document = (await idp.get("/jwks")).json()
    await idp.get("/jwks")
    assert dev_provider_asgi.jwks_fetches == 2
    keys = {key["kty"]: key for key in document["keys"]}
    assert set(keys) == {"RSA", "EC"}
    assert keys["EC"]["crv"] == "P-256"
    assert keys["EC"]["alg"] == "ES256"
    assert keys["RSA"]["alg"] == "RS256"
    for key in keys.values():
        assert key["use"] == "sig"
        assert key["kid"]
        assert "d" not in key  # public halves only
    rsa_key = jwt.PyJWK.from_dict(keys["RSA"]).key
    assert isinstance(rsa_key, rsa.RSAPublicKey)
    assert rsa_key.key_size == 2048
    assert document == dev_provider_asgi.jwks()


def test_rotate_keys_changes_kids_and_drops_old_keys() -> None:
    provider = new_dev_provider()
    old_kids = {key["kid"] for key in provider.jwks()["keys"]}
    old_token = provider.id_token("alice", audience=CLIENT_ID)
    provider.rotate_keys()
    new_kids = {key["kid"] for key in provider.jwks()["keys"]}
    assert old_kids.isdisjoint(new_kids)
    assert jwt.get_unverified_header(provider.id_token("alice", audience=CLIENT_ID))["kid"] in (
        new_kids
    )
    with pytest.raises(KeyError):
        verify(provider, old_token)


# -- the authorization endpoint ---------------------------------------------


async def test_code_flow_issues_verifiable_tokens(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    code, verifier, callback = await login(idp)
    assert callback["state"] == "state-1"
    assert callback["iss"] == ASGI_ISSUER
    response = await exchange(idp, code, verifier)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    document = response.json()
    assert document["token_type"] == "Bearer"
    assert document["expires_in"] == 300
    assert document["scope"] == "openid email profile"
    assert len(document["refresh_token"]) >= 32

    claims = verify(dev_provider_asgi, document["id_token"])
    assert claims["sub"] == "alice"
    assert claims["nonce"] == "nonce-1"
    assert claims["exp"] - claims["iat"] == 300
    assert abs(claims["auth_time"] - time.time()) < 5
    assert dev_provider_asgi.session_ids("alice") == [claims["sid"]]
    assert claims["email"] == "alice@corp.com"
    assert claims["email_verified"] is True
    assert claims["name"] == "Alice Admin"
    assert claims["groups"] == ["admins", "staff"]
    assert claims["realm_access"] == {"roles": ["realm-admin"]}
    digest = hashlib.sha256(document["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()

    access = verify(dev_provider_asgi, document["access_token"])
    assert jwt.get_unverified_header(document["access_token"])["typ"] == "at+jwt"
    assert access["client_id"] == CLIENT_ID
    assert access["scope"] == "openid email profile"
    assert dev_provider_asgi.grant_counts == {"authorization_code": 1}


async def test_each_login_gets_its_own_session_id(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    first = verify(dev_provider_asgi, (await tokens_for(idp))["id_token"])
    second = verify(dev_provider_asgi, (await tokens_for(idp))["id_token"])
    assert first["sid"] != second["sid"]
    assert dev_provider_asgi.session_ids("alice") == [first["sid"], second["sid"]]
    assert dev_provider_asgi.session_ids("bob") == []


async def test_nonce_is_optional(idp: httpx.AsyncClient, dev_provider_asgi: DevProvider) -> None:
    claims = verify(dev_provider_asgi, (await tokens_for(idp, nonce=None))["id_token"])
    assert "nonce" not in claims


async def test_wrong_redirect_uri_is_an_error_page_not_a_redirect(idp: httpx.AsyncClient) -> None:
    _, challenge = pkce_pair()
    for wrong in ("https://evil.example/cb", REDIRECT_URI + "/", REDIRECT_URI.upper(), None):
        response = await idp.get(
            "/authorize", params=authorize_params(challenge, redirect_uri=wrong)
        )
        assert response.status_code == 400
        assert "location" not in response.headers
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert "redirect_uri" in response.text


async def test_unknown_client_is_an_error_page(idp: httpx.AsyncClient) -> None:
    _, challenge = pkce_pair()
    response = await idp.get("/authorize", params=authorize_params(challenge, client_id="nope"))
    assert response.status_code == 400
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("overrides", "error", "has_state"),
    [
        ({"state": None}, "invalid_request", False),
        ({"code_challenge": None}, "invalid_request", True),
        ({"code_challenge_method": None}, "invalid_request", True),
        ({"code_challenge_method": "plain"}, "invalid_request", True),
        ({"code_challenge": "too-short"}, "invalid_request", True),
        ({"response_type": "token"}, "unsupported_response_type", True),
        ({"response_type": None}, "unsupported_response_type", True),
        ({"scope": "email profile"}, "invalid_scope", True),
        ({"deny": "1"}, "access_denied", True),
    ],
)
async def test_invalid_requests_redirect_with_an_error(
    idp: httpx.AsyncClient, overrides: dict[str, str | None], error: str, has_state: bool
) -> None:
    _, challenge = pkce_pair()
    response = await idp.get("/authorize", params=authorize_params(challenge, **overrides))
    assert response.status_code == 302
    assert response.headers["location"].startswith(REDIRECT_URI + "?")
    callback = query_of(response.headers["location"])
    assert callback["error"] == error
    assert "code" not in callback
    assert callback["iss"] == ASGI_ISSUER
    assert ("state" in callback) is has_state
    if has_state:
        assert callback["state"] == "state-1"


async def test_pkce_is_optional_when_not_required(dev_provider_asgi: DevProvider) -> None:
    dev_provider_asgi.require_pkce = False
    transport = httpx.ASGITransport(app=dev_provider_asgi)
    async with httpx.AsyncClient(transport=transport, base_url=ASGI_ISSUER) as client:
        response = await client.get(
            "/authorize",
            params=authorize_params("x", code_challenge=None, code_challenge_method=None),
        )
        code = query_of(response.headers["location"])["code"]
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
        answer = await client.post(
            "/token", data=data, headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}
        )
        assert answer.status_code == 200


async def test_authorize_accepts_post(idp: httpx.AsyncClient) -> None:
    _, challenge = pkce_pair()
    response = await idp.post("/authorize", data=authorize_params(challenge))
    assert response.status_code == 302
    assert "code" in query_of(response.headers["location"])


async def test_redirect_uri_query_is_kept(dev_provider_asgi: DevProvider) -> None:
    dev_provider_asgi.add_redirect_uri(CLIENT_ID, "http://testserver/cb?tenant=a")
    transport = httpx.ASGITransport(app=dev_provider_asgi)
    async with httpx.AsyncClient(transport=transport, base_url=ASGI_ISSUER) as client:
        _, challenge = pkce_pair()
        response = await client.get(
            "/authorize",
            params=authorize_params(challenge, redirect_uri="http://testserver/cb?tenant=a"),
        )
    location = response.headers["location"]
    assert location.startswith("http://testserver/cb?tenant=a&code=")
    assert query_of(location)["state"] == "state-1"


async def test_send_iss_off_leaves_iss_out(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    dev_provider_asgi.send_iss = False
    _, _, callback = await login(idp)
    assert "iss" not in callback
    document = (await idp.get("/.well-known/openid-configuration")).json()
    assert "authorization_response_iss_parameter_supported" not in document


async def test_callback_overrides_change_and_remove_parameters(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    dev_provider_asgi.callback_overrides = {"iss": "https://evil", "state": REMOVE}
    _, _, callback = await login(idp)
    assert callback["iss"] == "https://evil"
    assert "state" not in callback
    assert "code" in callback


# -- who logs in -------------------------------------------------------------


async def test_login_page_lists_users_and_each_link_logs_in(idp: httpx.AsyncClient) -> None:
    _, challenge = pkce_pair()
    response = await idp.get("/authorize", params=authorize_params(challenge, login_hint=None))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', response.text)
    by_label = {label: href.replace("&amp;", "&") for href, label in links}
    assert set(by_label) == {"alice", "bob", "mallory", "Deny"}
    assert "Alice Admin" in response.text
    assert "alice@corp.com" in response.text

    chosen = await idp.get(by_label["bob"])
    assert chosen.status_code == 302
    callback = query_of(chosen.headers["location"])
    assert callback["state"] == "state-1"
    assert "code" in callback

    denied = await idp.get(by_label["Deny"])
    assert query_of(denied.headers["location"])["error"] == "access_denied"


async def test_login_page_escapes_html() -> None:
    hostile = '"><script>alert(1)</script>'
    provider = DevProvider(
        issuer=ASGI_ISSUER,
        clients=[DevClient(f"app{hostile}", "s", redirect_uris=(REDIRECT_URI,))],
        users=[
            DevUser(f"u{hostile}", email=f"e{hostile}@x", name=f"n{hostile}", groups=(hostile,))
        ],
    )
    transport = httpx.ASGITransport(app=provider)
    async with httpx.AsyncClient(transport=transport, base_url=ASGI_ISSUER) as client:
        _, challenge = pkce_pair()
        params = authorize_params(
            challenge, client_id=f"app{hostile}", state=hostile, login_hint=None
        )
        response = await client.get("/authorize", params=params)
    assert response.status_code == 200
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_auto_login_skips_the_page() -> None:
    provider = new_dev_provider(auto_login="bob")
    transport = httpx.ASGITransport(app=provider)
    async with httpx.AsyncClient(transport=transport, base_url=ASGI_ISSUER) as client:
        tokens = await tokens_for(client, login_hint=None)
    assert verify(provider, tokens["id_token"])["sub"] == "bob"


async def test_prompt_none_without_a_user_is_login_required(idp: httpx.AsyncClient) -> None:
    _, challenge = pkce_pair()
    response = await idp.get(
        "/authorize", params=authorize_params(challenge, login_hint=None, prompt="none")
    )
    assert query_of(response.headers["location"])["error"] == "login_required"


async def test_login_hint_may_be_an_email(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    tokens = await tokens_for(idp, login_hint="bob@corp.com")
    assert verify(dev_provider_asgi, tokens["id_token"])["sub"] == "bob"


async def test_unknown_login_hint_is_an_error_page(idp: httpx.AsyncClient) -> None:
    _, challenge = pkce_pair()
    response = await idp.get("/authorize", params=authorize_params(challenge, login_hint="eve"))
    assert response.status_code == 400
    assert "location" not in response.headers


# -- the token endpoint: codes and PKCE --------------------------------------


async def test_code_is_single_use(idp: httpx.AsyncClient) -> None:
    code, verifier, _ = await login(idp)
    assert (await exchange(idp, code, verifier)).status_code == 200
    again = await exchange(idp, code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_wrong_verifier_is_refused_and_spends_the_code(idp: httpx.AsyncClient) -> None:
    code, verifier, _ = await login(idp)
    other_verifier, _ = pkce_pair()
    response = await exchange(idp, code, other_verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert (await exchange(idp, code, verifier)).json()["error"] == "invalid_grant"


async def test_missing_verifier_is_refused(idp: httpx.AsyncClient) -> None:
    code, _, _ = await login(idp)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    response = await idp.post(
        "/token", data=data, headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_token_redirect_uri_must_equal_the_requests(idp: httpx.AsyncClient) -> None:
    code, verifier, _ = await login(idp)
    response = await exchange(idp, code, verifier, redirect_uri="http://testserver/other")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_code_expires_after_60_seconds(
    idp: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, verifier, _ = await login(idp)
    later = time.monotonic() + 61
    monkeypatch.setattr(provider_module, "_monotonic", lambda: later)
    response = await exchange(idp, code, verifier)
    assert response.json()["error"] == "invalid_grant"


async def test_code_for_another_client_is_refused(dev_provider_asgi: DevProvider) -> None:
    dev_provider_asgi.clients["other"] = DevClient("other", "pw", redirect_uris=(REDIRECT_URI,))
    transport = httpx.ASGITransport(app=dev_provider_asgi)
    async with httpx.AsyncClient(transport=transport, base_url=ASGI_ISSUER) as client:
        code, verifier, _ = await login(client)
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        }
        response = await client.post(
            "/token", data=data, headers={"Authorization": basic("other", "pw")}
        )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


# -- the token endpoint: client authentication ------------------------------


async def test_basic_auth_with_form_urlencoded_special_characters(
    idp: httpx.AsyncClient,
) -> None:
    assert quote_plus(CLIENT_SECRET) != CLIENT_SECRET  # the fixture really needs encoding
    code, verifier, _ = await login(idp)
    assert (await exchange(idp, code, verifier)).status_code == 200


async def test_basic_auth_without_form_urlencoding_is_refused(idp: httpx.AsyncClient) -> None:
    code, verifier, _ = await login(idp)
    raw = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    response = await idp.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        headers={"Authorization": f"Basic {raw}"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_client_secret_post(idp: httpx.AsyncClient) -> None:
    code, verifier, _ = await login(idp)
    response = await idp.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert response.status_code == 200
    assert "id_token" in response.json()


async def test_two_authentication_methods_at_once_are_refused(idp: httpx.AsyncClient) -> None:
    code, verifier, _ = await login(idp)
    response = await exchange(idp, code, verifier, client_secret=CLIENT_SECRET)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "form",
    [
        {"client_id": CLIENT_ID, "client_secret": "wrong"},
        {"client_id": CLIENT_ID},
        {"client_id": "nobody", "client_secret": CLIENT_SECRET},
        {},
    ],
)
async def test_bad_client_credentials_are_401(idp: httpx.AsyncClient, form: dict[str, str]) -> None:
    code, verifier, _ = await login(idp)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        **form,
    }
    response = await idp.post("/token", data=data)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "authorization", ["Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode()]
)
async def test_malformed_basic_header_is_401(idp: httpx.AsyncClient, authorization: str) -> None:
    response = await idp.post(
        "/token", data={"grant_type": "refresh_token"}, headers={"Authorization": authorization}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_public_client_authenticates_with_its_id_only() -> None:
    public = DevClient("spa", redirect_uris=(REDIRECT_URI,))
    provider = DevProvider(issuer=ASGI_ISSUER, clients=[public], users=USERS)
    transport = httpx.ASGITransport(app=provider)
    async with httpx.AsyncClient(transport=transport, base_url=ASGI_ISSUER) as client:
        code, verifier, _ = await login(client, client_id="spa")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": "spa",
        }
        assert (await client.post("/token", data=form)).status_code == 200
        code, verifier, _ = await login(client, client_id="spa")
        with_secret = {**form, "code": code, "code_verifier": verifier, "client_secret": "x"}
        assert (await client.post("/token", data=with_secret)).status_code == 401


# -- the token endpoint: refresh ----------------------------------------------


async def test_refresh_rotates_and_the_old_token_is_refused(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    first = await tokens_for(idp)
    first_claims = verify(dev_provider_asgi, first["id_token"])
    response = await refresh(idp, first["refresh_token"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    claims = verify(dev_provider_asgi, second["id_token"])
    assert "nonce" not in claims
    for name in ("iss", "sub", "aud", "sid", "auth_time"):
        assert claims[name] == first_claims[name]

    reused = await refresh(idp, first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert (await refresh(idp, second["refresh_token"])).status_code == 200
    assert dev_provider_asgi.grant_counts == {"authorization_code": 1, "refresh_token": 3}


async def test_refresh_without_rotation_keeps_the_token(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    dev_provider_asgi.rotate_refresh_tokens = False
    tokens = await tokens_for(idp)
    for _ in range(2):
        response = await refresh(idp, tokens["refresh_token"])
        assert response.status_code == 200
        assert "refresh_token" not in response.json()


async def test_refresh_refused(idp: httpx.AsyncClient, dev_provider_asgi: DevProvider) -> None:
    tokens = await tokens_for(idp)
    dev_provider_asgi.refresh_refused = True
    response = await refresh(idp, tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    dev_provider_asgi.refresh_refused = False
    assert (await refresh(idp, tokens["refresh_token"])).status_code == 200


async def test_refresh_may_narrow_but_not_widen_the_scope(idp: httpx.AsyncClient) -> None:
    tokens = await tokens_for(idp)
    narrowed = await refresh(idp, tokens["refresh_token"], scope="openid email")
    assert narrowed.json()["scope"] == "openid email"
    widened = await refresh(idp, narrowed.json()["refresh_token"], scope="openid admin")
    assert widened.json()["error"] == "invalid_scope"


async def test_unknown_refresh_token_is_refused(idp: httpx.AsyncClient) -> None:
    response = await refresh(idp, "made-up")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


# -- the token endpoint: knobs and malformed requests ----------------------


async def test_id_token_overrides_apply_at_the_token_endpoint(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    dev_provider_asgi.id_token_overrides = {"aud": ["app", "intruder"], "nonce": REMOVE}
    claims = jwt.decode((await tokens_for(idp))["id_token"], options={"verify_signature": False})
    assert claims["aud"] == ["app", "intruder"]
    assert "nonce" not in claims


async def test_id_token_signer_builds_the_whole_token(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    seen: list[dict[str, Any]] = []

    def unsigned(claims: dict[str, Any]) -> str:
        seen.append(claims)
        return dev_provider_asgi.sign(claims, alg="none")

    dev_provider_asgi.id_token_signer = unsigned
    id_token = (await tokens_for(idp))["id_token"]
    assert jwt.get_unverified_header(id_token)["alg"] == "none"
    assert id_token.endswith(".")
    assert seen[0]["sub"] == "alice"
    assert seen[0]["nonce"] == "nonce-1"


async def test_token_delay_sleeps_before_answering(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    code, verifier, _ = await login(idp)
    dev_provider_asgi.token_delay = 0.3
    started = time.monotonic()
    response = await exchange(idp, code, verifier)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(
    ("content", "content_type", "error"),
    [
        (b"grant_type=password&username=a", "application/x-www-form-urlencoded", "unsupported"),
        (b"code=abc", "application/x-www-form-urlencoded", "invalid_request"),
        (b'{"grant_type": "refresh_token"}', "application/json", "invalid_request"),
        (b"grant_type=a&grant_type=b", "application/x-www-form-urlencoded", "invalid_request"),
        (b"grant_type=%ff", "application/x-www-form-urlencoded", "invalid_request"),
        (b"grant_type=" + b"x" * 70_000, "application/x-www-form-urlencoded", "invalid_request"),
    ],
)
async def test_malformed_token_requests_are_400(
    idp: httpx.AsyncClient, content: bytes, content_type: str, error: str
) -> None:
    response = await idp.post(
        "/token",
        content=content,
        headers={
            "Content-Type": content_type,
            "Authorization": basic(CLIENT_ID, CLIENT_SECRET),
        },
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith(error)


# -- userinfo ------------------------------------------------------------


async def test_userinfo_returns_the_users_claims(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    tokens = await tokens_for(idp)
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    response = await idp.get("/userinfo", headers=auth)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "sub": "alice",
        "email": "alice@corp.com",
        "email_verified": True,
        "name": "Alice Admin",
        "groups": ["admins", "staff"],
        "department": "finance",
        "roles": ["reader", "writer"],
        "realm_access": {"roles": ["realm-admin"]},
    }
    assert (await idp.post("/userinfo", headers=auth)).status_code == 200
    assert dev_provider_asgi.userinfo_calls == 2


async def test_claims_only_at_userinfo_when_not_in_id_token() -> None:
    provider = new_dev_provider(claims_in_id_token=False)
    transport = httpx.ASGITransport(app=provider)
    async with httpx.AsyncClient(transport=transport, base_url=ASGI_ISSUER) as client:
        tokens = await tokens_for(client, login_hint="bob")
        userinfo = await client.get(
            "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
    claims = verify(provider, tokens["id_token"])
    assert claims["sub"] == "bob"
    for name in ("email", "email_verified", "name", "groups", "department", "roles"):
        assert name not in claims
    assert userinfo.json()["email"] == "bob@corp.com"
    assert userinfo.json()["groups"] == ["staff"]
    assert userinfo.json()["department"] == "sales"


async def test_userinfo_overrides(idp: httpx.AsyncClient, dev_provider_asgi: DevProvider) -> None:
    tokens = await tokens_for(idp)
    dev_provider_asgi.userinfo_overrides = {"sub": "someone-else", "groups": REMOVE}
    document = (
        await idp.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    ).json()
    assert document["sub"] == "someone-else"
    assert "groups" not in document
    assert document["email"] == "alice@corp.com"


async def test_userinfo_refuses_bad_tokens(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    tokens = await tokens_for(idp)
    foreign_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    bad_tokens = [
        "not-a-jwt",
        tokens["id_token"],  # an ID token is not an access token
        dev_provider_asgi.access_token("alice", audience=CLIENT_ID, ttl=-60),
        dev_provider_asgi.sign(claims, key=foreign_key, headers={"typ": "at+jwt"}),
        dev_provider_asgi.sign(claims, alg="HS256", headers={"typ": "at+jwt"}),
        dev_provider_asgi.sign(claims, alg="none", headers={"typ": "at+jwt"}),
        dev_provider_asgi.access_token("eve", audience=CLIENT_ID),
    ]
    for token in bad_tokens:
        response = await idp.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    dev_provider_asgi.rotate_keys()
    stale = await idp.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert stale.status_code == 401


async def test_userinfo_without_a_token_is_401(idp: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        response = await idp.get("/userinfo", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


# -- RP-initiated logout -------------------------------------------------------


async def test_logout_redirects_to_a_registered_uri_with_state(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    hint = dev_provider_asgi.id_token("alice", audience=CLIENT_ID)
    response = await idp.get(
        "/logout",
        params={"id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT_URI, "state": "s"},
    )
    assert response.status_code == 302
    assert response.headers["location"] == f"{POST_LOGOUT_URI}?state=s"


async def test_logout_accepts_an_expired_hint_and_a_client_id(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    expired = dev_provider_asgi.id_token("alice", audience=CLIENT_ID, exp=int(time.time()) - 600)
    response = await idp.get(
        "/logout", params={"id_token_hint": expired, "post_logout_redirect_uri": POST_LOGOUT_URI}
    )
    assert response.headers["location"] == POST_LOGOUT_URI
    by_client = await idp.get(
        "/logout", params={"client_id": CLIENT_ID, "post_logout_redirect_uri": POST_LOGOUT_URI}
    )
    assert by_client.status_code == 302


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": CLIENT_ID, "post_logout_redirect_uri": "https://evil.example/"},
        {"post_logout_redirect_uri": POST_LOGOUT_URI},  # no way to tell the client
        {"id_token_hint": "garbage", "post_logout_redirect_uri": POST_LOGOUT_URI},
        {"id_token_hint": "garbage"},
    ],
)
async def test_logout_refusals_are_error_pages(
    idp: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await idp.get("/logout", params=params)
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_logout_hint_for_another_client_is_refused(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    hint = dev_provider_asgi.id_token("alice", audience="other")
    response = await idp.get(
        "/logout",
        params={
            "id_token_hint": hint,
            "client_id": CLIENT_ID,
            "post_logout_redirect_uri": POST_LOGOUT_URI,
        },
    )
    assert response.status_code == 400


async def test_logout_without_a_redirect_shows_a_page(idp: httpx.AsyncClient) -> None:
    response = await idp.get("/logout")
    assert response.status_code == 200
    assert "signed out" in response.text


# -- tokens built directly ------------------------------------------------------


def test_id_token_for_a_user(dev_provider_asgi: DevProvider) -> None:
    token = dev_provider_asgi.id_token("bob", audience=CLIENT_ID, nonce="n", acr="1")
    claims = verify(dev_provider_asgi, token)
    assert claims["sub"] == "bob"
    assert claims["nonce"] == "n"
    assert claims["acr"] == "1"
    assert claims["groups"] == ["staff"]
    assert claims["auth_time"] <= claims["iat"]
    assert dev_provider_asgi.session_ids("bob") == [claims["sid"]]
    fixed = verify(dev_provider_asgi, dev_provider_asgi.id_token("bob", audience="app", sid="s1"))
    assert fixed["sid"] == "s1"
    assert dev_provider_asgi.session_ids("bob") == [claims["sid"], "s1"]
    without_exp = dev_provider_asgi.id_token("bob", audience=CLIENT_ID, exp=REMOVE)
    assert "exp" not in jwt.decode(without_exp, options={"verify_signature": False})
    with pytest.raises(ValueError, match="not a configured user"):
        dev_provider_asgi.id_token("eve", audience=CLIENT_ID)


def test_mallory_has_no_groups_claim(dev_provider_asgi: DevProvider) -> None:
    claims = verify(dev_provider_asgi, dev_provider_asgi.id_token("mallory", audience=CLIENT_ID))
    assert claims["email"] == "mallory@evil.example"
    assert "groups" not in claims


def test_access_token_is_rfc_9068_shaped(dev_provider_asgi: DevProvider) -> None:
    token = dev_provider_asgi.access_token("alice", audience="api", scope="read", ttl=60, x=1)
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    claims = verify(dev_provider_asgi, token, audience="api")
    assert claims["client_id"] == "api"
    assert claims["scope"] == "read"
    assert claims["exp"] - claims["iat"] == 60
    assert claims["x"] == 1
    assert claims["groups"] == ["admins", "staff"]
    assert len(claims["jti"]) >= 16
    other_token = dev_provider_asgi.access_token("alice", audience="api")
    other = verify(dev_provider_asgi, other_token, audience="api")
    assert other["jti"] != claims["jti"]
    stranger_token = dev_provider_asgi.access_token("svc", audience="api")
    stranger = verify(dev_provider_asgi, stranger_token, audience="api")
    assert stranger["sub"] == "svc"
    assert "email" not in stranger


def test_logout_token_shape(dev_provider_asgi: DevProvider) -> None:
    token = dev_provider_asgi.logout_token(audience=CLIENT_ID, sub="alice", sid="s-1")
    assert jwt.get_unverified_header(token)["typ"] == "logout+jwt"
    claims = verify(dev_provider_asgi, token)
    assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
    assert claims["sub"] == "alice"
    assert claims["sid"] == "s-1"
    assert "nonce" not in claims
    assert claims["exp"] > claims["iat"]
    again = verify(dev_provider_asgi, dev_provider_asgi.logout_token(audience=CLIENT_ID, sid="s"))
    assert again["jti"] != claims["jti"]
    assert "sub" not in again

    odd = dev_provider_asgi.logout_token(
        audience=CLIENT_ID, sid="s", jti="fixed", events=None, nonce="n", alg="ES256"
    )
    assert jwt.get_unverified_header(odd)["alg"] == "ES256"
    odd_claims = verify(dev_provider_asgi, odd)
    assert "events" not in odd_claims
    assert odd_claims["nonce"] == "n"
    assert odd_claims["jti"] == "fixed"


# -- sign() --------------------------------------------------------------------


def test_sign_with_the_providers_keys(dev_provider_asgi: DevProvider) -> None:
    claims = {"iss": ASGI_ISSUER, "aud": CLIENT_ID, "sub": "x"}
    kids = {key["kty"]: key["kid"] for key in dev_provider_asgi.jwks()["keys"]}
    for alg, kty in (("RS256", "RSA"), ("PS256", "RSA"), ("RS512", "RSA"), ("ES256", "EC")):
        token = dev_provider_asgi.sign(claims, alg=alg)
        header = jwt.get_unverified_header(token)
        assert header["alg"] == alg
        assert header["kid"] == kids[kty]
        key = jwt.PyJWKSet.from_dict(dev_provider_asgi.jwks())[kids[kty]]
        assert jwt.decode(token, key.key, algorithms=[alg], audience=CLIENT_ID)["sub"] == "x"


def test_sign_hs256_defaults_to_the_rsa_public_key(dev_provider_asgi: DevProvider) -> None:
    """The algorithm-confusion attack: HMAC keyed with the published RSA key."""
    token = dev_provider_asgi.sign({"sub": "x"}, alg="HS256")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    rsa_kid = next(k["kid"] for k in dev_provider_asgi.jwks()["keys"] if k["kty"] == "RSA")
    assert header["kid"] == rsa_kid
    public_key = jwt.PyJWK.from_dict(dev_provider_asgi.jwks()["keys"][0]).key
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input, _, signature = token.rpartition(".")
    expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected


def test_sign_hs256_with_a_chosen_key(dev_provider_asgi: DevProvider) -> None:
    key = b"k" * 32
    token = dev_provider_asgi.sign({"sub": "x"}, alg="HS256", key=key, kid="other")
    assert jwt.get_unverified_header(token)["kid"] == "other"
    assert jwt.decode(token, key, algorithms=["HS256"]) == {"sub": "x"}
    # The permissive HMAC stays private: PyJWT's own encode still refuses a public key.
    pem = jwt.PyJWK.from_dict(dev_provider_asgi.jwks()["keys"][0]).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(jwt.InvalidKeyError):
        jwt.encode({"sub": "x"}, pem, algorithm="HS256")


def test_sign_alg_none_and_header_control(dev_provider_asgi: DevProvider) -> None:
    token = dev_provider_asgi.sign(
        {"sub": "x"}, alg="none", headers={"kid": REMOVE, "typ": REMOVE, "x5u": "https://e"}
    )
    assert token.endswith(".")
    assert jwt.get_unverified_header(token) == {"alg": "none", "x5u": "https://e"}


def test_sign_with_a_foreign_key_under_the_providers_kid(dev_provider_asgi: DevProvider) -> None:
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = dev_provider_asgi.sign({"aud": CLIENT_ID}, key=foreign)
    rsa_kid = next(k["kid"] for k in dev_provider_asgi.jwks()["keys"] if k["kty"] == "RSA")
    assert jwt.get_unverified_header(token)["kid"] == rsa_kid
    with pytest.raises(jwt.InvalidSignatureError):
        verify(dev_provider_asgi, token)


def test_sign_refuses_an_unknown_alg(dev_provider_asgi: DevProvider) -> None:
    with pytest.raises(ValueError, match="unsupported alg"):
        dev_provider_asgi.sign({}, alg="ES512")


async def test_es256_provider_signs_id_tokens_with_the_ec_key() -> None:
    provider = new_dev_provider(signing_alg="ES256")
    transport = httpx.ASGITransport(app=provider)
    async with httpx.AsyncClient(transport=transport, base_url=ASGI_ISSUER) as client:
        document = (await client.get("/.well-known/openid-configuration")).json()
        tokens = await tokens_for(client)
        userinfo = await client.get(
            "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]
    assert jwt.get_unverified_header(tokens["id_token"])["alg"] == "ES256"
    assert verify(provider, tokens["id_token"])["sub"] == "alice"
    assert userinfo.status_code == 200


# -- state, reset and configuration ----------------------------------------------


async def test_reset_restores_knobs_but_keeps_keys_and_registrations(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    provider = dev_provider_asgi
    await tokens_for(idp)
    provider.add_redirect_uri(CLIENT_ID, "http://127.0.0.1:1234/oauth2/callback")
    provider.add_post_logout_redirect_uri(CLIENT_ID, "http://127.0.0.1:1234/bye")
    provider.add_redirect_uri(CLIENT_ID, "http://127.0.0.1:1234/oauth2/callback")
    provider.id_token_overrides = {"a": 1}
    provider.id_token_signer = lambda claims: "x"
    provider.userinfo_overrides = {"a": 1}
    provider.discovery_overrides = {"a": 1}
    provider.callback_overrides = {"a": "1"}
    provider.refresh_refused = True
    provider.down = True
    provider.token_delay = 5
    provider.send_iss = False
    provider.claims_in_id_token = False
    jwks = provider.jwks()

    provider.reset()

    assert provider.id_token_overrides == {}
    assert provider.id_token_signer is None
    assert provider.userinfo_overrides == {}
    assert provider.discovery_overrides == {}
    assert provider.callback_overrides == {}
    assert provider.refresh_refused is False
    assert provider.down is False
    assert provider.token_delay == 0
    assert provider.send_iss is True
    assert provider.claims_in_id_token is True
    assert provider.grant_counts == {}
    assert provider.jwks_fetches == 0
    assert provider.userinfo_calls == 0
    assert provider.session_ids("alice") == []
    assert provider.jwks() == jwks
    client = provider.clients[CLIENT_ID]
    assert client.redirect_uris == (REDIRECT_URI, "http://127.0.0.1:1234/oauth2/callback")
    assert client.post_logout_redirect_uris == (POST_LOGOUT_URI, "http://127.0.0.1:1234/bye")


async def test_down_answers_503_everywhere(
    idp: httpx.AsyncClient, dev_provider_asgi: DevProvider
) -> None:
    dev_provider_asgi.down = True
    for method, path in (
        ("GET", "/.well-known/openid-configuration"),
        ("GET", "/jwks"),
        ("GET", "/authorize"),
        ("POST", "/token"),
        ("GET", "/userinfo"),
        ("GET", "/logout"),
        ("GET", "/nowhere"),
    ):
        assert (await idp.request(method, path)).status_code == 503
    assert dev_provider_asgi.jwks_fetches == 0
    assert dev_provider_asgi.grant_counts == {}


async def test_unknown_paths_and_wrong_methods(idp: httpx.AsyncClient) -> None:
    assert (await idp.get("/nowhere")).status_code == 404
    wrong = await idp.get("/token")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert (await idp.delete("/jwks")).status_code == 405


async def test_malformed_query_is_400(idp: httpx.AsyncClient) -> None:
    for query in ("client_id=%ff", "state=a&state=b"):
        response = await idp.get(f"/authorize?{query}")
        assert response.status_code == 400


def test_shared_keys_get_new_kids(dev_provider_asgi: DevProvider) -> None:
    other = new_dev_provider()
    assert other.jwks()["keys"][0]["n"] == dev_provider_asgi.jwks()["keys"][0]["n"]
    own_kids = {key["kid"] for key in dev_provider_asgi.jwks()["keys"]}
    assert own_kids.isdisjoint(key["kid"] for key in other.jwks()["keys"])


def test_client_repr_masks_the_secret() -> None:
    assert CLIENT_SECRET not in repr(CLIENT)
    assert "***" in repr(CLIENT)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"issuer": "idp.test"}, "http"),
        ({"issuer": "http://idp.test?x=1"}, "query"),
        ({"auto_login": "eve"}, "auto_login"),
        ({"signing_alg": "HS256"}, "signing_alg"),
        ({"users": [*USERS, DevUser("alice")]}, "twice"),
        ({"clients": [CLIENT, DevClient(CLIENT_ID)]}, "twice"),
        ({"keys": (ec.generate_private_key(ec.SECP256R1()),) * 2}, "RSA"),
        # A weak key, to check that the provider refuses it.
        ({"keys": (rsa.generate_private_key(public_exponent=65537, key_size=1024),) * 2}, "RSA"),  # noqa: S505
    ],
)
def test_bad_configuration_is_refused(kwargs: Mapping[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        new_dev_provider(**kwargs)


def test_user_and_client_validation() -> None:
    with pytest.raises(ValueError):
        DevUser("")
    with pytest.raises(TypeError):
        DevUser("a", groups="admins")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        DevClient("a", redirect_uris="http://x/cb")  # type: ignore[arg-type]
    user = DevUser("a", groups=["g"], claims={"k": [1]})  # type: ignore[arg-type]
    assert user.groups == ("g",)
    assert hash(user) == hash(DevUser("a", groups=("g",)))


# -- raw ASGI ------------------------------------------------------------------


async def run_asgi(
    app: DevProvider, scope: dict[str, Any], incoming: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    queue = list(incoming)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent


async def test_lifespan_is_acknowledged(dev_provider_asgi: DevProvider) -> None:
    sent = await run_asgi(
        dev_provider_asgi,
        {"type": "lifespan"},
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
    )
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


async def test_websocket_is_closed(dev_provider_asgi: DevProvider) -> None:
    sent = await run_asgi(
        dev_provider_asgi, {"type": "websocket", "path": "/jwks"}, [{"type": "websocket.connect"}]
    )
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_never_a_500_for_arbitrary_input() -> None:
    provider = new_dev_provider()
    paths = st.sampled_from(["/authorize", "/token", "/userinfo", "/logout", "/jwks", "/x"])
    methods = st.sampled_from(["GET", "POST"])
    names = st.sampled_from(
        ["client_id", "redirect_uri", "state", "code", "grant_type", "code_verifier",
         "id_token_hint", "post_logout_redirect_uri", "login_hint", "scope", "x"]
    )  # fmt: skip
    params = st.lists(st.tuples(names, st.text(max_size=20)), max_size=6)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        path=paths,
        method=methods,
        query=params,
        body=st.one_of(params.map(lambda p: urlencode(p).encode()), st.binary(max_size=40)),
        authorization=st.one_of(st.none(), st.text(max_size=30)),
    )
    def check(
        path: str,
        method: str,
        query: list[tuple[str, str]],
        body: bytes,
        authorization: str | None,
    ) -> None:
        headers = [(b"content-type", b"application/x-www-form-urlencoded")]
        if authorization is not None:
            headers.append((b"authorization", authorization.encode("utf-8")))
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": urlencode(query).encode(),
            "headers": headers,
        }
        sent = asyncio.run(run_asgi(provider, scope, [{"type": "http.request", "body": body}]))
        assert sent[0]["type"] == "http.response.start"
        assert sent[0]["status"] < 500

    check()
