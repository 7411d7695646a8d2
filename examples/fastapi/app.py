"""A FastAPI app behind OpenID Connect login.

Run it (from the repository root) with ``scripts/demo fastapi``, or against
your own provider with the ``OIDC_*`` variables of README.md set::

    uvicorn examples.fastapi.app:app --port 8000

Every path needs a signed-in user, except ``public_paths``. Who may see what
is decided per route, with dependencies:

- ``user: CurrentUser`` gives the signed-in user (401 for nobody);
- ``Depends(require(group("admins")))`` lets only the ``admins`` group in
  (here as the ``Admin`` annotation, and in a route's ``dependencies=``):
  403 for anyone else, an HTML page for browsers and JSON for API clients.
"""

from __future__ import annotations

import html
import json
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse

from asgi_oidc import OIDCConfig, OIDCMiddleware, Principal
from asgi_oidc.fastapi import CurrentUser, require
from asgi_oidc.rules import group

# The provider, client and cookie settings come from OIDC_* variables; what
# the app itself decides (which paths are open, which claims it reads) is
# written here.
config = OIDCConfig.from_env(
    public_paths=["/", "/favicon.ico"],
    claims=["name", "department"],
)

#: ``admin: Admin`` in a signature: only members of the admins group get in.
Admin = Annotated[Principal, Depends(require(group("admins")))]

app = FastAPI(title="asgi_oidc FastAPI example")
app.add_middleware(OIDCMiddleware, config=config)


def page(title: str, body: str) -> HTMLResponse:
    """A minimal HTML page; ``body`` must already be escaped."""
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}"
        "<p><a href='/'>Home</a> · <a href='/me'>Me</a> · <a href='/admin'>Admin</a>"
        " · <a href='/docs'>API docs</a> · <a href='/oauth2/logout'>Sign out</a></p>"
        "</body></html>"
    )


@app.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    # "/" is public: request.user is the Principal when signed in, else anonymous.
    user = request.user
    if isinstance(user, Principal):
        body = f"<p>Signed in as <b>{html.escape(user.display_name)}</b>"
        body += f" ({html.escape(user.email or user.sub)}).</p>"
    else:
        body = "<p>You are not signed in. <a href='/oauth2/login'>Sign in</a></p>"
    return page("FastAPI example", body)


@app.get("/me", response_class=HTMLResponse)
async def me(user: CurrentUser) -> HTMLResponse:
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


@app.get("/admin", response_class=HTMLResponse)
async def admin(user: Admin) -> HTMLResponse:
    body = f"<p>Welcome, {html.escape(user.display_name)}: you are in the admins group.</p>"
    return page("Admin", body)


@app.get("/api/whoami")
async def whoami(user: CurrentUser) -> dict[str, Any]:
    return {"sub": user.sub, "email": user.email, "groups": list(user.groups)}


# The same guard when the endpoint does not need the user itself.
@app.get("/api/admin/stats", dependencies=[Depends(require(group("admins")))])
async def admin_stats() -> dict[str, Any]:
    return {"users": 2, "admins": 1}
