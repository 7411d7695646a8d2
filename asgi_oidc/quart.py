"""Per-route guards for Quart: the :func:`require` decorator and :func:`current_user`.

::

    from asgi_oidc.quart import current_user, require
    from asgi_oidc.rules import group

    @app.route("/admin")
    @require(group("admins"))
    async def admin():
        return f"hello {current_user().display_name}"

Put ``@require`` below ``@app.route`` so that the route registers the
guarded view. Refused requests get the middleware's own 401/403 answers;
refused WebSockets are closed with 1008 before being accepted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec

from quart import Response, abort, current_app, has_request_context, has_websocket_context
from quart import request as quart_request
from quart import websocket as quart_websocket

from .errors import AccessDenied, AuthenticationRequired
from .guard import DENIED, check, denial_parts, route_policy
from .principal import Principal
from .responses import error_response
from .rules import Policy, Selector

__all__ = ["current_user", "require"]

P = ParamSpec("P")


def _scope() -> dict[str, Any]:
    if has_request_context():
        return quart_request.scope  # type: ignore[return-value]
    if has_websocket_context():
        return quart_websocket.scope  # type: ignore[return-value]
    raise RuntimeError("asgi_oidc.quart works only inside a Quart request or websocket")


def _response(error: AuthenticationRequired | AccessDenied, scope: dict[str, Any]) -> Response:
    status, raw_headers, body = denial_parts(error, scope)
    response = Response(body, status=status)
    # Replace Quart's defaults with exactly the middleware's headers.
    response.headers.clear()
    for name, value in raw_headers:
        response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
    return response


def current_user() -> Principal:
    """The signed-in principal of the current request or websocket.

    Nobody signed in: the request is answered 401 (through Quart's
    ``abort`` with the middleware's own response). Raises
    :class:`~asgi_oidc.errors.MiddlewareMissing` when ``OIDCMiddleware`` is
    not in front of the app.
    """
    scope = _scope()
    try:
        return check(scope)
    except DENIED as exc:
        abort(_response(exc, scope))


def require(
    *selectors: Selector | Policy,
    include: Iterable[Selector] = (),
    require: Iterable[Selector] = (),
    exclude: Iterable[Selector] = (),
) -> Callable[[Callable[P, Any]], Callable[P, Any]]:
    """Guard a Quart view (http or websocket) with a policy.

    Positional selectors are all required; ``include``/``require``/
    ``exclude`` give a whole policy, and a single :class:`Policy` works too.
    With nothing at all, any signed-in user passes.
    """

    def decorator(func: Callable[P, Any]) -> Callable[P, Any]:
        policy = route_policy(
            selectors,
            include=include,
            require=require,
            exclude=exclude,
            label=f"<{func.__module__}.{func.__qualname__}>",
        )

        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            scope = _scope()
            try:
                check(scope, policy)
            except DENIED as exc:
                if scope["type"] == "websocket":
                    error_response(exc, html_wanted=False)  # logs it
                    await quart_websocket.close(1008)
                    return None
                return _response(exc, scope)
            return await current_app.ensure_async(func)(*args, **kwargs)

        return wrapper

    return decorator
