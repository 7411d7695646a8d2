"""Several instances of one app: two uvicorn processes (``served_app``,
configured from the environment) sharing one redis-server, in front of
oidc-provider. Everything goes over real sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.interop.conftest import (
    APP_A,
    APP_B,
    HTML,
    JSON,
    login,
    middleware_settings,
    post_logout_uri,
    user_agent,
    whoami,
)
from tests.support.oidc_provider import OidcProviderProcess, callback_params, drive_logout

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
COMMAND = (
    "-m uvicorn tests.interop.served_app:app --host 127.0.0.1"
    " --lifespan on --log-level warning --no-access-log"
)


def _environment(settings: Mapping[str, Any]) -> dict[str, str]:
    """``OIDC_*`` variables for ``OIDCConfig.from_env``; the rest of ours minus any OIDC_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OIDC_")}
    for name, value in settings.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            text = " ".join(value)
        else:
            text = str(value)
        env[f"OIDC_{name.upper()}"] = text
    return env


class AppProcess:
    """``python -m uvicorn tests.interop.served_app:app`` on one origin's port."""

    def __init__(self, origin: str, env: Mapping[str, str], log_path: Path) -> None:
        port = urlsplit(origin).port
        assert port is not None
        self.origin = origin
        self.port = port
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, *COMMAND.split(), "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def ready(self) -> None:
        """Wait until it accepts connections."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.origin} exited:\n{self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                await asyncio.sleep(0.02)
        raise AssertionError(f"{self.origin} did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down: lifespan closes the middleware), wait, kill."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
            raise AssertionError(f"{self.origin} ignored SIGTERM") from None


async def _start(*apps: AppProcess) -> None:
    for app in apps:
        app.start()
    await asyncio.gather(*(app.ready() for app in apps))


async def test_two_instances_share_logins_and_logouts(
    op: OidcProviderProcess, redis_url: str, tmp_path: Path
) -> None:
    # One app, one configuration: its public callback is A's.
    env = _environment(middleware_settings(op, redis_url, origin=APP_A))
    a = AppProcess(APP_A, env, tmp_path / "a.log")
    b = AppProcess(APP_B, env, tmp_path / "b.log")
    try:
        began = time.perf_counter()
        await _start(a, b)
        started = time.perf_counter()
        async with user_agent() as ua:  # no mounts: every request over the network
            # Begun on A (state record in Redis, state cookie from A), the
            # provider's callback delivered to B.
            done = await login(ua, APP_A, path="/dash?tab=2", callback_origin=APP_B)
            assert done.callback.status_code == 302, done.callback.text
            assert done.callback.headers["location"] == f"{APP_A}/dash?tab=2"
            for origin in (APP_A, APP_B):
                assert (await whoami(ua, f"{origin}/dash"))["email"] == "alice@corp.example"
            # The state was taken once, for every instance.
            replay = await ua.get(done.callback_url, headers=HTML)
            assert replay.status_code == 400, replay.text

            # Both processes restarted: the session is in Redis, not in them.
            a.stop()
            b.stop()
            restart = time.perf_counter()
            await _start(a, b)
            restarted = time.perf_counter()
            for origin in (APP_A, APP_B):
                assert (await whoami(ua, f"{origin}/dash"))["sub"] == "alice"

            # Logout on A is seen by B at once, though B has the session cached.
            await whoami(ua, f"{APP_B}/dash")
            out = await ua.get(f"{APP_A}/oauth2/logout", headers=HTML)
            assert out.status_code == 302, out.text
            assert (await ua.get(f"{APP_B}/dash", headers=JSON)).status_code == 401
            to_login = await ua.get(f"{APP_B}/dash", headers=HTML)
            assert to_login.status_code == 302
            assert to_login.headers["location"].startswith(op.authorization_endpoint)

            # The provider sends the browser back with the logout state, which
            # any instance can check.
            back = await drive_logout(ua, out.headers["location"])
            assert back.headers["location"].startswith(post_logout_uri(APP_A) + "?")
            path = urlsplit(back.headers["location"])
            landed = await ua.get(f"{APP_B}{path.path}?{path.query}", headers=JSON)
            assert landed.status_code == 200, landed.text
            assert callback_params(back)["state"]
    finally:
        a.stop()
        b.stop()
    assert started - began < START_TIMEOUT and restarted - restart < START_TIMEOUT
