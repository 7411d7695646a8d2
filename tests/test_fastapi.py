"""``asgi_oidc.fastapi``: the ``current_user`` and ``require`` dependencies."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import PlainTextResponse

from asgi_oidc.errors import AccessDenied, AuthenticationRequired, MiddlewareMissing
from asgi_oidc.fastapi import CurrentUser, current_user, require
from asgi_oidc.principal import Principal
from asgi_oidc.responses import error_response
from asgi_oidc.rules import Policy, claim, email, email_domain, everyone, group
from tests.test_guard import FakeOIDC, as_user, client, run_websocket, websocket_scope


def build() -> FastAPI:
    app = FastAPI()

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        return {"sub": user.sub}

    @app.get("/me-depends")
    async def me_depends(user: Annotated[Principal, Depends(current_user)]) -> dict[str, Any]:
        return {"sub": user.sub}

    @app.get("/admin")
    async def admin(
        user: Annotated[Principal, Depends(require(group("admins")))],
    ) -> dict[str, Any]:
        return {"sub": user.sub}

    @app.get("/finance")
    async def finance(
        user: Annotated[
            Principal,
            Depends(
                require(
                    include=[email_domain("corp.com")],
                    require=[claim("department", "finance")],
                    exclude=[email("mallory@corp.com")],
                )
            ),
        ],
    ) -> dict[str, Any]:
        return {"sub": user.sub}

    @app.get("/both", dependencies=[Depends(require(group("admins"), email_domain("corp.com")))])
    async def both() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/policy")
    async def policy(
        user: Annotated[Principal, Depends(require(Policy("/policy", include=[everyone()])))],
    ) -> dict[str, Any]:
        return {"sub": user.sub}

    @app.websocket("/ws")
    async def socket(
        websocket: WebSocket, user: Annotated[Principal, Depends(require(group("admins")))]
    ) -> None:
        await websocket.accept()
        await websocket.send_text(user.sub)
        await websocket.close()

    return app


APP = FakeOIDC(build())


async def test_current_user_returns_the_principal() -> None:
    async with client(APP) as http:
        assert (await http.get("/me", headers=as_user("bob"))).json() == {"sub": "bob"}
        assert (await http.get("/me-depends", headers=as_user("bob"))).json() == {"sub": "bob"}


async def test_current_user_anonymous_is_the_middlewares_401() -> None:
    async with client(APP) as http:
        response = await http.get("/me")
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "message": AuthenticationRequired.message}
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "detail" not in response.json()


async def test_require_allows() -> None:
    async with client(APP) as http:
        response = await http.get("/admin", headers=as_user("alice"))
    assert response.status_code == 200
    assert response.json() == {"sub": "alice"}


async def test_require_denies_with_error_forbidden_json() -> None:
    async with client(APP) as http:
        response = await http.get("/admin", headers=as_user("bob"))
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "detail" not in response.json()
    assert response.content == error_response(AccessDenied(), html_wanted=False).body


async def test_require_denies_with_html_for_browsers() -> None:
    async with client(APP) as http:
        response = await http.get("/admin", headers=as_user("bob", html=True))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")


async def test_require_anonymous_is_401() -> None:
    async with client(APP) as http:
        response = await http.get("/admin")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


async def test_include_require_exclude() -> None:
    async with client(APP) as http:
        assert (await http.get("/finance", headers=as_user("alice"))).status_code == 200
        # bob has no department claim
        assert (await http.get("/finance", headers=as_user("bob"))).status_code == 403


async def test_positional_selectors_are_all_required() -> None:
    async with client(APP) as http:
        assert (await http.get("/both", headers=as_user("alice"))).status_code == 200
        assert (await http.get("/both", headers=as_user("bob"))).status_code == 403


async def test_policy_object() -> None:
    async with client(APP) as http:
        assert (await http.get("/policy", headers=as_user("bob"))).json() == {"sub": "bob"}


async def test_own_status_handler_wins() -> None:
    app = build()

    @app.exception_handler(403)
    async def mine(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("custom 403", status_code=403)

    async with client(FakeOIDC(app)) as http:
        response = await http.get("/admin", headers=as_user("bob"))
    assert response.text == "custom 403"


async def test_without_middleware_raises_middleware_missing() -> None:
    async with client(build()) as http:
        with pytest.raises(MiddlewareMissing, match="OIDCMiddleware"):
            await http.get("/admin")


async def test_websocket_denied_is_closed_before_accept() -> None:
    sent = await run_websocket(APP, websocket_scope("/ws", user="bob"))
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert sent[0]["code"] == 1008


async def test_websocket_allowed() -> None:
    sent = await run_websocket(APP, websocket_scope("/ws", user="alice"))
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["text"] == "alice"


def test_dependencies_add_nothing_to_the_openapi_schema() -> None:
    schema = build().openapi()
    admin = schema["paths"]["/admin"]["get"]
    assert "parameters" not in admin
    assert "requestBody" not in admin
