"""asgi_oidc: OpenID Connect login in front of any ASGI app, in one line.

>>> from asgi_oidc import OIDCMiddleware
>>> app = OIDCMiddleware(app, issuer="https://idp.example.com", client_id="web", ...)
"""

from . import rules
from .config import OIDCConfig
from .errors import ConfigError, OIDCError
from .middleware import OIDCMiddleware
from .principal import ANONYMOUS, AnonymousUser, AuthCredentials, Principal
from .stores import MemoryStore, RedisStore, Store

__all__ = [
    "ANONYMOUS",
    "AnonymousUser",
    "AuthCredentials",
    "ConfigError",
    "MemoryStore",
    "OIDCConfig",
    "OIDCError",
    "OIDCMiddleware",
    "Principal",
    "RedisStore",
    "Store",
    "rules",
]

__version__ = "0.1.0"
