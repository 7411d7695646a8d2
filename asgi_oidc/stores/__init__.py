"""Where state lives: the :class:`Store` contract and its two implementations.

- :class:`RedisStore`: real Redis, shared by every instance; the one to deploy.
- :class:`MemoryStore`: a dict in this process, for development, the demo and
  unit tests; it warns that it does not scale past one process.
"""

from asgi_oidc.stores.base import InvalidationHandler, Store
from asgi_oidc.stores.memory import MemoryStore
from asgi_oidc.stores.redis import RedisStore

__all__ = ["InvalidationHandler", "MemoryStore", "RedisStore", "Store"]
