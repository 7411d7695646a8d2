"""``asgi_oidc.guard``: ``check`` and the ``Guard`` ASGI wrapper.

``FakeOIDC`` stands in for ``OIDCMiddleware``: it sets ``scope["asgi_oidc"]``,
``scope["user"]`` and ``scope["auth"]`` as the middleware's contract says,
choosing the user by the ``x-test-user`` header. The framework tests import it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from asgi_oidc import principal as principal_module
from asgi_oidc.errors import AccessDenied, AuthenticationRequired, ConfigError, MiddlewareMissing
from asgi_oidc.guard import Guard, check, denial_parts, route_policy
from asgi_oidc.principal import AuthCredentials, Principal
from asgi_oidc.responses import error_response
from asgi_oidc.rules import Policy, email, everyone, group

ANONYMOUS: Any = principal_module.ANONYMOUS

Message = dict[str, Any]

USERS: dict[str, Principal] = {
    "alice": Principal(
        sub="alice",
        issuer="https://idp.example.com",
        email="alice@corp.com",
        groups=("admins",),
        access_token="alice-secret-access-token",
        all_claims={"sub": "alice", "email": "alice@corp.com", "department": "finance"},
    ),
    "bob": Principal(
        sub="bob",
        issuer="https://idp.example.com",
        email="bob@corp.com",
        groups=("staff",),
        access_token="bob-secret-access-token",
        all_claims={"sub": "bob", "email": "bob@corp.com"},
    ),
}


class FakeOIDC:
    """The middleware's side of the guard contract, and nothing else."""

    def __init__(self, app: Any, users: Mapping[str, Principal] = USERS) -> None:
        self.app = app
        self.users = users

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            name = dict(scope.get("headers", ())).get(b"x-test-user", b"").decode()
            user = self.users.get(name)
            scope["asgi_oidc"] = {"middleware": self}
            scope["user"] = user if user is not None else ANONYMOUS
            scope["auth"] = AuthCredentials(user.groups if user is not None else ())
        await self.app(scope, receive, send)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def as_user(name: str, *, html: bool = False) -> dict[str, str]:
    headers = {"x-test-user": name}
    if html:
        headers["accept"] = "text/html,application/xhtml+xml"
    return headers


def websocket_scope(path: str = "/ws", user: str = "") -> dict[str, Any]:
    headers = [(b"x-test-user", user.encode())] if user else []
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "subprotocols": [],
        "extensions": {},
    }


async def run_websocket(app: Any, scope: dict[str, Any]) -> list[Message]:
    """Drive a WebSocket handshake: connect, then disconnect once the app has answered."""
    sent: list[Message] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """http: 200 with the user's sub; websocket: accept, send the sub, close."""
    user = scope["user"]
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": user.sub})
        await send({"type": "websocket.close", "code": 1000})
        return
    body = json.dumps({"sub": getattr(user, "sub", None)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- check ---------------------------------------------------------------------


def test_check_without_middleware_names_oidc_middleware() -> None:
    with pytest.raises(MiddlewareMissing) as info:
        check({"type": "http", "user": USERS["alice"]})
    assert "OIDCMiddleware" in str(info.value)


def test_check_anonymous_is_authentication_required() -> None:
    with pytest.raises(AuthenticationRequired):
        check({"asgi_oidc": {}, "user": ANONYMOUS})
    with pytest.raises(AuthenticationRequired):
        check({"asgi_oidc": {}})


def test_check_returns_the_principal() -> None:
    alice = USERS["alice"]
    assert check({"asgi_oidc": {}, "user": alice}) is alice
    assert check({"asgi_oidc": {}, "user": alice}, Policy("/x", require=[group("admins")])) is alice


def test_check_denied_carries_the_policy_path() -> None:
    with pytest.raises(AccessDenied) as info:
        check({"asgi_oidc": {}, "user": USERS["bob"]}, Policy("/x", require=[group("admins")]))
    assert info.value.rule_path == "/x"
    assert "bob" in info.value.detail


def test_route_policy() -> None:
    assert route_policy(()) is None
    policy = Policy("/x", include=[everyone()])
    assert route_policy([policy]) is policy
    built = route_policy([group("a"), group("b")], exclude=[email("m@x.io")], label="<t>")
    assert built == Policy("<t>", require=[group("a"), group("b")], exclude=[email("m@x.io")])
    with pytest.raises(ConfigError):
        route_policy([policy, group("a")])
    with pytest.raises(ConfigError):
        route_policy([policy], include=[everyone()])


def test_denial_parts_are_the_middlewares_bytes() -> None:
    scope = {"type": "http", "headers": [(b"accept", b"application/json")]}
    status, headers, body = denial_parts(AccessDenied(), scope)
    expected = error_response(AccessDenied(), html_wanted=False)
    assert status == 403
    assert body == expected.body
    assert (b"content-length", str(len(body)).encode()) in headers


# -- Guard over http ---------------------------------------------------------------

GUARDED = FakeOIDC(Guard(echo, group("admins")))


async def test_guard_lets_an_allowed_principal_through() -> None:
    async with client(GUARDED) as http:
        response = await http.get("/", headers=as_user("alice"))
    assert response.status_code == 200
    assert response.json() == {"sub": "alice"}


async def test_guard_answers_401_when_nobody_is_signed_in() -> None:
    async with client(GUARDED) as http:
        response = await http.get("/")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_guard_answers_403_json_to_api_clients() -> None:
    async with client(GUARDED) as http:
        response = await http.get("/", headers=as_user("bob"))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "forbidden"
    assert response.content == error_response(AccessDenied(), html_wanted=False).body


async def test_guard_answers_403_html_to_browsers() -> None:
    async with client(GUARDED) as http:
        response = await http.get("/", headers=as_user("bob", html=True))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "Access denied" in response.text


async def test_guard_with_a_whole_policy() -> None:
    app = FakeOIDC(Guard(echo, include=[everyone()], exclude=[email("alice@corp.com")]))
    async with client(app) as http:
        assert (await http.get("/", headers=as_user("bob"))).status_code == 200
        assert (await http.get("/", headers=as_user("alice"))).status_code == 403


async def test_guard_with_a_policy_object() -> None:
    app = FakeOIDC(Guard(echo, Policy("/reports/*", require=[group("staff")])))
    async with client(app) as http:
        assert (await http.get("/", headers=as_user("bob"))).status_code == 200
        assert (await http.get("/", headers=as_user("alice"))).status_code == 403


async def test_guard_without_selectors_needs_only_a_signed_in_user() -> None:
    app = FakeOIDC(Guard(echo))
    async with client(app) as http:
        assert (await http.get("/", headers=as_user("bob"))).status_code == 200
        assert (await http.get("/")).status_code == 401


async def test_guard_without_middleware_raises_middleware_missing() -> None:
    async with client(Guard(echo, group("admins"))) as http:
        with pytest.raises(MiddlewareMissing, match="OIDCMiddleware"):
            await http.get("/")


async def test_denial_is_logged_with_policy_and_sub_never_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="asgi_oidc")
    async with client(GUARDED) as http:
        await http.get("/", headers=as_user("bob"))
    denials = [r for r in caplog.records if r.name == "asgi_oidc" and r.levelno == logging.INFO]
    assert denials
    text = caplog.text
    assert "<guard>" in text
    assert "'bob'" in text
    assert "secret-access-token" not in text


# -- Guard over websocket and lifespan ------------------------------------------------


async def test_guard_closes_a_denied_websocket_before_accept() -> None:
    sent = await run_websocket(GUARDED, websocket_scope(user="bob"))
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_guard_closes_an_anonymous_websocket_before_accept() -> None:
    sent = await run_websocket(GUARDED, websocket_scope())
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_guard_lets_an_allowed_websocket_through() -> None:
    sent = await run_websocket(GUARDED, websocket_scope(user="alice"))
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["text"] == "alice"


async def test_guard_passes_lifespan_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.complete"})

    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    # No middleware marker in a lifespan scope: the guard must not ask for one.
    await Guard(app, group("admins"))(
        {"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send
    )
    assert seen == ["lifespan"]
    assert sent == [{"type": "lifespan.startup.complete"}]
