"""Serve an ASGI app (the development provider, or the app under test) on a real port.

uvicorn runs in a daemon thread with its own event loop, so a synchronous test,
a pytest fixture or a script can talk to it over real HTTP. uvicorn is imported
only when a server is started: it is a development dependency, not a runtime one.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .provider import DevProvider

if TYPE_CHECKING:
    import uvicorn

__all__ = ["free_port", "serve_dev_provider", "serve_in_thread"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _import_uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError(
            "asgi_oidc.testing needs uvicorn to serve on a real port: pip install uvicorn"
        ) from exc
    return uvicorn


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def _serve_socket(app: Any, sock: socket.socket) -> Iterator[None]:
    uvicorn_module = _import_uvicorn()
    host, port = sock.getsockname()[:2]
    config = uvicorn_module.Config(app, lifespan="off", log_level="warning")
    server: uvicorn.Server = uvicorn_module.Server(config)
    # Serving a socket we already bound means the port cannot be taken between
    # choosing it and listening on it.
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"asgi_oidc-uvicorn-{port}",
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"uvicorn failed to start on {host}:{port}; see its log")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"uvicorn did not start on {host}:{port} within {_START_TIMEOUT:.0f} s"
                )
            time.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            # Open connections that will not close: stop without waiting for them.
            server.force_exit = True
            thread.join(_STOP_TIMEOUT)
        sock.close()


@contextlib.contextmanager
def serve_in_thread(app: Any, *, port: int | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yield its base URL.

    ``port=None`` lets the OS choose a free port. Lifespan is off and uvicorn
    logs warnings only. Raises ``RuntimeError`` if the server has not started
    within 10 s; on exit the server shuts down and the thread is joined.
    """
    _import_uvicorn()  # fail before binding anything when uvicorn is missing
    sock = _bind(host, 0 if port is None else port)
    actual_port: int = sock.getsockname()[1]
    with _serve_socket(app, sock):
        yield _base_url(host, actual_port)


@contextlib.contextmanager
def serve_dev_provider(*, port: int | None = None, **provider_kwargs: Any) -> Iterator[DevProvider]:
    """Build a :class:`DevProvider` and serve it on 127.0.0.1; yield the running provider.

    The port is bound first, because the issuer (``http://127.0.0.1:PORT``)
    must be known when the provider is built. ``provider_kwargs`` are the
    other :class:`DevProvider` arguments (``clients``, ``users``, …).
    """
    _import_uvicorn()
    sock = _bind("127.0.0.1", 0 if port is None else port)
    try:
        actual_port: int = sock.getsockname()[1]
        provider = DevProvider(issuer=_base_url("127.0.0.1", actual_port), **provider_kwargs)
    except BaseException:
        sock.close()
        raise
    with _serve_socket(provider, sock):
        yield provider
