"""A Starlette app behind OpenID Connect login.

Run it (from the repository root) with ``scripts/demo starlette``, or against
your own provider with the ``OIDC_*`` variables of README.md set::

    uvicorn examples.starlette.app:app --port 8000

Who may see what, three ways:

- ``rules.json``, read by the middleware: ``/api/admin/*`` needs the
  ``admins`` group; a denied user gets the middleware's 403 (JSON for API
  clients) before the app runs.
- ``@requires_policy(group("admins"))`` on ``/admin``: a rule on one endpoint.
- Starlette's own ``@requires("admins")`` on ``/admin/audit``: the middleware
  puts the user's groups in ``request.auth.scopes``.

Every other path needs a signed-in user, except ``public_paths``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from asgi_oidc import OIDCConfig, OIDCMiddleware, Principal
from asgi_oidc.rules import group
from asgi_oidc.starlette import current_user, requires_policy

# The provider, client and cookie settings come from OIDC_* variables; what
# the app itself decides (which paths are open, which claims it reads, who
# may see what) is written here.
config = OIDCConfig.from_env(
    public_paths=["/", "/favicon.ico"],
    claims=["name", "department"],
    rules=Path(__file__).with_name("rules.json"),
)


def page(title: str, body: str) -> HTMLResponse:
    """A minimal HTML page; ``body`` must already be escaped."""
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}"
        "<p><a href='/'>Home</a> · <a href='/me'>Me</a> · <a href='/admin'>Admin</a>"
        " · <a href='/oauth2/logout'>Sign out</a></p></body></html>"
    )


async def home(request: Request) -> Response:
    # "/" is public: request.user is the Principal when signed in, else anonymous.
    user = request.user
    if isinstance(user, Principal):
        body = f"<p>Signed in as <b>{html.escape(user.display_name)}</b>"
        body += f" ({html.escape(user.email or user.sub)}).</p>"
    else:
        body = "<p>You are not signed in. <a href='/oauth2/login'>Sign in</a></p>"
    return page("Starlette example", body)


async def me(request: Request) -> Response:
    user = current_user(request)
    claims = json.dumps(dict(user.claims), indent=2, sort_keys=True)
    body = (
        "<dl>"
        f"<dt>Subject</dt><dd>{html.escape(user.sub)}</dd>"
        f"<dt>Issuer</dt><dd>{html.escape(user.issuer)}</dd>"
        f"<dt>Email</dt><dd>{html.escape(user.email or '-')}</dd>"
        f"<dt>Groups</dt><dd>{html.escape(', '.join(user.groups) or '-')}</dd>"
        f"<dt>Claims</dt><dd><pre>{html.escape(claims)}</pre></dd>"
        "</dl>"
    )
    return page(f"Signed in as {user.display_name}", body)


@requires_policy(group("admins"))
async def admin(request: Request) -> Response:
    user = current_user(request)
    body = f"<p>Welcome, {html.escape(user.display_name)}: you are in the admins group.</p>"
    body += "<p><a href='/admin/audit'>Audit log</a></p>"
    return page("Admin", body)


@requires("admins")
async def audit(request: Request) -> Response:
    return page("Audit log", "<p>Nothing happened today.</p>")


async def whoami(request: Request) -> Response:
    user = current_user(request)
    return JSONResponse({"sub": user.sub, "email": user.email, "groups": list(user.groups)})


async def admin_stats(request: Request) -> Response:
    # Only admins get here: rules.json guards /api/admin/* in the middleware.
    return JSONResponse({"users": 2, "admins": 1})


app = Starlette(
    routes=[
        Route("/", home),
        Route("/me", me),
        Route("/admin", admin),
        Route("/admin/audit", audit),
        Route("/api/whoami", whoami),
        Route("/api/admin/stats", admin_stats),
    ],
    middleware=[Middleware(OIDCMiddleware, config=config)],
)
