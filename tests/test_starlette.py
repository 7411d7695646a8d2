"""``asgi_oidc.starlette``: ``requires_policy`` and ``current_user`` in a Starlette app."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_oidc.errors import AccessDenied, MiddlewareMissing
from asgi_oidc.responses import error_response
from asgi_oidc.rules import Policy, email, everyone, group
from asgi_oidc.starlette import GuardDenied, current_user, requires_policy
from tests.test_guard import FakeOIDC, as_user, client, run_websocket, websocket_scope


@requires_policy(group("admins"))
async def admin(request: Request) -> Response:
    return JSONResponse({"sub": current_user(request).sub})


@requires_policy(include=[everyone()], exclude=[email("alice@corp.com")])
def sync_page(request: Request) -> Response:
    return PlainTextResponse("sync ok")


@requires_policy()
async def signed_in(request: Request) -> Response:
    return PlainTextResponse("hello")


async def me(request: Request) -> Response:
    user = current_user(request)
    return JSONResponse({"sub": user.sub, "starlette_user": request.user.display_name})


class Reports(HTTPEndpoint):
    @requires_policy(Policy("/reports", require=[group("staff")]))
    async def get(self, request: Request) -> Response:
        return PlainTextResponse("reports")


@requires_policy(group("admins"))
async def admin_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(current_user(websocket).sub)
    await websocket.close()


async def me_socket(websocket: WebSocket) -> None:
    user = current_user(websocket)
    await websocket.accept()
    await websocket.send_text(user.sub)
    await websocket.close()


ROUTES = [
    Route("/admin", admin),
    Route("/sync", sync_page),
    Route("/signed-in", signed_in),
    Route("/me", me),
    Route("/reports", Reports),
    WebSocketRoute("/ws/admin", admin_socket),
    WebSocketRoute("/ws/me", me_socket),
]
APP = FakeOIDC(Starlette(routes=ROUTES))


async def test_decorator_allows() -> None:
    async with client(APP) as http:
        response = await http.get("/admin", headers=as_user("alice"))
    assert response.status_code == 200
    assert response.json() == {"sub": "alice"}


async def test_decorator_denies_with_the_middlewares_403() -> None:
    async with client(APP) as http:
        response = await http.get("/admin", headers=as_user("bob"))
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert response.content == error_response(AccessDenied(), html_wanted=False).body
    assert response.headers["cache-control"] == "no-store"


async def test_decorator_html_for_browsers() -> None:
    async with client(APP) as http:
        response = await http.get("/admin", headers=as_user("bob", html=True))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")


async def test_decorator_401_when_anonymous() -> None:
    async with client(APP) as http:
        response = await http.get("/admin")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_sync_endpoint() -> None:
    async with client(APP) as http:
        assert (await http.get("/sync", headers=as_user("bob"))).text == "sync ok"
        assert (await http.get("/sync", headers=as_user("alice"))).status_code == 403


async def test_decorator_without_selectors() -> None:
    async with client(APP) as http:
        assert (await http.get("/signed-in", headers=as_user("bob"))).status_code == 200
        assert (await http.get("/signed-in")).status_code == 401


async def test_http_endpoint_method() -> None:
    async with client(APP) as http:
        assert (await http.get("/reports", headers=as_user("bob"))).text == "reports"
        assert (await http.get("/reports", headers=as_user("alice"))).status_code == 403


async def test_current_user_returns_the_principal() -> None:
    async with client(APP) as http:
        response = await http.get("/me", headers=as_user("bob"))
    assert response.json() == {"sub": "bob", "starlette_user": "bob@corp.com"}


async def test_current_user_anonymous_gets_the_middlewares_401() -> None:
    async with client(APP) as http:
        response = await http.get("/me")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_own_status_handler_wins() -> None:
    async def mine(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("custom 401", status_code=401)

    app = FakeOIDC(Starlette(routes=ROUTES, exception_handlers={401: mine}))
    async with client(app) as http:
        response = await http.get("/me")
    assert response.text == "custom 401"


async def test_guard_denied_is_an_http_exception() -> None:
    exc = GuardDenied(AccessDenied())
    assert exc.status_code == 403
    assert exc.detail == "forbidden"


async def test_without_middleware_raises_middleware_missing() -> None:
    async with client(Starlette(routes=ROUTES)) as http:
        with pytest.raises(MiddlewareMissing, match="OIDCMiddleware"):
            await http.get("/admin")
        with pytest.raises(MiddlewareMissing, match="OIDCMiddleware"):
            await http.get("/me")


async def test_websocket_denied_is_closed_before_accept() -> None:
    sent = await run_websocket(APP, websocket_scope("/ws/admin", user="bob"))
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert sent[0]["code"] == 1008


async def test_websocket_allowed() -> None:
    sent = await run_websocket(APP, websocket_scope("/ws/admin", user="alice"))
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["text"] == "alice"


async def test_websocket_current_user_anonymous_is_closed_before_accept() -> None:
    sent = await run_websocket(APP, websocket_scope("/ws/me"))
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert sent[0]["code"] == 1008


def test_decorator_needs_a_request_argument() -> None:
    with pytest.raises(TypeError, match="request"):

        @requires_policy(group("a"))
        async def nothing() -> None:  # pragma: no cover - never called
            return None


async def test_wrong_argument_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        await admin("not a request")  # type: ignore[arg-type]
