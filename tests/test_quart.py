"""``asgi_oidc.quart``: the ``require`` decorator and ``current_user``."""

from __future__ import annotations

from typing import Any

import pytest
from quart import Quart, websocket

from asgi_oidc.errors import AccessDenied, MiddlewareMissing
from asgi_oidc.quart import current_user, require
from asgi_oidc.responses import error_response
from asgi_oidc.rules import email, everyone, group
from tests.test_guard import FakeOIDC, as_user, client, run_websocket, websocket_scope


def build() -> Quart:
    app = Quart(__name__)

    @app.route("/admin")
    @require(group("admins"))
    async def admin() -> dict[str, Any]:
        return {"sub": current_user().sub}

    @app.route("/open")
    @require(include=[everyone()], exclude=[email("alice@corp.com")])
    def open_sync() -> str:
        return "sync ok"

    @app.route("/me")
    async def me() -> dict[str, Any]:
        return {"sub": current_user().sub}

    @app.websocket("/ws")
    @require(group("admins"))
    async def socket() -> None:
        await websocket.accept()
        await websocket.send(current_user().sub)

    return app


APP = FakeOIDC(build())


async def test_require_allows() -> None:
    async with client(APP) as http:
        response = await http.get("/admin", headers=as_user("alice"))
    assert response.status_code == 200
    assert response.json() == {"sub": "alice"}


async def test_require_denies_with_the_middlewares_403() -> None:
    async with client(APP) as http:
        response = await http.get("/admin", headers=as_user("bob"))
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert response.content == error_response(AccessDenied(), html_wanted=False).body
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"


async def test_require_html_for_browsers() -> None:
    async with client(APP) as http:
        response = await http.get("/admin", headers=as_user("bob", html=True))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")


async def test_require_anonymous_is_401() -> None:
    async with client(APP) as http:
        response = await http.get("/admin")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_sync_view() -> None:
    async with client(APP) as http:
        assert (await http.get("/open", headers=as_user("bob"))).text == "sync ok"
        assert (await http.get("/open", headers=as_user("alice"))).status_code == 403


async def test_current_user() -> None:
    async with client(APP) as http:
        assert (await http.get("/me", headers=as_user("bob"))).json() == {"sub": "bob"}
        response = await http.get("/me")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


async def test_without_middleware_raises_middleware_missing() -> None:
    app = build()
    app.config["PROPAGATE_EXCEPTIONS"] = True
    async with client(app) as http:
        with pytest.raises(MiddlewareMissing, match="OIDCMiddleware"):
            await http.get("/admin")


async def test_websocket_denied_is_closed_before_accept() -> None:
    sent = await run_websocket(APP, websocket_scope("/ws", user="bob"))
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert sent[0]["code"] == 1008


async def test_websocket_allowed() -> None:
    sent = await run_websocket(APP, websocket_scope("/ws", user="alice"))
    assert [m["type"] for m in sent][:2] == ["websocket.accept", "websocket.send"]
    assert sent[1].get("text") == "alice" or sent[1].get("bytes") == b"alice"


def test_current_user_outside_a_request() -> None:
    with pytest.raises(RuntimeError, match="inside a Quart request"):
        current_user()
