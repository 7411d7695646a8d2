"""Run an example app behind the development OpenID Provider, on this machine only.

``scripts/demo [starlette|fastapi|quart] [--check]`` runs this module. It

1. serves the development provider (``asgi_oidc.testing``) on 127.0.0.1:9000
   (another free port when 9000 is taken), with the users alice@corp.com (in
   the ``admins`` group) and bob@corp.com, and a client registered for the
   app's callback;
2. starts the example under the server its framework's users use (uvicorn for
   FastAPI and Starlette, hypercorn for Quart) on 127.0.0.1:8000 (or a free
   port), configured by ``OIDC_*`` variables exactly as a real deployment is;
3. prints the URL to open and waits for Ctrl-C, then stops both.

Sessions live in the app's memory (``MemoryStore``: no Redis needed) and the
cookie is not ``Secure``, since this is plain http on loopback.

With ``--check`` (or ``DEMO_CHECK=1``) it uses free ports, signs in once as
alice without a browser (the provider's ``login_hint``), prints what ``/me``
and ``/api/whoami`` answer and exits: 0 when that worked.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

import httpx

from asgi_oidc.testing import DevClient, DevProvider, DevUser, free_port, serve_dev_provider

__all__ = ["EXAMPLES", "USERS", "main", "server_command"]

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
APP_PORT = 8000
IDP_PORT = 9000
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
CLIENT_ID = "demo"

#: Example name -> (server, ``module:attribute`` of the ASGI app).
EXAMPLES: Mapping[str, tuple[str, str]] = {
    "starlette": ("uvicorn", "examples.starlette.app:app"),
    "fastapi": ("uvicorn", "examples.fastapi.app:app"),
    "quart": ("hypercorn", "examples.quart.app:app"),
}

USERS = (
    DevUser(
        "alice",
        email="alice@corp.com",
        name="Alice Admin",
        groups=("admins", "staff"),
        claims={"department": "engineering"},
    ),
    DevUser(
        "bob",
        email="bob@corp.com",
        name="Bob Builder",
        groups=("staff",),
        claims={"department": "sales"},
    ),
)


def server_command(example: str, port: int, host: str = HOST) -> list[str]:
    """The command line that serves ``example`` on ``host:port``."""
    server, target = EXAMPLES[example]
    if server == "hypercorn":
        return [sys.executable, "-m", "hypercorn", target, "--bind", f"{host}:{port}"]
    return [sys.executable, "-m", "uvicorn", target, "--host", host, "--port", str(port)]


def app_environment(idp: DevProvider, client: DevClient, app_url: str) -> dict[str, str]:
    """This process's environment, minus any ``OIDC_*``, plus the app's settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OIDC_")}
    env.update(
        OIDC_ISSUER=idp.issuer,
        OIDC_CLIENT_ID=client.client_id,
        OIDC_CLIENT_SECRET=client.client_secret or "",
        OIDC_REDIRECT_URI=f"{app_url}/oauth2/callback",
        OIDC_POST_LOGOUT_REDIRECT_URI=f"{app_url}/",
        OIDC_COOKIE_SECRET=secrets.token_urlsafe(32),
        OIDC_COOKIE_SECURE="false",
        PYTHONUNBUFFERED="1",
    )
    return env


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _start_provider(
    stack: contextlib.ExitStack, port: int | None, client: DevClient
) -> DevProvider:
    """The provider on ``port``, or on a free port when that one is taken."""
    if port is not None:
        try:
            return stack.enter_context(serve_dev_provider(port=port, clients=[client], users=USERS))
        except OSError:
            pass
    return stack.enter_context(serve_dev_provider(clients=[client], users=USERS))


def _wait_until_serving(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not _accepts_connections(port):
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the app did not listen on port {port} within {START_TIMEOUT} s")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _text(page: str) -> str:
    """The visible text of a small HTML page, one line per block."""
    body = re.sub(r"<head>.*?</head>", "", page, flags=re.DOTALL)
    without_tags = re.sub(r"<(br|/?(p|h1|dt|dd|dl|pre|li))\b[^>]*>", "\n", body)
    text = html.unescape(re.sub(r"<[^>]+>", "", without_tags))
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


def check(app_url: str, user: str = "alice@corp.com") -> dict[str, Any]:
    """Sign in as ``user`` the way a browser does; print ``/me``; return ``/api/whoami``."""
    with httpx.Client(base_url=app_url, timeout=10.0) as browser:
        start = browser.get("/oauth2/login", params={"rd": "/me"})
        if start.status_code != 302:
            raise RuntimeError(f"/oauth2/login answered {start.status_code}, not a redirect")
        # At the provider, login_hint picks the user instead of the login page.
        authorize = browser.get(f"{start.headers['location']}&{urlencode({'login_hint': user})}")
        if authorize.status_code not in (302, 303):
            raise RuntimeError(f"the provider answered {authorize.status_code}: {authorize.text}")
        callback = browser.get(authorize.headers["location"])
        if callback.status_code != 302:
            raise RuntimeError(f"the callback answered {callback.status_code}: {callback.text}")
        me = browser.get("/me", headers={"accept": "text/html"})
        me.raise_for_status()
        print(f"GET {app_url}/me -> {me.status_code}")
        print(_text(me.text))
        whoami = browser.get("/api/whoami", headers={"accept": "application/json"})
        whoami.raise_for_status()
        print(f"GET {app_url}/api/whoami -> {whoami.status_code} {whoami.text}")
        answer: dict[str, Any] = whoami.json()
        return answer


def _banner(example: str, app_url: str, idp: DevProvider) -> str:
    server = EXAMPLES[example][0]
    return f"""
asgi_oidc demo: examples/{example}/app.py under {server}

  Open  {app_url}/   (127.0.0.1, not localhost: the callback is registered there)

  The development provider ({idp.issuer}) asks who you are; pick
    alice  (alice@corp.com, in the admins group: /admin and /api/admin/stats let her in)
    bob    (bob@corp.com, not an admin: those answer 403)

  Then try /me, /admin, /api/whoami, /api/admin/stats, and /oauth2/logout to sign out.
  Ctrl-C stops the app and the provider.
"""


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(example: str, *, check_only: bool) -> int:
    """Serve the provider and the app; check once or wait for Ctrl-C."""
    app_port = APP_PORT if not check_only and _port_is_free(APP_PORT) else free_port()
    app_url = f"http://{HOST}:{app_port}"
    client = DevClient(
        CLIENT_ID,
        secrets.token_urlsafe(24),
        redirect_uris=(f"{app_url}/oauth2/callback",),
        post_logout_redirect_uris=(f"{app_url}/",),
    )
    log: IO[bytes] | None = None
    with contextlib.ExitStack() as stack:
        idp = _start_provider(stack, None if check_only else IDP_PORT, client)
        if check_only:
            # The app's output is shown only when the check fails.
            log = stack.enter_context(tempfile.TemporaryFile())
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            server_command(example, app_port),
            cwd=ROOT,
            env=app_environment(idp, client, app_url),
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
        )
        stack.callback(_stop, process)
        try:
            _wait_until_serving(process, app_port)
            if check_only:
                whoami = check(app_url)
                return 0 if whoami.get("email") == "alice@corp.com" else 1
            print(_banner(example, app_url, idp), flush=True)
            return process.wait()
        except KeyboardInterrupt:
            print("\nStopping.", flush=True)
            return 0
        except (RuntimeError, httpx.HTTPError) as exc:
            print(f"demo: {exc}", file=sys.stderr)
            if log is not None:
                _stop(process)
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace"))
            return 1
    return 1  # pragma: no cover - the with block always returns


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m examples.demo [starlette|fastapi|quart] [--check]``."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Run an example app behind the development OpenID Provider.",
    )
    parser.add_argument(
        "example",
        nargs="?",
        default="starlette",
        choices=sorted(EXAMPLES),
        help="default starlette",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        default=os.environ.get("DEMO_CHECK", "") not in ("", "0"),
        help="sign in once as alice without a browser, print /me and exit (also DEMO_CHECK=1)",
    )
    args = parser.parse_args(argv)
    # `kill <pid>` stops the demo as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    return run(args.example, check_only=args.check)


if __name__ == "__main__":
    raise SystemExit(main())
