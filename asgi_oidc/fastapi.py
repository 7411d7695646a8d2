"""Per-route guards for FastAPI: the :func:`current_user` and :func:`require`
dependencies.

::

    from fastapi import Depends, FastAPI
    from asgi_oidc.fastapi import CurrentUser, require
    from asgi_oidc.principal import Principal
    from asgi_oidc.rules import group

    @app.get("/admin")
    async def admin(user: Principal = Depends(require(group("admins")))):
        return {"hello": user.display_name}

    @app.get("/me")
    async def me(user: CurrentUser):
        return {"sub": user.sub}

A refused request is answered exactly as the middleware answers (401 with
``WWW-Authenticate``; 403 as JSON ``{"error": "forbidden", …}`` or an HTML
page for browsers), with nothing to register: the dependency raises
:class:`~asgi_oidc.starlette.GuardDenied`, an ``HTTPException``, after adding
its handler to the request's own exception-handler map (see
:mod:`asgi_oidc.starlette`). A handler you register for ``GuardDenied`` or for
the status code wins. A refused WebSocket is closed with 1008 before it is
accepted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from .guard import DENIED, check, route_policy
from .principal import Principal
from .rules import Policy, Selector
from .starlette import raise_denied

__all__ = ["CurrentUser", "current_user", "require"]


async def current_user(conn: HTTPConnection) -> Principal:
    """Dependency: the signed-in principal; 401 (WebSocket: 1008) when nobody is.

    Raises :class:`~asgi_oidc.errors.MiddlewareMissing` when
    ``OIDCMiddleware`` is not in front of the app.
    """
    try:
        return check(conn.scope)
    except DENIED as exc:
        raise_denied(conn, exc)


#: ``user: CurrentUser`` in an endpoint's signature.
CurrentUser = Annotated[Principal, Depends(current_user)]


def require(
    *selectors: Selector | Policy,
    include: Iterable[Selector] = (),
    require: Iterable[Selector] = (),
    exclude: Iterable[Selector] = (),
) -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """A dependency returning the principal if the policy allows it.

    Positional selectors are all required (``require(group("admins"),
    email_domain("corp.com"))``); ``include``/``require``/``exclude`` give a
    whole policy, and a single :class:`~asgi_oidc.rules.Policy` works too.
    Built once, when the route is declared; a bad selector fails there.
    """
    policy = route_policy(
        selectors, include=include, require=require, exclude=exclude, label="<dependency>"
    )

    async def dependency(conn: HTTPConnection) -> Principal:
        try:
            return check(conn.scope, policy)
        except DENIED as exc:
            raise_denied(conn, exc)

    return dependency
