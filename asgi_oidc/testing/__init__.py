"""A development OpenID Provider that issues real signed tokens.

For the demo, for this package's tests, and for your own::

    from asgi_oidc.testing import DevClient, DevUser, serve_dev_provider

    with serve_dev_provider(
        clients=[DevClient("web", "secret", redirect_uris=("http://127.0.0.1:8000/cb",))],
        users=[DevUser("alice", email="alice@corp.com", groups=("admins",))],
    ) as idp:
        ...  # point the middleware at idp.issuer

``python -m asgi_oidc.testing --help`` runs one from the command line.
"""

from .provider import REMOVE, DevClient, DevProvider, DevUser
from .redis_server import RedisServer, RedisServerMissing
from .server import free_port, serve_dev_provider, serve_in_thread

__all__ = [
    "REMOVE",
    "DevClient",
    "DevProvider",
    "DevUser",
    "RedisServer",
    "RedisServerMissing",
    "free_port",
    "serve_dev_provider",
    "serve_in_thread",
]
