"""Each example under the server its framework's users run it with (uvicorn for
FastAPI and Starlette, hypercorn for Quart), as a separate process configured
by ``OIDC_*`` variables, against the development provider on loopback.

alice (``admins``) and bob (not) sign in through the provider; every route
is checked for both, and for nobody, and the logout ends alice's session only.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from asgi_oidc.testing import DevProvider, free_port
from tests.examples.harness import HTML, JSON, app_env, run_server, signed_in
from tests.support.idp_fixtures import CLIENT_ID, CLIENT_SECRET


@dataclass(frozen=True)
class Example:
    name: str
    server: str
    #: HTML pages only admins may see (each guarded in its own way).
    admin_pages: tuple[str, ...]

    def command(self, port: int) -> list[str]:
        target = f"examples.{self.name}.app:app"
        if self.server == "hypercorn":
            return [sys.executable, "-m", "hypercorn", target, "--bind", f"127.0.0.1:{port}"]
        return [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]


EXAMPLES = [
    # /admin: Depends(require(group("admins"))); /api/admin/stats: the same in dependencies=.
    Example("fastapi", "uvicorn", admin_pages=("/admin",)),
    # /admin: @requires_policy; /admin/audit: Starlette's @requires; /api/admin/*: rules.json.
    Example("starlette", "uvicorn", admin_pages=("/admin", "/admin/audit")),
    # /admin: @require; /api/admin/*: a RuleSet given to the middleware.
    Example("quart", "hypercorn", admin_pages=("/admin",)),
]


@dataclass(frozen=True)
class RunningApp:
    example: Example
    url: str
    idp: DevProvider


@pytest.fixture(params=EXAMPLES, ids=lambda example: example.name)
def running(request: pytest.FixtureRequest, dev_provider: DevProvider) -> Iterator[RunningApp]:
    example: Example = request.param
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    dev_provider.add_redirect_uri(CLIENT_ID, f"{url}/oauth2/callback")
    dev_provider.add_post_logout_redirect_uri(CLIENT_ID, f"{url}/")
    env = app_env(
        issuer=dev_provider.issuer,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=f"{url}/oauth2/callback",
        post_logout_redirect_uri=f"{url}/",
        cookie_secret="examples-cookie-secret-0123456789",
        cookie_secure="false",
    )
    with run_server(example.command(port), env, port):
        yield RunningApp(example, url, dev_provider)


def test_example(running: RunningApp) -> None:
    example, url = running.example, running.url
    with httpx.Client(base_url=url, timeout=10.0) as nobody:
        check_anonymous(nobody, running.idp, example)
    with signed_in(url, "alice@corp.com") as alice, signed_in(url, "bob") as bob:
        check_alice(alice, example)
        check_bob(bob, example)
        check_bearer(url, running.idp)
        check_logout(alice, running.idp, url)
        # Alice's logout ended her session only.
        assert bob.get("/api/whoami", headers=JSON).json()["sub"] == "bob"


def check_anonymous(nobody: httpx.Client, idp: DevProvider, example: Example) -> None:
    home = nobody.get("/", headers=HTML)
    assert home.status_code == 200
    assert "not signed in" in home.text
    assert 'href="/oauth2/login"' in home.text.replace("'", '"')
    for path in ("/me", *example.admin_pages):
        # A browser is sent to the provider to sign in.
        response = nobody.get(path, headers=HTML)
        assert response.status_code == 302, path
        assert response.headers["location"].startswith(f"{idp.issuer}/authorize?"), path
    for path in ("/api/whoami", "/api/admin/stats"):
        # An API client is told 401, never redirected.
        response = nobody.get(path, headers=JSON)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Bearer"), path
        assert response.json()["error"] == "unauthorized", path


def check_alice(alice: httpx.Client, example: Example) -> None:
    home = alice.get("/", headers=HTML)
    assert home.status_code == 200
    assert "Signed in as <b>Alice Admin</b> (alice@corp.com)" in home.text
    me = alice.get("/me", headers=HTML)
    assert me.status_code == 200
    assert "alice@corp.com" in me.text
    assert "admins, staff" in me.text
    assert "&quot;department&quot;: &quot;finance&quot;" in me.text  # a custom claim
    for path in example.admin_pages:
        response = alice.get(path, headers=HTML)
        assert response.status_code == 200, path
    whoami = alice.get("/api/whoami", headers=JSON)
    assert whoami.status_code == 200
    assert whoami.json() == {
        "sub": "alice",
        "email": "alice@corp.com",
        "groups": ["admins", "staff"],
    }
    stats = alice.get("/api/admin/stats", headers=JSON)
    assert stats.status_code == 200
    assert stats.json() == {"users": 2, "admins": 1}


def check_bob(bob: httpx.Client, example: Example) -> None:
    home = bob.get("/", headers=HTML)
    assert "Signed in as <b>bob@corp.com</b>" in home.text  # no name claim: the email
    me = bob.get("/me", headers=HTML)
    assert me.status_code == 200
    assert "bob@corp.com" in me.text
    assert "&quot;department&quot;: &quot;sales&quot;" in me.text
    for path in example.admin_pages:
        response = bob.get(path, headers=HTML)
        assert response.status_code == 403, path
        assert "Alice" not in response.text
    whoami = bob.get("/api/whoami", headers=JSON)
    assert whoami.status_code == 200
    assert whoami.json()["email"] == "bob@corp.com"
    stats = bob.get("/api/admin/stats", headers=JSON)
    assert stats.status_code == 403
    assert stats.json()["error"] == "forbidden"


def check_bearer(url: str, idp: DevProvider) -> None:
    """API clients may send the provider's access token instead of a cookie."""
    with httpx.Client(base_url=url, timeout=10.0) as api:
        for user, stats_status in (("alice", 200), ("bob", 403)):
            token = idp.access_token(user, audience=CLIENT_ID)
            auth = {"authorization": f"Bearer {token}", **JSON}
            assert api.get("/api/whoami", headers=auth).json()["sub"] == user
            assert api.get("/api/admin/stats", headers=auth).status_code == stats_status


def check_logout(alice: httpx.Client, idp: DevProvider, url: str) -> None:
    logout = alice.get("/oauth2/logout", headers=HTML)
    assert logout.status_code == 302
    assert logout.headers["location"].startswith(f"{idp.issuer}/logout?")
    # The provider ends its own session and sends the browser back home.
    back = alice.get(logout.headers["location"])
    assert back.status_code in (302, 303)
    assert back.headers["location"].startswith(f"{url}/?state=")
    home = alice.get(back.headers["location"], headers=HTML)
    assert home.status_code == 200
    assert "not signed in" in home.text
    assert alice.get("/api/whoami", headers=JSON).status_code == 401
