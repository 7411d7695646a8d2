"""The development identity provider as pytest fixtures, with the users tests log in as.

- ``dev_provider_server`` (session): a :class:`DevProvider` served on a loopback port.
- ``dev_provider``: that same provider, ``reset()`` before and after each test.
- ``dev_provider_asgi``: a fresh in-process provider at ``http://idp.test``, for
  ``httpx.ASGITransport``.

Tests that serve the app on a real port register its callback with
``dev_provider.add_redirect_uri(CLIENT_ID, "http://127.0.0.1:PORT/oauth2/callback")``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from asgi_oidc.testing import DevClient, DevProvider, DevUser, serve_dev_provider

__all__ = [
    "ALICE",
    "APP_ORIGIN",
    "ASGI_ISSUER",
    "BOB",
    "CLIENT",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "MALLORY",
    "POST_LOGOUT_URI",
    "REDIRECT_URI",
    "USERS",
    "dev_provider",
    "dev_provider_asgi",
    "dev_provider_server",
    "new_dev_provider",
]

CLIENT_ID = "app"
# Holds characters that client_secret_basic must form-urlencode (RFC 6749 §2.3.1).
CLIENT_SECRET = "s3cret+/:%=x"
APP_ORIGIN = "http://testserver"
REDIRECT_URI = f"{APP_ORIGIN}/oauth2/callback"
POST_LOGOUT_URI = f"{APP_ORIGIN}/signed-out"
ASGI_ISSUER = "http://idp.test"

CLIENT = DevClient(
    CLIENT_ID,
    CLIENT_SECRET,
    redirect_uris=(REDIRECT_URI,),
    post_logout_redirect_uris=(POST_LOGOUT_URI,),
)

ALICE = DevUser(
    "alice",
    email="alice@corp.com",
    name="Alice Admin",
    groups=("admins", "staff"),
    claims={
        "department": "finance",
        "roles": ["reader", "writer"],
        "realm_access": {"roles": ["realm-admin"]},
    },
)
BOB = DevUser(
    "bob",
    email="bob@corp.com",
    groups=("staff",),
    claims={"department": "sales", "roles": ["reader"]},
)
MALLORY = DevUser("mallory", email="mallory@evil.example")
USERS = (ALICE, BOB, MALLORY)


@functools.cache
def _shared_keys() -> tuple[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]:
    # RSA key generation costs ~0.1 s; in-process providers share one pair (under new kids).
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    )


def new_dev_provider(**kwargs: Any) -> DevProvider:
    """An in-process provider with the standard client and users; ``kwargs`` override."""
    settings: dict[str, Any] = {
        "issuer": ASGI_ISSUER,
        "clients": [CLIENT],
        "users": USERS,
        "keys": _shared_keys(),
    }
    settings.update(kwargs)
    return DevProvider(**settings)


@pytest.fixture(scope="session")
def dev_provider_server() -> Iterator[DevProvider]:
    """The standard provider served on 127.0.0.1 for the whole session."""
    with serve_dev_provider(clients=[CLIENT], users=USERS) as provider:
        yield provider


@pytest.fixture
def dev_provider(dev_provider_server: DevProvider) -> Iterator[DevProvider]:
    """The served provider with knobs and counters reset around the test."""
    dev_provider_server.reset()
    yield dev_provider_server
    dev_provider_server.reset()


@pytest.fixture
def dev_provider_asgi() -> DevProvider:
    """A fresh in-process provider (issuer ``http://idp.test``) for ``httpx.ASGITransport``."""
    return new_dev_provider()
