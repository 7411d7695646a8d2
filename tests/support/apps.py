"""Small ASGI apps for tests: they echo what the middleware put in scope."""

from __future__ import annotations

import json
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope


def describe(user: Any) -> dict[str, Any]:
    """What the echo app reports about ``scope["user"]``."""
    if user is None:
        return {"user": None}
    if not getattr(user, "is_authenticated", False):
        return {"user": "anonymous"}
    return {
        "sub": user.sub,
        "email": user.email,
        "groups": list(user.groups),
        "claims": dict(user.claims),
        "display_name": user.display_name,
        "access_token": user.access_token,
    }


async def echo_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """http: JSON of the principal and path; websocket: accept and send it;
    lifespan: complete startup and shutdown."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    payload = describe(scope.get("user"))
    payload["path"] = scope["path"]
    body = json.dumps(payload).encode()
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
        await send({"type": "websocket.send", "text": body.decode(), "bytes": None})
        await send({"type": "websocket.close", "code": 1000, "reason": ""})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
            "trailers": False,
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
