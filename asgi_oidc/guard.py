"""Per-route guards: the claim rules of :mod:`asgi_oidc.rules` applied to one
route or one mounted app, behind :class:`~asgi_oidc.OIDCMiddleware`.

:func:`check` is the framework-free core that the FastAPI, Starlette and
Quart helpers share; :class:`Guard` wraps any ASGI app::

    from asgi_oidc.guard import Guard
    from asgi_oidc.rules import group

    app.mount("/admin", Guard(admin_app, group("admins")))

Guards answer the way the middleware does (the same
:func:`asgi_oidc.responses.error_response`): 401 with ``WWW-Authenticate``
when nobody is signed in, 403 (an HTML page for browsers, JSON otherwise)
when the principal is denied, and a WebSocket is closed with 1008 before it
is accepted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, cast

from asgiref.typing import HTTPScope

from .errors import AccessDenied, AuthenticationRequired, ConfigError, MiddlewareMissing
from .principal import Principal
from .responses import error_response, wants_html, websocket_close_code
from .rules import Policy, Selector

__all__ = ["Guard", "check"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The two ways a guard refuses a request (for ``except``).
DENIED = (AuthenticationRequired, AccessDenied)


def check(scope: Mapping[str, Any], policy: Policy | None = None) -> Principal:
    """Return the signed-in principal if ``policy`` allows it; else raise.

    ``policy=None`` asks only for a signed-in user. Raises
    :class:`~asgi_oidc.errors.AuthenticationRequired` when nobody is signed in
    (``scope["user"]`` is not a :class:`~asgi_oidc.Principal`),
    :class:`~asgi_oidc.errors.AccessDenied` when the policy denies, and
    :class:`~asgi_oidc.errors.MiddlewareMissing` when ``OIDCMiddleware`` did
    not handle the request: a guard without the middleware in front would
    trust whatever ``scope["user"]`` another layer put there.
    """
    if "asgi_oidc" not in scope:
        raise MiddlewareMissing(
            "scope has no 'asgi_oidc' key: wrap the application in "
            "asgi_oidc.OIDCMiddleware (outermost) for per-route guards to work"
        )
    user = scope.get("user")
    if not isinstance(user, Principal):
        raise AuthenticationRequired("route guard: not signed in")
    if policy is not None and not policy.allows(user):
        # The detail is logged (by error_response), never sent.
        raise AccessDenied(
            f"route guard {policy.path} denied sub={user.sub[:64]!r}", rule_path=policy.path
        )
    return user


def route_policy(
    selectors: Iterable[Selector | Policy],
    *,
    include: Iterable[Selector] = (),
    require: Iterable[Selector] = (),
    exclude: Iterable[Selector] = (),
    label: str = "<route>",
) -> Policy | None:
    """The policy of a per-route guard; ``None`` means "any signed-in user".

    Positional ``selectors`` are all required; a single :class:`Policy` is
    used as is. ``label`` stands for the path in logs and errors.
    """
    given = tuple(selectors)
    include, require, exclude = tuple(include), tuple(require), tuple(exclude)
    policies = [item for item in given if isinstance(item, Policy)]
    if policies:
        if len(given) > 1 or include or require or exclude:
            raise ConfigError(label, "give either one Policy or selectors, not both")
        return policies[0]
    required = (*cast("tuple[Selector, ...]", given), *require)
    if not (include or required or exclude):
        return None
    return Policy(label, include=include, require=required, exclude=exclude)


def denial_parts(
    error: AuthenticationRequired | AccessDenied, scope: Mapping[str, Any]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of the middleware's answer to ``error``.

    For frameworks that need their own response object. The answer is
    recorded from :func:`asgi_oidc.responses.error_response` so that it is
    byte for byte what the middleware sends.
    """
    response = error_response(error, html_wanted=wants_html(cast(HTTPScope, scope)))
    messages: list[Message] = []

    async def record(message: Any) -> None:
        messages.append(message)

    # Response.send only hands two messages to ``record``, which never
    # suspends, so the coroutine runs to the end on its first step; driving
    # it here keeps this usable from synchronous code (Quart's current_user).
    step = response.send(record)
    try:
        step.send(None)
    except StopIteration:
        pass
    else:  # pragma: no cover - only if Response.send started awaiting I/O
        step.close()
        raise RuntimeError("asgi_oidc: Response.send suspended while recording")
    start, body = messages[0], messages[1]
    return int(start["status"]), list(start["headers"]), bytes(body["body"])


async def send_denial(
    scope: Scope,
    receive: Receive,
    send: Send,
    error: AuthenticationRequired | AccessDenied,
) -> None:
    """Answer a refused http request, or close a refused WebSocket with 1008."""
    if scope["type"] == "websocket":
        error_response(error, html_wanted=False)  # logs it, in the one place
        message = await receive()
        if message["type"] == "websocket.connect":
            # Closing before accept: the server answers the handshake with 403.
            await send({"type": "websocket.close", "code": websocket_close_code(error)})
        return
    response = error_response(error, html_wanted=wants_html(cast(HTTPScope, scope)))
    await response.send(cast(Any, send))


class Guard:
    """An ASGI wrapper that lets through only principals a policy allows.

    ``Guard(app, group("admins"))`` requires every positional selector;
    ``Guard(app, include=[…], exclude=[…])`` or ``Guard(app, policy)`` give a
    whole policy; ``Guard(app)`` asks only for a signed-in user. Guards
    ``http`` and ``websocket`` scopes and passes ``lifespan`` through.
    """

    def __init__(
        self,
        app: ASGIApp,
        *selectors: Selector | Policy,
        include: Iterable[Selector] = (),
        require: Iterable[Selector] = (),
        exclude: Iterable[Selector] = (),
    ) -> None:
        self.app = app
        self.policy = route_policy(
            selectors, include=include, require=require, exclude=exclude, label="<guard>"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then call the wrapped app or refuse."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            check(scope, self.policy)
        except DENIED as exc:
            await send_denial(scope, receive, send, exc)
            return
        await self.app(scope, receive, send)
