"""The app that the multi-instance tests run under uvicorn in their own
processes: the echo app behind our middleware, configured entirely from
``OIDC_*`` environment variables (``OIDCConfig.from_env``), as a deployment
would be.

    OIDC_ISSUER=… OIDC_CLIENT_ID=… python -m uvicorn tests.interop.served_app:app
"""

from __future__ import annotations

from asgi_oidc import OIDCConfig, OIDCMiddleware
from tests.support.apps import echo_app

app = OIDCMiddleware(echo_app, OIDCConfig.from_env())
