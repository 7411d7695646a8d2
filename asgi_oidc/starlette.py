"""Per-route guards for Starlette: :func:`requires_policy` and :func:`current_user`.

::

    from asgi_oidc.rules import group
    from asgi_oidc.starlette import current_user, requires_policy

    @requires_policy(group("admins"))
    async def admin(request):
        user = current_user(request)
        return PlainTextResponse(f"hello {user.display_name}")

The decorator answers a refused request itself, exactly as the middleware
does. :func:`current_user` can only raise; it raises :class:`GuardDenied`, an
``HTTPException`` whose handler it registers on the request's own exception
handler map (``scope["starlette.exception_handlers"]``, which Starlette's
``ExceptionMiddleware`` puts there for each request), so the answer has the
middleware's shape without you registering anything. A handler you register
yourself for ``GuardDenied``, or for the status code, takes precedence; on a
stack without that map the status is still right and the body is the
framework's default.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, ParamSpec, TypeVar

from starlette.exceptions import HTTPException, WebSocketException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from .errors import AccessDenied, AuthenticationRequired
from .guard import DENIED, check, route_policy
from .principal import Principal
from .responses import error_response, wants_html
from .rules import Policy, Selector

__all__ = ["GuardDenied", "current_user", "requires_policy"]

P = ParamSpec("P")
R = TypeVar("R")


class GuardDenied(HTTPException):
    """A guard refused the request; ``error`` is the asgi_oidc error.

    Rendered like the middleware's own answers once :func:`current_user`
    (or the FastAPI dependencies) registered the handler.
    """

    def __init__(self, error: AuthenticationRequired | AccessDenied) -> None:
        headers = (
            {"WWW-Authenticate": 'Bearer realm="asgi_oidc"'} if error.status_code == 401 else None
        )
        super().__init__(error.status_code, detail=error.error, headers=headers)
        self.error = error


class _DenialResponse(Response):
    """Sends what the middleware would send for the error, byte for byte."""

    def __init__(self, error: AuthenticationRequired | AccessDenied, scope: Scope) -> None:
        super().__init__(status_code=error.status_code)
        self._error = error
        self._html = wants_html(scope)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(self._error, html_wanted=self._html).send(send)  # type: ignore[arg-type]


async def _render_guard_denied(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, GuardDenied):  # pragma: no cover - registered for GuardDenied only
        raise exc
    return _DenialResponse(exc.error, request.scope)


def raise_denied(conn: HTTPConnection, error: AuthenticationRequired | AccessDenied) -> NoReturn:
    """Raise what makes the framework answer ``error`` as the middleware would.

    A WebSocket gets ``WebSocketException(1008)``: Starlette closes the
    handshake with it before accepting. An http request gets
    :class:`GuardDenied`, whose handler this registers first.
    """
    if conn.scope["type"] == "websocket":
        error_response(error, html_wanted=False)  # logs it, in the one place
        raise WebSocketException(code=1008)
    handlers = conn.scope.get("starlette.exception_handlers")
    if isinstance(handlers, tuple) and handlers and isinstance(handlers[0], dict):
        handlers[0].setdefault(GuardDenied, _render_guard_denied)
    raise GuardDenied(error)


def current_user(conn: HTTPConnection) -> Principal:
    """The signed-in principal of this request or WebSocket.

    Nobody signed in: the request is answered 401 (a WebSocket is closed
    with 1008). Raises :class:`~asgi_oidc.errors.MiddlewareMissing` when
    ``OIDCMiddleware`` is not in front of the app.
    """
    try:
        return check(conn.scope)
    except DENIED as exc:
        raise_denied(conn, exc)


def _connection_index(func: Callable[..., Any]) -> tuple[int, str]:
    for index, parameter in enumerate(inspect.signature(func).parameters.values()):
        if parameter.name in ("request", "websocket"):
            return index, parameter.name
    raise TypeError(
        f'requires_policy: {func.__qualname__} has no "request" or "websocket" argument'
    )


def requires_policy(
    *selectors: Selector | Policy,
    include: Iterable[Selector] = (),
    require: Iterable[Selector] = (),
    exclude: Iterable[Selector] = (),
) -> Callable[[Callable[P, Any]], Callable[P, Any]]:
    """Guard a Starlette endpoint (or ``HTTPEndpoint`` method) with a policy.

    Positional selectors are all required; ``include``/``require``/
    ``exclude`` give a whole policy, and a single :class:`Policy` works too.
    With nothing at all, any signed-in user passes. The endpoint needs an
    argument named ``request`` or ``websocket``, as with Starlette's own
    ``@requires``. Refused http requests get the middleware's 401/403;
    refused WebSockets are closed with 1008 before being accepted.
    """

    def decorator(func: Callable[P, Any]) -> Callable[P, Any]:
        policy = route_policy(
            selectors,
            include=include,
            require=require,
            exclude=exclude,
            label=f"<{func.__module__}.{func.__qualname__}>",
        )
        index, kind = _connection_index(func)

        expected = WebSocket if kind == "websocket" else Request

        def connection(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            conn = kwargs.get(kind, args[index] if index < len(args) else None)
            if not isinstance(conn, expected):
                raise TypeError(f"requires_policy: {kind!r} is not a Starlette {expected.__name__}")
            return conn

        if kind == "websocket":

            @functools.wraps(func)
            async def websocket_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                websocket: WebSocket = connection(args, kwargs)
                try:
                    check(websocket.scope, policy)
                except DENIED as exc:
                    error_response(exc, html_wanted=False)  # logs it
                    await websocket.close(code=1008)
                    return None
                return await func(*args, **kwargs)

            return websocket_wrapper

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                request: Request = connection(args, kwargs)
                try:
                    check(request.scope, policy)
                except DENIED as exc:
                    return _DenialResponse(exc, request.scope)
                return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            request: Request = connection(args, kwargs)
            try:
                check(request.scope, policy)
            except DENIED as exc:
                return _DenialResponse(exc, request.scope)
            return func(*args, **kwargs)

        return sync_wrapper

    return decorator
