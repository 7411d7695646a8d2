"""A Quart app behind OpenID Connect login.

Run it (from the repository root) with ``scripts/demo quart``, or against
your own provider with the ``OIDC_*`` variables of README.md set::

    hypercorn examples.quart.app:app --bind 127.0.0.1:8000

Who may see what, two ways:

- rules given to the middleware as Python objects: ``/api/admin/*`` needs the
  ``admins`` group; a denied user gets the middleware's 403 (JSON for API
  clients) before Quart runs;
- ``@require(group("admins"))`` on the ``/admin`` view.

Every other path needs a signed-in user, except ``public_paths``.
"""

from __future__ import annotations

import html
import json
from typing import Any

from quart import Quart, request

from asgi_oidc import OIDCConfig, OIDCMiddleware, Principal
from asgi_oidc.quart import current_user, require
from asgi_oidc.rules import Policy, RuleSet, group

# The provider, client and cookie settings come from OIDC_* variables; what
# the app itself decides (which paths are open, which claims it reads, who
# may see what) is written here.
config = OIDCConfig.from_env(
    public_paths=["/", "/favicon.ico"],
    claims=["name", "department"],
    rules=RuleSet([Policy("/api/admin/*", require=[group("admins")])]),
)

app = Quart(__name__)
# Wrapping asgi_app keeps `app` a Quart object (app.run, app.test_client) while
# every request, lifespan included, goes through the middleware. (mypy objects
# to replacing a method, and Quart types scopes more narrowly than ASGI does.)
app.asgi_app = OIDCMiddleware(app.asgi_app, config)  # type: ignore[method-assign, assignment]


def page(title: str, body: str) -> str:
    """A minimal HTML page; ``body`` must already be escaped."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}"
        "<p><a href='/'>Home</a> · <a href='/me'>Me</a> · <a href='/admin'>Admin</a>"
        " · <a href='/oauth2/logout'>Sign out</a></p></body></html>"
    )


@app.route("/")
async def home() -> str:
    # "/" is public: scope["user"] is the Principal when signed in, else anonymous.
    user = request.scope.get("user")
    if isinstance(user, Principal):
        body = f"<p>Signed in as <b>{html.escape(user.display_name)}</b>"
        body += f" ({html.escape(user.email or user.sub)}).</p>"
    else:
        body = "<p>You are not signed in. <a href='/oauth2/login'>Sign in</a></p>"
    return page("Quart example", body)


@app.route("/me")
async def me() -> str:
    user = current_user()
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


@app.route("/admin")
@require(group("admins"))
async def admin() -> str:
    user = current_user()
    body = f"<p>Welcome, {html.escape(user.display_name)}: you are in the admins group.</p>"
    return page("Admin", body)


@app.route("/api/whoami")
async def whoami() -> dict[str, Any]:
    user = current_user()
    return {"sub": user.sub, "email": user.email, "groups": list(user.groups)}


@app.route("/api/admin/stats")
async def admin_stats() -> dict[str, Any]:
    # Only admins get here: the middleware's rules guard /api/admin/*.
    return {"users": 2, "admins": 1}
